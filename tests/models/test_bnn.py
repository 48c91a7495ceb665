"""The recurrent network: its step against the cell's own stepper, its ODE view against
the stepper, its gradients against finite differences, and ES memory that stays flat
as the trial grows."""

from __future__ import annotations

from functools import partial

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.estimators import bptt, checkpointed_scan, es, finite_difference, fnde, pnde
from bbpes.experiments.evidence import compiled_peak_bytes
from bbpes.models.bnn import RecurrentNetwork, init_weights
from bbpes.neurons import CELLS, NON_EXPLOSIVE, simulate
from bbpes.tasks.evidence import EvidenceTask


def network(cell=NON_EXPLOSIVE, dt=0.1, i_app=90.0):
    return RecurrentNetwork(cell, i_app=i_app, current_scale=100.0, dt=dt)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_each_cell_of_the_network_follows_the_cells_own_stepper(name):
    """One network step = the cell's scalar stepper under the current I_app + s W_in x +
    s W_rec T(V) that cell receives, computed by hand for each cell."""
    cell = CELLS[name]
    net = network(cell)
    w = init_weights(jax.random.key(0), 5, 3, 2, in_scale=1.0, rec_scale=2.0)
    x = jnp.array([1.0, 0.0, 1.0])
    V = jnp.array([-60.0, -20.0, 0.0, 15.0, 30.0])
    state = (V, *(jnp.linspace(0.05, 0.4, 5) for _ in cell.initial_state()[1:]))
    new, y = net.step(w, state, net.input_current(w, x))
    T = cell.output(state)
    for i in range(5):
        current = net.i_app + 100.0 * (w.w_in[i] @ x + w.w_rec[i] @ T)
        expected = cell.step(tuple(s[i] for s in state), current, net.dt)
        for got, want in zip(new, expected):
            assert got[i] == pytest.approx(float(want), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(y, w.w_out @ T + w.b_out, rtol=1e-12)


def test_uncoupled_network_fires_like_a_single_cell():
    """With W_in = W_rec = 0, every cell is the lone cell of `neurons.simulate` at I_app;
    `firing_rates` counts its spikes."""
    net = network(i_app=100.0)
    w = init_weights(jax.random.key(0), 4, 2, 3, in_scale=0.0, rec_scale=0.0)
    inputs = jnp.zeros((10, 2, 2))  # 10 slots of 100 steps: 100 ms, batch of 2
    rates = net.firing_rates(w, inputs, 100)
    _, V, _ = simulate(NON_EXPLOSIVE, 100.0, 100.0, 0.1)
    V = np.asarray(V)
    spikes = np.sum((V[:-1] < 10.0) & (V[1:] >= 10.0))
    assert spikes >= 1
    np.testing.assert_allclose(rates, spikes / 0.1)
    activity = net.slot_activity(w, inputs, 100)
    assert activity.shape == (10, 2, 4)
    expected = np.asarray(NON_EXPLOSIVE.output((jnp.asarray(V[:-1]),)))
    np.testing.assert_allclose(activity[:, 0, 0], expected.reshape(10, 100).mean(axis=1), rtol=1e-9)


def small_problem(dt=0.05, hold=3.0, n_inputs=3, window=2.0, i_app=250.0):
    """3 cells, 2 trials; from rest, a strong bias current makes the cells spike within
    the first few ms, so the window sees them and every gradient is far from zero."""
    task = EvidenceTask.from_seed(
        0, input_dim=4, n_inputs=n_inputs, hold=hold, window=window, dt=dt
    )
    net = network(dt=dt, i_app=i_app)
    w = init_weights(jax.random.key(2), 3, 4, 3, in_scale=1.0, rec_scale=1.0)
    tokens, labels = task.trials(2, 5)
    return task, net, w, jnp.asarray(tokens), jnp.asarray(labels)


def test_ode_view_agrees_with_the_stepper_and_the_stepper_converges_to_it():
    """diffrax (Dopri5, tol 1e-10) on the network's vector field vs the leapfrog stepper:
    the first-order stepper's error shrinks in proportion to dt."""
    errors = []
    for dt in (0.02, 0.01):
        task, net, w, tokens, labels = small_problem(dt=dt)
        ode = task.ode_loss(net, solver=diffrax.Dopri5(), rtol=1e-10, atol=1e-10)
        exact = float(eqx.filter_jit(ode)(w, tokens, labels))
        stepped = float(eqx.filter_jit(task.loss)(net, w, tokens, labels))
        errors.append(abs(stepped - exact) / exact)
    assert errors[1] < 2e-3
    assert errors[1] < 0.7 * errors[0]


def assert_close_trees(got, want, rtol, atol):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def test_bptt_and_checkpointed_bptt_match_finite_differences():
    """Tiny network (3 cells, 2 trials, 9 ms, spiking): both against central differences
    of the stepper's loss."""
    task, net, w, tokens, labels = small_problem()
    loss = partial(task.loss, net)
    _, fd = jax.jit(finite_difference(loss, 1e-4))(w, None, tokens, labels)
    assert float(jnp.max(jnp.abs(fd.w_rec))) > 1e-4
    for estimator in (bptt(loss), bptt(partial(task.loss, net, scan=checkpointed_scan))):
        _, grads = jax.jit(estimator)(w, None, tokens, labels)
        assert_close_trees(grads, fd, rtol=1e-5, atol=1e-8)


def ode_gradients_against_finite_differences(make_estimator):
    """The same network as an ODE (Dopri5, tolerances 1e-10, the input's jump times
    given to the step-size controller): an adjoint against central differences."""
    task, net, w, tokens, labels = small_problem()
    ode = task.ode_loss(net, solver=diffrax.Dopri5(), rtol=1e-10, atol=1e-10)
    _, fd = jax.jit(finite_difference(ode, 1e-4))(w, None, tokens, labels)
    _, grads = jax.jit(make_estimator(ode))(w, None, tokens, labels)
    assert_close_trees(grads, fd, rtol=1e-4, atol=1e-9)


def test_pnde_matches_finite_differences_of_the_ode_loss():
    ode_gradients_against_finite_differences(pnde)


@pytest.mark.slow
def test_fnde_matches_finite_differences_of_the_ode_loss_on_a_short_horizon():
    """9 ms is short enough for the backwards reconstruction of the state to hold."""
    ode_gradients_against_finite_differences(fnde)


def test_es_memory_is_flat_in_trial_length_and_bptt_memory_is_not():
    """XLA's buffer assignment of the compiled estimators: a trial 10x longer (same 5
    inputs, each held 10x longer) costs ES no memory; plain BPTT needs far more than
    checkpointed BPTT there (their growth is checked by tests/experiments/test_memory)."""
    with jax.enable_x64(False):
        sizes = {}
        for hold in (2.0, 20.0):
            task, net, w, tokens, labels = small_problem(dt=0.1, hold=hold, n_inputs=5)
            w = jax.tree.map(lambda a: a.astype(jnp.float32), w)
            task = eqx.tree_at(lambda t: t.codes, task, task.codes.astype(jnp.float32))
            loss = partial(task.loss, net)
            checkpointed = partial(task.loss, net, scan=checkpointed_scan)
            signals = {"es": es(loss, 0.1, 8)}
            if hold == 20.0:
                signals.update(bptt=bptt(loss), ckpt=bptt(checkpointed))
            for name, estimator in signals.items():
                sizes[name, hold] = compiled_peak_bytes(
                    estimator, w, jax.random.key(0), tokens, labels
                )
    assert sizes["es", 20.0] <= 1.05 * sizes["es", 2.0]
    assert sizes["ckpt", 20.0] < sizes["bptt", 20.0] / 3
