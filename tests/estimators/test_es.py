from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

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
    everywhere_nan = lambda p: jnp.nan * p["x"]
    value, grads = es(everywhere_nan, 0.5, 10)({"x": jnp.array(1.0)}, jax.random.key(3))
    assert grads["x"] == 0.0 and not jnp.isfinite(value)


def test_chunking_changes_memory_not_results():
    key = jax.random.key(7)
    full = es(quadratic, 0.1, 64)(PARAMS, key)[1]
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
    g1 = es(quadratic, 0.1, 100, rank_shaping=True)(PARAMS, key)[1]
    g2 = es(lambda p: jnp.exp(quadratic(p)), 0.1, 100, rank_shaping=True)(PARAMS, key)[1]
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
