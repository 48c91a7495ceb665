"""The forward gradient (Baydin et al. 2022): unbiased, 1/sqrt(K) error, agrees with
BPTT, flat memory in trial length."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bbpes.errors import ConfigError
from bbpes.estimators.backprop import bptt
from bbpes.estimators.forward_gradient import forward_gradient
from bbpes.memory import compiled_peak_bytes
from bbpes.models.bnn import RecurrentNetwork, init_weights
from bbpes.neurons import registry
from bbpes.tasks.evidence import EvidenceTask

N = 10


@pytest.fixture(scope="module")
def quadratic():
    """L(theta) = 1/2 theta^T A theta + b . theta on a pytree of two leaves (N values in
    all), with its exact gradient A theta + b."""
    rng = np.random.default_rng(0)
    m = rng.normal(size=(N, N))
    a, b = jnp.asarray(m @ m.T / N + np.eye(N)), jnp.asarray(rng.normal(size=N))
    theta = {"u": jnp.asarray(rng.normal(size=4)), "v": jnp.asarray(rng.normal(size=(2, 3)))}
    flat, _ = ravel_pytree(theta)

    def loss(params, scale):
        x, _ = ravel_pytree(params)
        return scale * (0.5 * x @ a @ x + b @ x)

    return loss, theta, np.asarray(a @ flat + b)


def estimates(loss, theta, tangents, keys, chunk_size=None):
    estimator = jax.jit(
        jax.vmap(forward_gradient(loss, tangents, chunk_size=chunk_size), in_axes=(None, 0, None))
    )
    values, grads = estimator(theta, keys, 1.0)
    return np.asarray(values), np.asarray(jax.vmap(lambda g: ravel_pytree(g)[0])(grads))


def test_unbiased_on_a_quadratic(quadratic):
    loss, theta, exact = quadratic
    m, k = 4000, 4
    values, grads = estimates(loss, theta, k, jax.random.split(jax.random.key(1), m))
    np.testing.assert_allclose(values, float(loss(theta, 1.0)), rtol=1e-14)
    # per-coordinate variance of one estimate: (|g|^2 + g_i^2) / K (Gaussian tangents)
    std_of_mean = np.sqrt((exact @ exact + exact**2) / (k * m))
    assert np.all(np.abs(grads.mean(axis=0) - exact) < 4.5 * std_of_mean)
    np.testing.assert_allclose(grads.var(axis=0), (exact @ exact + exact**2) / k, rtol=0.15)


def test_error_falls_like_one_over_sqrt_k(quadratic):
    loss, theta, exact = quadratic
    keys = jax.random.split(jax.random.key(2), 1500)
    rms = {}
    for k in (4, 64):
        _, grads = estimates(loss, theta, k, keys, chunk_size=16)
        rms[k] = np.sqrt(np.mean(np.sum((grads - exact) ** 2, axis=1)))
        # closed form: E|g_hat - g|^2 = (N + 1) |g|^2 / K
        assert rms[k] == pytest.approx(np.sqrt((N + 1) * exact @ exact / k), rel=0.08)
    assert rms[4] / rms[64] == pytest.approx(4.0, rel=0.1)


def test_chunking_gives_the_same_estimate(quadratic):
    loss, theta, _ = quadratic
    key = jax.random.key(3)
    whole = forward_gradient(loss, 7)(theta, key, 2.0)
    for chunk in (1, 3, 7, 100):
        chunked = forward_gradient(loss, 7, chunk_size=chunk)(theta, key, 2.0)
        assert chunked[0] == whole[0]
        for a, b in zip(jax.tree.leaves(chunked[1]), jax.tree.leaves(whole[1]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_one_tangent_is_the_directional_derivative_times_the_tangent(quadratic):
    loss, theta, exact = quadratic
    key = jax.random.key(4)
    _, grads = forward_gradient(loss, 1)(theta, key, 1.0)
    v = jax.random.normal(jax.random.fold_in(key, 0), (N,))
    np.testing.assert_allclose(ravel_pytree(grads)[0], (exact @ v) * v, rtol=1e-12)


def test_has_aux(quadratic):
    loss, theta, _ = quadratic

    def with_aux(params, scale):
        return loss(params, scale), {"half": 0.5 * loss(params, scale)}

    (value, aux), _ = forward_gradient(with_aux, 3, has_aux=True)(theta, jax.random.key(0), 1.0)
    assert value == pytest.approx(float(loss(theta, 1.0))) and aux["half"] == 0.5 * value


@pytest.mark.parametrize("bad", [{"tangents": 0}, {"tangents": 2.5}, {"chunk_size": 0}])
def test_bad_settings_are_config_errors(quadratic, bad):
    settings = {"tangents": 4, **bad}
    with pytest.raises(ConfigError):
        forward_gradient(quadratic[0], **settings)


def evidence_problem(n_inputs):
    """As `bbpes.tasks.evidence_setup.build`, tiny: 8 cells, 3 input lines, batch 4."""
    cell = registry.cell_by_name("morris_lecar")
    network = RecurrentNetwork(cell, i_app=100.0, current_scale=100.0, dt=0.1)
    task = EvidenceTask.from_seed(0, input_dim=3, n_inputs=n_inputs, hold=2.0, window=2.0)
    weights = init_weights(jax.random.key(0), 8, 3, 3, rec_scale=1.0, out_scale=0.1)
    return partial(task.loss, network), weights, task.trials(4, [0, 1])


def test_agrees_with_bptt_on_the_evidence_network():
    loss, weights, batch = evidence_problem(3)
    exact_loss, exact = jax.jit(bptt(loss))(weights, None, *batch)
    value, grads = jax.jit(forward_gradient(loss, 1024, chunk_size=256))(
        weights, jax.random.key(1), *batch
    )
    assert value == pytest.approx(float(exact_loss), rel=1e-12)
    a, b = ravel_pytree(exact)[0], ravel_pytree(grads)[0]
    # E cos^2 ~ K / (K + n + 1) for n = 115 weights: about 0.95 at K = 1024
    assert a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)) > 0.9


def test_memory_is_flat_in_trial_length_while_bptt_grows():
    peaks = {}
    for n in (3, 24):
        loss, weights, batch = evidence_problem(n)
        peaks[n] = (
            compiled_peak_bytes(forward_gradient(loss, 8), weights, jax.random.key(0), *batch),
            compiled_peak_bytes(bptt(loss), weights, None, *batch),
        )
    forward_growth = peaks[24][0] - peaks[3][0]
    bptt_growth = peaks[24][1] - peaks[3][1]
    assert bptt_growth > 5 * peaks[3][1]  # every step's residuals
    # only the input stream grows: 21 more slots of (batch 4 x 3 lines), tokens, codes
    assert forward_growth < 0.01 * bptt_growth and forward_growth < 8192
