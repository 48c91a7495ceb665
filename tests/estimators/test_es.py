from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree
from jax.scipy.stats import norm
from scipy.stats import rankdata

from bbpes.errors import ConfigError
from bbpes.estimators import bptt, centered_ranks, es, weight_perturbation

A = jnp.diag(jnp.array([1.0, 2.0, 3.0, 4.0, 5.0]))


def quadratic(params):
    return 0.5 * params["x"] @ A @ params["x"] + jnp.sum(params["b"] * jnp.array([1.0, -2.0]))


PARAMS = {"x": jnp.array([1.0, -1.0, 0.5, 2.0, -0.3]), "b": jnp.zeros(2)}


def relative_error(grads, exact):
    g = jnp.concatenate([grads["x"], grads["b"]])
    e = jnp.concatenate([exact["x"], exact["b"]])
    return float(jnp.linalg.norm(g - e) / jnp.linalg.norm(e))


def test_es_converges_to_true_gradient_on_quadratic():
    """On a quadratic the smoothed gradient equals the true one, so the ES error must
    fall like 1/sqrt(S): averaged over 8 keys, from S = 10 to S = 10,000."""
    _, exact = bptt(quadratic)(PARAMS, None)
    errors = []
    for samples in (10, 100, 1000, 10000):
        estimate = jax.jit(es(quadratic, 0.1, samples))
        keys = jax.random.split(jax.random.key(1), 8)
        errors.append(np.mean([relative_error(estimate(PARAMS, k)[1], exact) for k in keys]))
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.05
    assert errors[0] / errors[-1] > 10  # sqrt(1000) ~ 32 in expectation


def test_es_finds_the_smoothed_gradient_of_a_step_where_bp_sees_zero():
    step = lambda p: jnp.where(p["x"] > 0, 1.0, 0.0)
    sigma, x = 0.5, 0.25
    _, bp = bptt(step)({"x": jnp.array(x)}, None)
    assert bp["x"] == 0.0
    smoothed_slope = norm.pdf(x / sigma) / sigma  # d/dx P(x + sigma eps > 0)
    _, grads = jax.jit(es(step, sigma, 40_000))({"x": jnp.array(x)}, jax.random.key(0))
    assert grads["x"] == pytest.approx(float(smoothed_slope), rel=0.05)


def test_nonfinite_losses_give_a_finite_gradient_pointing_away():
    """The loss falls towards x = 1, where the simulation 'diverges' (NaN). Diverged
    perturbations count as the worst loss seen, so at x = 1 the estimate turns around
    and pushes x back down, away from the diverging side."""

    def loss(p):
        return jnp.where(p["x"] > 1.0, jnp.nan, -p["x"])

    _, grads = jax.jit(es(loss, 0.5, 200))({"x": jnp.array(1.0)}, jax.random.key(3))
    assert jnp.isfinite(grads["x"]) and grads["x"] > 0


@pytest.mark.parametrize("rank_shaping", [False, True])
def test_a_step_where_every_sample_diverges_is_nonfinite(rank_shaping):
    """No finite perturbed loss: NaN gradient and NaN loss, even when the centre's loss
    is finite (here it is 0 at exactly x = 1)."""
    everywhere_nan = lambda p: jnp.nan * p["x"]
    only_center = lambda p: jnp.where(p["x"] == 1.0, 0.0, jnp.nan)
    for loss in (everywhere_nan, only_center):
        estimate = es(loss, 0.5, 10, rank_shaping=rank_shaping)
        value, grads = jax.jit(estimate)({"x": jnp.array(1.0)}, jax.random.key(3))
        assert jnp.isnan(grads["x"]) and jnp.isnan(value)


def test_gradient_learner_rejects_a_step_where_every_sample_diverges():
    """With Adam's momentum, a zero gradient would still move the params; the NaN
    estimate makes the learner keep params and optimizer state as they were."""
    from bbpes.learners import GradientLearner

    def loss(p, diverge):
        return jnp.where(diverge, jnp.nan, jnp.sum((p - 1.0) ** 2))

    learner = GradientLearner(es(loss, 0.1, 8), optax.adam(0.1))
    state = learner.init(jnp.zeros(3))
    state, _ = learner.step(state, jax.random.key(0), False)  # momentum builds up
    after, metrics = learner.step(state, jax.random.key(1), True)
    assert not np.isfinite(metrics["loss"]) and not np.isfinite(metrics["grad_norm"])
    for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)


