"""`truncated_scan`: truncated BPTT as a drop-in for `jax.lax.scan`."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.estimators.backprop import bptt, truncated_scan
from bbpes.memory import compiled_peak_bytes
from bbpes.models.bnn import RecurrentNetwork, init_weights
from bbpes.neurons import registry
from bbpes.tasks.evidence import EvidenceTask


def step(theta, carry, x):
    """A nonlinear recurrence with a per-step output: carry (3,), x (2,), theta (3, 3)."""
    new = jnp.tanh(theta @ carry + x[0]) + 0.5 * x[1] * carry
    return new, jnp.sum(new**2)


def loss_of(scan):
    def loss(theta, init, xs):
        carry, ys = scan(partial(step, theta), init, xs)
        return jnp.sum(carry * jnp.arange(1.0, 4.0)) + 0.1 * jnp.sum(ys)

    return loss


def two_part_loss(theta, init, xs, keep):
    """The truncated loss written out by hand: a Python loop over the steps, with the
    carry entering the last `keep` steps and the earlier outputs held fixed."""
    carry, ys = init, []
    n = xs.shape[0]
    for t in range(n):
        if t == n - keep:
            carry = jax.lax.stop_gradient(carry)
            ys = [jax.lax.stop_gradient(y) for y in ys]
        carry, y = step(theta, carry, xs[t])
        ys.append(y)
    return jnp.sum(carry * jnp.arange(1.0, 4.0)) + 0.1 * jnp.sum(jnp.stack(ys))


@pytest.fixture
def problem():
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    theta = 0.6 * jax.random.normal(k1, (3, 3))
    init = jax.random.normal(k2, (3,))
    xs = jax.random.normal(k3, (9, 2))
    return theta, init, xs


@pytest.mark.parametrize("keep", [1, 4, 8])
def test_values_are_the_scans_and_gradients_the_hand_written_truncation(problem, keep):
    theta, init, xs = problem
    scan = partial(truncated_scan, keep=keep)
    carry, ys = truncated_scan(partial(step, theta), init, xs, keep=keep)
    ref_carry, ref_ys = jax.lax.scan(partial(step, theta), init, xs)
    np.testing.assert_array_equal(carry, ref_carry)
    np.testing.assert_array_equal(ys, ref_ys)
    grads = jax.grad(loss_of(scan), argnums=(0, 1))(theta, init, xs)
    ref = jax.grad(two_part_loss, argnums=(0, 1))(theta, init, xs, keep)
    np.testing.assert_allclose(grads[0], ref[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads[1], ref[1], rtol=1e-12, atol=1e-14)
    full = jax.grad(loss_of(jax.lax.scan))(theta, init, xs)
    assert not np.allclose(grads[0], full, rtol=1e-3)  # truncation changed the gradient
    assert np.all(grads[1] == 0.0)  # init only reaches the loss through the cut carry


def test_truncated_gradient_is_the_derivative_with_the_entering_carry_frozen(problem):
    """Independent of autodiff through the cut: central differences of the last `keep`
    steps run from the carry that the first steps left at the unperturbed theta."""
    theta, init, xs = problem
    keep, n = 3, xs.shape[0]
    frozen, frozen_ys = jax.lax.scan(partial(step, theta), init, xs[: n - keep])

    def tail(th):
        carry, ys = jax.lax.scan(partial(step, th), frozen, xs[n - keep :])
        return jnp.sum(carry * jnp.arange(1.0, 4.0)) + 0.1 * (jnp.sum(frozen_ys) + jnp.sum(ys))

    h = 1e-6
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            e = jnp.zeros((3, 3)).at[i, j].set(h)
            fd[i, j] = (tail(theta + e) - tail(theta - e)) / (2 * h)
    grads = jax.grad(loss_of(partial(truncated_scan, keep=keep)))(theta, init, xs)
    np.testing.assert_allclose(grads, fd, rtol=1e-7, atol=1e-9)


def test_keep_at_least_the_length_is_the_full_gradient(problem):
    theta, init, xs = problem
    full = jax.grad(loss_of(jax.lax.scan))(theta, init, xs)
    for keep in (9, 20):
        grads = jax.grad(loss_of(partial(truncated_scan, keep=keep)))(theta, init, xs)
        np.testing.assert_allclose(grads, full, rtol=1e-12)


def test_length_without_xs():
    def f(c, _):
        return c * 1.1 + 1.0, c

    carry, ys = truncated_scan(f, jnp.array(1.0), length=5, keep=2)
    ref_carry, ref_ys = jax.lax.scan(f, jnp.array(1.0), None, length=5)
    np.testing.assert_array_equal(carry, ref_carry)
    np.testing.assert_array_equal(ys, ref_ys)
    # d carry_5 / d c_0 through the last 2 steps only: the chain rule stops at c_3
    assert jax.grad(lambda c: truncated_scan(f, c, length=5, keep=2)[0])(1.0) == 0.0


@pytest.mark.parametrize("keep", [0, -1, 2.0, True])
def test_bad_keep_is_a_config_error(keep):
    with pytest.raises(ConfigError):
        truncated_scan(lambda c, x: (c, x), 0.0, jnp.zeros(3), keep=keep)


def test_nested_scan_truncates_the_outer_loop_only(problem):
    """An inner `truncated_scan` inside the body of an outer one is a plain scan: with
    keep = 1 the gradient is that of the whole last outer step, all inner steps included."""
    theta, init, xs = problem
    inner_xs = xs.reshape(3, 3, 2)

    def loss(th, scan):
        def outer(carry, chunk):
            return scan(partial(step, th), carry, chunk)[0], None

        carry, _ = scan(outer, init, inner_xs)
        return jnp.sum(carry)

    got = jax.grad(loss)(theta, partial(truncated_scan, keep=1))
    frozen, _ = jax.lax.scan(partial(step, theta), init, xs[:6])
    ref = jax.grad(lambda th: jnp.sum(jax.lax.scan(partial(step, th), frozen, xs[6:])[0]))(theta)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def evidence_problem(n_inputs):
    cell = registry.cell_by_name("morris_lecar")
    network = RecurrentNetwork(cell, i_app=100.0, current_scale=100.0, dt=0.1)
    task = EvidenceTask.from_seed(0, input_dim=3, n_inputs=n_inputs, hold=2.0, window=2.0)
    weights = init_weights(jax.random.key(0), 8, 3, 3, rec_scale=1.0, out_scale=0.1)
    return task, network, weights, task.trials(4, [0, 1])


def test_on_the_evidence_network_keep_counts_input_slots():
    task, network, weights, (tokens, labels) = evidence_problem(4)
    truncated = partial(task.loss, network, scan=partial(truncated_scan, keep=4))
    full = bptt(partial(task.loss, network))(weights, None, tokens, labels)
    whole = bptt(truncated)(weights, None, tokens, labels)  # keep = every slot
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(whole), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    loss, grads = bptt(partial(task.loss, network, scan=partial(truncated_scan, keep=1)))(
        weights, None, tokens, labels
    )
    assert loss == full[0]
    # with one slot kept, the first three slots' inputs are cut: tokens there get no say
    assert np.all(np.isfinite(grads.w_rec)) and np.any(grads.w_rec != 0)
    assert not np.allclose(grads.w_in, full[1].w_in, rtol=1e-2)


def test_memory_is_bounded_in_trial_length_while_bptt_grows():
    peaks = {}
    for n in (4, 16):
        task, network, weights, batch = evidence_problem(n)
        truncated = partial(task.loss, network, scan=partial(truncated_scan, keep=2))
        peaks[n] = [
            compiled_peak_bytes(bptt(loss), weights, None, *batch)
            for loss in (partial(task.loss, network), truncated)
        ]
    (full4, trunc4), (full16, trunc16) = peaks[4], peaks[16]
    assert full16 > 2.5 * full4  # BPTT keeps every step
    assert abs(trunc16 - trunc4) < 4096  # only the tokens grow (12 more per trial)
