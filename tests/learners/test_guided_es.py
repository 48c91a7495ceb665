"""Guided ES (Maheswaranathan et al. 2019, Alg. 1): its search distribution, its
estimate with a perfect and a useless surrogate, the non-finite policy, training and
bit-exact resume through `bbpes.train`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.errors import ConfigError
from bbpes.estimators.backprop import bptt
from bbpes.estimators.es import es
from bbpes.learners import GradientLearner
from bbpes.learners.guided_es import GuidedES, guided_es_gradient, guided_noise, guiding_basis
from bbpes.runs import RunDir

N = 50
SCALES = jnp.asarray(np.logspace(-1, 1, N))


def quadratic(params):
    """An ill-conditioned 50-dim quadratic, minimum 0 at params = 1."""
    return 0.5 * jnp.sum(SCALES * (params - 1.0) ** 2)


def useless(params, key):
    """A surrogate that knows nothing: a fresh random direction every call."""
    return quadratic(params), jax.random.normal(key, params.shape)


def cosine(a, b):
    return float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


def test_perturbations_have_the_covariance_of_algorithm_1():
    n, k, alpha = 6, 2, 0.3
    rows = jax.random.normal(jax.random.key(0), (k, n))
    basis, k_used = guiding_basis(rows, jnp.array(5))
    np.testing.assert_allclose(basis.T @ basis, np.eye(k), atol=1e-12)
    # U spans the buffered gradients: projecting them on U changes nothing
    np.testing.assert_allclose(basis @ (basis.T @ rows.T), rows.T, atol=1e-12)
    eps = jax.jit(jax.vmap(lambda i: guided_noise(jax.random.key(1), i, basis, k_used, alpha)))(
        jnp.arange(40_000)
    )
    sigma = alpha / n * np.eye(n) + (1 - alpha) / k * basis @ basis.T
    np.testing.assert_allclose(eps.T @ eps / eps.shape[0], sigma, atol=0.01)
    assert float(jnp.mean(jnp.sum(eps**2, axis=1))) == pytest.approx(1.0, rel=0.02)


def test_partly_filled_buffer_uses_what_is_there():
    rows = jnp.zeros((3, 5)).at[0].set(jnp.arange(1.0, 6.0))
    basis, k_used = guiding_basis(rows, jnp.array(1))
    assert int(k_used) == 1 and np.all(basis[:, 1:] == 0)
    np.testing.assert_allclose(jnp.abs(basis[:, 0]), jnp.arange(1.0, 6.0) / jnp.sqrt(55.0))
    # nothing buffered: isotropic, E|eps|^2 = 1 all the same
    _, none = guiding_basis(jnp.zeros((3, 5)), jnp.array(0))
    eps = jax.jit(jax.vmap(lambda i: guided_noise(jax.random.key(2), i, basis * 0, none, 0.5)))(
        jnp.arange(20_000)
    )
    np.testing.assert_allclose(eps.T @ eps / eps.shape[0], np.eye(5) / 5, atol=0.01)


def test_mean_estimate_on_a_quadratic_is_beta_sigma_grad():
    """Mirrored differences are exact on a quadratic, so E g = beta Sigma grad L."""
    n, alpha, beta = 8, 0.4, 2.0
    x = jnp.linspace(-1.0, 1.0, n)
    loss = lambda p: 0.5 * jnp.sum(jnp.arange(1.0, n + 1) * (p - 0.3) ** 2)
    basis, k_used = guiding_basis(jax.random.normal(jax.random.key(3), (2, n)), jnp.array(2))
    keys = jax.random.split(jax.random.key(4), 4000)
    estimate = jax.jit(
        jax.vmap(
            lambda key: guided_es_gradient(
                loss, x, key, basis, k_used, sigma=0.7, samples=8, alpha=alpha, beta=beta
            )[1]
        )
    )
    mean = jnp.mean(estimate(keys), axis=0)
    covariance = alpha / n * jnp.eye(n) + (1 - alpha) / 2 * basis @ basis.T
    expected = beta * covariance @ jax.grad(loss)(x)
    np.testing.assert_allclose(mean, expected, atol=0.04 * float(jnp.linalg.norm(expected)))


@pytest.mark.parametrize("alpha", [0.0, 1e-4])
def test_perfect_surrogate_and_small_alpha_follow_the_true_gradient(alpha):
    """One step with SGD(1): the update is minus the estimate."""
    params = jax.random.normal(jax.random.key(5), (N,))
    learner = GuidedES(
        quadratic, bptt(quadratic), optax.sgd(1.0), sigma=0.1, samples=20, alpha=alpha
    )
    state, metrics = jax.jit(learner.step)(learner.init(params), jax.random.key(6))
    true = jax.grad(quadratic)(params)
    assert cosine(params - state.params, true) > 0.99
    assert metrics["surrogate_cosine"] > 0.99
    assert metrics["loss"] == pytest.approx(float(quadratic(params)))
    assert int(state.count) == 1
    np.testing.assert_allclose(state.U_raw[0], true)


@eqx.filter_jit
def final_losses(learner, keys, steps):
    """Final losses of one run per key of `steps` steps from 0, as one vmapped lax.scan
    (the learner is an argument: array-valued settings share one compilation)."""

    def run(key):
        def body(state, i):
            return learner.step(state, jax.random.fold_in(key, i))[0], None

        state, _ = jax.lax.scan(body, learner.init(jnp.zeros(N)), jnp.arange(steps))
        return quadratic(learner.params(state))

    return jax.vmap(run)(keys)


def losses_after(learner, steps, seeds):
    return np.asarray(final_losses(learner, jax.random.split(jax.random.key(7), seeds), steps))


def test_useless_surrogate_still_descends_nearly_as_well_as_es():
    """Same samples (10 mirrored pairs), same Adam, same 100 steps, 6 seeds. Measured as
    the mean reduction of log loss from L(0) = 53.6 (ES: about 3.4).

    Theory (our own count from Alg. 1 on a random u): both estimates have the mean
    (2/n) grad L; the signal-to-noise ratio is P/(n+1) for ES and 1 / (alpha^2 (n+1)/P
    + (1-alpha)^2 n) for Guided ES, so with alpha = 0.5 and P = 10 pairs a useless
    surrogate costs Guided ES a good part of ES's per-step accuracy (0.37x the SNR; the
    log reduction measured about 0.7x ES's), and alpha = 1 is ES up to the step scale.
    Tolerances: alpha = 0.5 keeps at least half of ES's log reduction and still cuts the
    loss 5-fold on every seed; alpha = 1 is within 10% of ES."""
    steps, seeds, s, adam = 100, 6, 0.05, optax.adam(0.05)  # one optimizer: one compilation
    initial = float(quadratic(jnp.zeros(N)))
    plain = losses_after(GradientLearner(es(quadratic, s, 20), adam), steps, seeds)
    reduction = {"es": np.mean(np.log(initial / plain))}
    for alpha in (0.5, 1.0):
        learner = GuidedES(
            quadratic, useless, adam, sigma=s * N**0.5, samples=20, alpha=jnp.array(alpha)
        )
        guided = losses_after(learner, steps, seeds)
        assert np.all(guided < 0.2 * initial)
        reduction[alpha] = np.mean(np.log(initial / guided))
    assert reduction[0.5] > 0.5 * reduction["es"], reduction
    assert reduction[1.0] == pytest.approx(reduction["es"], rel=0.1), reduction


def test_nonfinite_losses_are_the_worst_and_all_nonfinite_rejects_the_step():
    def capped(params):  # diverges (inf) past a wall at params[0] = 0.5
        return jnp.where(params[0] > 0.5, jnp.inf, quadratic(params))

    params = jnp.full(N, 0.45)
    learner = GuidedES(capped, bptt(quadratic), optax.sgd(0.01), sigma=0.5, samples=20)
    state, metrics = jax.jit(learner.step)(learner.init(params), jax.random.key(8))
    assert np.isfinite(metrics["grad_norm"]) and np.all(np.isfinite(state.params))
    assert not np.array_equal(state.params, params)

    nowhere = GuidedES(
        lambda p: jnp.nan * p[0], bptt(quadratic), optax.adam(0.1), sigma=0.1, samples=4
    )
    start = nowhere.init(params)
    state, metrics = jax.jit(nowhere.step)(start, jax.random.key(9))
    assert not np.isfinite(metrics["grad_norm"])
    np.testing.assert_array_equal(state.params, params)
    for a, b in zip(jax.tree.leaves(state.opt_state), jax.tree.leaves(start.opt_state)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fill", [0.0, jnp.nan], ids=["zero", "nan"])
def test_zero_or_nonfinite_surrogates_are_not_buffered(fill):
    surrogate = lambda p, key: (quadratic(p), jnp.full_like(p, fill))
    learner = GuidedES(quadratic, surrogate, optax.sgd(0.1), sigma=0.3, samples=10, k=2)
    state, metrics = jax.jit(learner.step)(learner.init(jnp.zeros(N)), jax.random.key(0))
    assert int(state.count) == 0 and np.all(state.U_raw == 0)
    assert metrics["surrogate_cosine"] == 0.0 and np.isfinite(metrics["grad_norm"])


@pytest.mark.parametrize(
    "bad",
    [{"samples": 7}, {"samples": 0}, {"sigma": 0.0}, {"alpha": 1.5}, {"k": 0}, {"chunk_size": 1}],
)
def test_bad_settings_are_config_errors(bad):
    settings = {"sigma": 0.1, "samples": 10, **bad}
    with pytest.raises(ConfigError):
        GuidedES(quadratic, useless, optax.sgd(0.1), **settings)


def test_more_directions_than_parameters_is_a_config_error():
    learner = GuidedES(quadratic, useless, optax.sgd(0.1), sigma=0.1, samples=4, k=3)
    with pytest.raises(ConfigError):
        learner.init(jnp.zeros(2))


def target_loss(params, target):
    return jnp.sum(SCALES[:3] * (params - target) ** 2)


def batch(i):
    return (jnp.full(3, 1.0 + 0.01 * (i % 5)),)


def make_learner():
    return GuidedES(
        target_loss, bptt(target_loss), optax.adam(0.05), sigma=0.1, samples=6, k=2, chunk_size=4
    )


def test_trains_through_the_loop_and_resumes_bit_exactly(cut_and_resumed, tmp_path):
    """Killed in step 18 (checkpoints every 4), resumed: the params, the guiding
    buffer and the history of an uninterrupted run, to the bit."""
    full, resumed = cut_and_resumed(
        make_learner(), jnp.zeros(3), 30, 17, kill=True, batch=batch, checkpoint_every=4
    )
    assert full.history[-1]["loss"] < 0.05 * full.history[0]["loss"]
    assert {"loss", "grad_norm", "surrogate_cosine"} <= set(full.history[-1])
    np.testing.assert_array_equal(resumed.params, full.params)
    np.testing.assert_array_equal(resumed.state.U_raw, full.state.U_raw)
    assert int(resumed.state.count) == int(full.state.count) == 30
    a, b = (
        [(r["step"], r["loss"], r["surrogate_cosine"]) for r in RunDir(tmp_path / d).read_history()]
        for d in ("full", "cut")
    )
    assert a == b and len(b) == 30