def test_chunking_changes_memory_not_results():
    key = jax.random.key(7)
    full = jax.jit(es(quadratic, 0.1, 64))(PARAMS, key)[1]
    for chunk in (1, 6, 16, 64):  # 6 does not divide 64: the last chunk is padded
        chunked = jax.jit(es(quadratic, 0.1, 64, chunk_size=chunk))(PARAMS, key)[1]
        np.testing.assert_allclose(chunked["x"], full["x"], rtol=1e-10, atol=1e-12)


def test_sigma_per_leaf_and_aux():
    def loss(p):
        return quadratic(p), {"norm": jnp.linalg.norm(p["x"])}

    estimate = es(loss, {"x": 0.1, "b": 1.0}, 2000, has_aux=True)
    (value, aux), grads = jax.jit(estimate)(PARAMS, jax.random.key(0))
    assert value == pytest.approx(float(quadratic(PARAMS)))
    assert aux["norm"] == pytest.approx(float(jnp.linalg.norm(PARAMS["x"])))
    _, exact = bptt(quadratic)(PARAMS, None)
    # b is linear, so ES is exact in expectation there; sigma = 1 only adds variance.
    np.testing.assert_allclose(grads["b"], exact["b"], atol=0.2)


def test_rank_shaping_ignores_monotone_transforms():
    key = jax.random.key(0)
    g1 = jax.jit(es(quadratic, 0.1, 100, rank_shaping=True))(PARAMS, key)[1]
    g2 = jax.jit(es(lambda p: jnp.exp(quadratic(p)), 0.1, 100, rank_shaping=True))(PARAMS, key)[1]
    np.testing.assert_allclose(g1["x"], g2["x"], rtol=1e-10)
    ranks = centered_ranks(jnp.array([3.0, -1.0, 10.0]))
    np.testing.assert_allclose(ranks, [0.0, -0.5, 0.5])


def test_weight_perturbation_is_unbiased_on_a_linear_loss():
    w = jnp.array([1.0, -3.0, 0.5])
    linear = lambda p: w @ p
    _, grads = jax.jit(weight_perturbation(linear, 0.01, 20_000, chunk_size=5000))(
        jnp.zeros(3), jax.random.key(2)
    )
    np.testing.assert_allclose(grads, w, atol=0.05)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="even"):
        es(quadratic, 0.1, 5)
    with pytest.raises(ValueError, match="at least one"):
        es(quadratic, 0.1, 0)


@pytest.mark.parametrize(
    "n, chunk_size, shape",
    [(50, 20, (3, 17)), (100, 20, (5, 20)), (7, None, (1, 7)), (5, 9, (1, 5))],
)
def test_chunks_are_balanced_and_cover_every_sample(n, chunk_size, shape):
    from bbpes.estimators.es import _chunked

    chunks, valid = _chunked(jnp.arange(n), chunk_size)
    assert chunks.shape == shape == valid.shape
    assert sorted(np.asarray(chunks)[np.asarray(valid)].tolist()) == list(range(n))


def noise_by_hand(params, key, samples, antithetic):
    """eps_s, shape `(S, params)`: from fold_in(key, s // 2), the odd s negated
    (mirrored), or from fold_in(key, s)."""
    flat, _ = ravel_pytree(params)
    eps = []
    for s in range(samples):
        e = jax.random.normal(jax.random.fold_in(key, s // 2 if antithetic else s), flat.shape)
        eps.append(-e if antithetic and s % 2 else e)
    return np.stack(eps)


def population_losses(loss, params, key, data, sigma, samples, antithetic):
    """L(theta + sigma eps_s) for the noise above, shape `(S,)`."""
    flat, unravel = ravel_pytree(params)
    eps = noise_by_hand(params, key, samples, antithetic)
    return np.asarray(jax.jit(jax.vmap(lambda e: loss(unravel(flat + sigma * e), data)))(eps))


def two_pass(loss, params, key, data, sigma, samples, antithetic, weigh):
    """The estimate as it was computed before the centre joined the population: the
    centre's loss on its own, then the S perturbed losses, weights
    `weigh(losses, center)`."""
    _, unravel = ravel_pytree(params)
    center, aux = loss(params, data)
    eps = noise_by_hand(params, key, samples, antithetic)
    value = lambda p, d: loss(p, d)[0]
    losses = population_losses(value, params, key, data, sigma, samples, antithetic)
    grads = weigh(losses, float(center)) @ eps / (sigma * samples)
    return float(center), aux, unravel(jnp.asarray(grads))


X3 = jnp.array([1.0, 0.0, -0.5])


def aux_loss(p, data):
    value = jnp.sum((p["w"] - data) ** 2) + jnp.sin(p["b"]) * jnp.sum(p["w"])
    return value, {"w_sum": jnp.sum(p["w"]), "b": p["b"]}


@pytest.mark.parametrize("chunk_size", [None, 3, 5])
@pytest.mark.parametrize(
    "options, weigh",
    [
        ({}, lambda losses, center: losses),
        ({"rank_shaping": True}, lambda losses, center: (rankdata(losses) - 1) / 7 - 0.5),
        (
            {"antithetic": False, "baseline": "center"},
            lambda losses, center: losses - center,
        ),
        ({"antithetic": False}, lambda losses, center: losses - losses.mean()),
    ],
    ids=["mirrored", "ranks", "center", "mean"],
)
def test_centre_in_the_population_gives_the_two_pass_estimate(options, weigh, chunk_size):
    """S = 8 samples and the centre in one batch (chunks of 3: the centre ends the last
    chunk; of 5: it is also the padding) give the loss, aux and gradient of the old
    two-pass formula, computed here by hand."""
    params = {"w": jnp.array([0.3, -1.2, 0.7]), "b": jnp.array(0.4)}
    data = X3
    key = jax.random.key(11)
    antithetic = options.get("antithetic", True)
    center, aux, expected = two_pass(aux_loss, params, key, data, 0.3, 8, antithetic, weigh)
    estimate = es(aux_loss, 0.3, 8, has_aux=True, chunk_size=chunk_size, **options)
    (value, got_aux), grads = jax.jit(estimate)(params, key, data)
    assert float(value) == pytest.approx(center, rel=1e-12)
    for name in aux:
        assert float(got_aux[name]) == pytest.approx(float(aux[name]), rel=1e-12)
    for name in params:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-10, atol=1e-12)


def test_weight_perturbation_uses_the_folded_centre():
    """g = mean_s (L(theta + sigma eps_s) - L(theta)) eps_s / sigma, eps_s unmirrored."""
    w = jnp.array([0.5, -1.0])
    loss = lambda p: jnp.sum(jnp.cos(p * w))
    params, key = jnp.array([0.2, 1.1]), jax.random.key(4)
    eps = np.stack([jax.random.normal(jax.random.fold_in(key, s), (2,)) for s in range(6)])
    by_hand = sum((loss(params + 0.1 * e) - loss(params)) * e for e in eps) / (0.1 * 6)
    value, grads = jax.jit(weight_perturbation(loss, 0.1, 6, chunk_size=4))(params, key)
    assert float(value) == pytest.approx(float(loss(params)), rel=1e-12)
    np.testing.assert_allclose(grads, by_hand, rtol=1e-10)


def test_tied_losses_share_their_average_rank():
    losses = jnp.array([2.0, 5.0, 2.0, 7.0, 5.0, 5.0, -1.0])
    ranks = centered_ranks(losses)
    np.testing.assert_allclose(ranks, (rankdata(losses) - 1) / 6 - 0.5, rtol=1e-12)
    assert ranks[0] == ranks[2] and ranks[1] == ranks[4] == ranks[5]
    assert float(jnp.sum(ranks)) == pytest.approx(0.0, abs=1e-12)
    random = jax.random.randint(jax.random.key(0), (101,), 0, 10).astype(float)
    ranks = centered_ranks(random)
    np.testing.assert_allclose(ranks, (rankdata(random) - 1) / 100 - 0.5, rtol=1e-12)
    assert float(jnp.sum(ranks)) == pytest.approx(0.0, abs=1e-12)


def test_a_mirrored_pair_that_both_diverge_contributes_zero():
    """Two pairs; the one whose noise is longer diverges on both sides. Both get the
    worst finite loss (the surviving pair's larger one) and, with average ranks, share
    its rank (2 of 0..3), so the estimate is the surviving pair's term alone: weights
    -1/2 and 1/6. Distinct ranks, as a double argsort gives, would add a multiple of
    the diverged pair's noise."""
    from bbpes.estimators.es import Population

    params, key, sigma = jnp.array([0.3, -0.2, 0.5]), jax.random.key(8), 0.2
    noise = [Population(params, sigma, key, 4).noise(jnp.array(2 * k))[0] for k in (0, 1)]
    lengths = [float(jnp.linalg.norm(e)) for e in noise]
    short = int(np.argmin(lengths))
    threshold = sigma * np.mean(lengths)
    smooth = lambda p: jnp.sum(p**3) + p[0]

    def loss(p):
        return jnp.where(jnp.linalg.norm(p - params) > threshold, jnp.nan, smooth(p))

    _, grads = jax.jit(es(loss, sigma, 4, rank_shaping=True))(params, key)
    e = noise[short]
    plus, minus = float(smooth(params + sigma * e)), float(smooth(params - sigma * e))
    w_plus, w_minus = (-0.5, 1 / 6) if plus < minus else (1 / 6, -0.5)
    np.testing.assert_allclose(grads, (w_plus - w_minus) * e / (sigma * 4), rtol=1e-10)


def test_rank_weights_keep_the_loss_dtype_under_x64():
    """The suite runs with x64 on: float32 losses must give float32 weights (a float64
    weight vector used to change the noise sum's carry dtype and fail under scan)."""
    from bbpes.estimators.es import fitness_weights

    assert jax.config.jax_enable_x64
    losses = jnp.array([3.0, 1.0, 1.0, jnp.nan], jnp.float32)
    assert centered_ranks(losses[:3]).dtype == jnp.float32
    for rank_shaping in (False, True):
        weights = fitness_weights(
            losses, losses[0], antithetic=False, rank_shaping=rank_shaping, baseline="mean"
        )
        assert weights.dtype == jnp.float32
    params = {"x": jnp.ones(3, jnp.float32)}
    loss = lambda p: jnp.sum(p["x"] ** 2)
    value, grads = jax.jit(es(loss, 0.1, 6, rank_shaping=True, chunk_size=4))(
        params, jax.random.key(0)
    )
    assert value.dtype == grads["x"].dtype == jnp.float32


@pytest.mark.parametrize("options", [{}, {"rank_shaping": True}, {"antithetic": False}])
def test_without_the_centre_the_loss_is_the_population_mean(options):
    """center=False: S evaluations, the same gradient, and the reported loss is the
    mean of the perturbed losses (by hand); every sample diverged: NaN."""
    params, key, data = (
        {"w": jnp.array([0.3, -1.2, 0.7]), "b": jnp.array(0.4)},
        jax.random.key(2),
        X3,
    )
    loss = lambda p, d: aux_loss(p, d)[0]
    with_center = jax.jit(es(loss, 0.3, 8, **options))(params, key, data)
    without = jax.jit(es(loss, 0.3, 8, center=False, **options))(params, key, data)
    for name in params:
        np.testing.assert_allclose(without[1][name], with_center[1][name], rtol=1e-12)
    perturbed = population_losses(loss, params, key, data, 0.3, 8, options.get("antithetic", True))
    assert float(without[0]) == pytest.approx(float(np.mean(perturbed)), rel=1e-12)
    nan_loss = lambda p, d: jnp.nan * loss(p, d)
    value, grads = jax.jit(es(nan_loss, 0.3, 8, center=False, **options))(params, key, data)
    assert jnp.isnan(value) and jnp.isnan(grads["b"])


def test_without_the_centre_there_is_no_aux_nor_centre_baseline():
    with pytest.raises(ConfigError, match="center"):
        es(aux_loss, 0.1, 4, center=False, has_aux=True)
    with pytest.raises(ConfigError, match="center"):
        es(quadratic, 0.1, 4, center=False, antithetic=False, baseline="center")
