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

from bbpes.errors import ConfigError
from bbpes.estimators import bptt, checkpointed_scan, es, finite_difference, fnde, pnde
from bbpes.estimators.low_rank import LowRank, apply, densify
from bbpes.memory import compiled_peak_bytes
from bbpes.models.bnn import RecurrentNetwork, Weights, init_weights, stack_rows
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


def low_rank(w, key, rank=2, scale=0.3):
    """A `LowRank` around `w` with Gaussian factors."""
    ka, kb = jax.random.split(key)
    m, n = w.shape
    a = jax.random.normal(ka, (m, rank), w.dtype)
    return LowRank(w, a, jax.random.normal(kb, (n, rank), w.dtype), jnp.asarray(scale, w.dtype))


def low_rank_weights(w, key, rank=2):
    k_in, k_rec, k_out = jax.random.split(key, 3)
    return Weights(
        low_rank(w.w_in, k_in, rank),
        low_rank(w.w_rec, k_rec, rank),
        low_rank(w.w_out, k_out, rank),
        w.b_out,
    )


def window_statistics_by_hand(net, w, inputs, hold_steps, window_steps):
    """The window's mean y and mean |y|^2 from `step` called in a Python loop."""
    n_slots, batch, _ = inputs.shape
    state = net.initial_state((batch,), w.w_rec.shape[0], inputs.dtype)
    ys = []
    for k in range(n_slots):
        drive = net.input_current(w, inputs[k])
        for _ in range(hold_steps):
            state, y = net.step(w, state, drive)
            ys.append(y)
    window = jnp.stack(ys[-window_steps:])
    return window.mean(axis=0), jnp.sum(window**2, axis=-1).mean(axis=0)


@pytest.mark.parametrize(
    "fields",
    [{}, {"layout": "trials_first"}, {"fuse_readout": True}, {"unroll": 3}],
    ids=["default", "trials_first", "fused", "unroll3"],
)
def test_run_keeps_the_window_statistics_of_the_step_by_step_simulation(fields):
    """`run` (readout only in the slots that overlap the window, any layout, fused or
    not, unrolled or not) against the default network's `step` (separate readout) in a
    Python loop: the window starts inside
    the second of four slots, so quiet slots, a partial slot and full ones all occur."""
    task, reference, w, tokens, _ = small_problem(hold=1.0, n_inputs=4, window=2.5)
    cell, i_app, scale, dt = reference.cell, reference.i_app, reference.current_scale, reference.dt
    net = RecurrentNetwork(cell, i_app, scale, dt, **fields)
    inputs = task.inputs(tokens)
    got = jax.jit(lambda w: net.run(w, inputs, task.hold_steps, task.window_steps))(w)
    mean, mean_square = window_statistics_by_hand(
        reference, w, inputs, task.hold_steps, task.window_steps
    )
    np.testing.assert_allclose(got.mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.mean_square, mean_square, rtol=1e-10)


@pytest.mark.parametrize("layout", ["auto", "trials_first", "cells_first"])
@pytest.mark.parametrize("fuse", [False, True])
def test_low_rank_weights_give_the_loss_and_gradient_of_their_dense_matrices(layout, fuse):
    """Every matrix as `LowRank(base, A, B, scale)` vs the same network with
    `base + scale A B^T` formed: the same loss, and the same gradient w.r.t. the base."""
    task, net, w, tokens, labels = small_problem()
    net = RecurrentNetwork(
        net.cell, net.i_app, net.current_scale, net.dt, layout=layout, fuse_readout=fuse
    )
    factored = low_rank_weights(w, jax.random.key(7))
    loss = jax.jit(jax.value_and_grad(lambda w: task.loss(net, w, tokens, labels)))
    (value, grads), (dense_value, dense_grads) = loss(factored), loss(densify(factored))
    assert abs(float(dense_value - task.loss(net, w, tokens, labels))) > 1e-6  # perturbed
    np.testing.assert_allclose(value, dense_value, rtol=1e-10)
    for name in ("w_in", "w_rec", "w_out"):
        np.testing.assert_allclose(
            getattr(grads, name).base, getattr(dense_grads, name), rtol=1e-8, atol=1e-12
        )


def test_a_population_with_a_shared_low_rank_base_matches_its_dense_members():
    """Under `jax.vmap` with the base shared (not mapped) and A, B per member, each
    member's readout equals its own dense simulation."""
    task, net, w, tokens, _ = small_problem()
    members, rank = 3, 2
    keys = iter(jax.random.split(jax.random.key(3), 6))

    def factored(base):
        (m, n), scale = base.shape, jnp.asarray(0.3)
        a = jax.random.normal(next(keys), (members, m, rank))
        return LowRank(base, a, jax.random.normal(next(keys), (members, n, rank)), scale)

    population = Weights(factored(w.w_in), factored(w.w_rec), factored(w.w_out), w.b_out)
    shared = LowRank(None, 0, 0, None)
    in_axes = Weights(shared, shared, shared, None)
    readout = jax.jit(jax.vmap(lambda m: task.readout(net, m, tokens), in_axes=(in_axes,)))
    got = readout(population)
    for k in range(members):
        member = Weights(
            *(
                LowRank(x.base, x.a[k], x.b[k], x.scale).dense()
                for x in (population.w_in, population.w_rec, population.w_out)
            ),
            w.b_out,
        )
        want = task.readout(net, member, tokens)
        np.testing.assert_allclose(got.mean[k], want.mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.mean_square[k], want.mean_square, rtol=1e-10)


def test_stack_rows_is_the_stacked_dense_matrix():
    """`[top; bottom]` for two arrays, two LowRanks of different ranks, and a mix."""
    key = jax.random.key(4)
    top, bottom = jax.random.normal(key, (5, 4)), jax.random.normal(jax.random.key(5), (3, 4))
    lr_top, lr_bottom = low_rank(top, jax.random.key(6), 2), low_rank(bottom, key, 1, 0.7)
    for a, b in [(top, bottom), (lr_top, lr_bottom), (lr_top, bottom), (top, lr_bottom)]:
        want = jnp.concatenate([densify(a), densify(b)])
        got = stack_rows(a, b)
        np.testing.assert_allclose(densify(got), want, rtol=1e-12)
        x = jax.random.normal(key, (2, 4))
        np.testing.assert_allclose(apply(got, x), x @ want.T, rtol=1e-10)


def transmitter_network(transmitter, **fields):
    task, net, w, tokens, labels = small_problem()
    net = RecurrentNetwork(
        net.cell, net.i_app, net.current_scale, net.dt, transmitter=transmitter, **fields
    )
    return task, net, w, tokens, labels


def test_hard_transmitter_gives_bptt_exactly_zero_gradient_through_the_cells():
    """With the hard step (Eq. 10) for coupling and readout, the loss depends on w_in
    and w_rec only through T(V), whose derivative is zero: BPTT's gradient is exactly
    zero there, and not for the readout weights (the window sees spikes)."""
    task, net, w, tokens, labels = transmitter_network("hard")
    grads = jax.jit(jax.grad(lambda w: task.loss(net, w, tokens, labels)))(w)
    assert np.all(np.asarray(grads.w_in) == 0.0) and np.all(np.asarray(grads.w_rec) == 0.0)
    assert float(jnp.max(jnp.abs(grads.w_out))) > 1e-3


def test_surrogate_transmitter_is_hard_forward_and_fast_sigmoid_backward():
    """The surrogate's loss is exactly the hard one's; its gradient w.r.t. w_in and
    w_rec is not zero, and its readout gradient is the hard one's (same T values)."""
    task, hard, w, tokens, labels = transmitter_network("hard")
    _, surrogate, *_ = transmitter_network("surrogate", slope=0.5)
    value_and_grad = lambda net: jax.jit(
        jax.value_and_grad(lambda w: task.loss(net, w, tokens, labels))
    )(w)
    (v_hard, g_hard), (v_sur, g_sur) = value_and_grad(hard), value_and_grad(surrogate)
    assert float(v_sur) == float(v_hard)
    assert float(jnp.max(jnp.abs(g_sur.w_in))) > 1e-6
    assert float(jnp.max(jnp.abs(g_sur.w_rec))) > 1e-6
    np.testing.assert_allclose(g_sur.w_out, g_hard.w_out, rtol=1e-12)
    np.testing.assert_allclose(g_sur.b_out, g_hard.b_out, rtol=1e-12)


@pytest.mark.parametrize("slope", [0.5, 2.0])
def test_surrogate_derivative_is_the_fast_sigmoid_of_the_voltage(slope):
    """dT/dV = slope / (1 + slope |V - V_T|)^2 with V_T = 10 mV; dT/dw = 0; T itself
    is the hard step."""
    net = RecurrentNetwork(NON_EXPLOSIVE, 90.0, 100.0, transmitter="surrogate", slope=slope)
    V = jnp.array([-60.0, 0.0, 9.5, 10.0, 10.5, 30.0])
    w = jnp.full_like(V, 0.2)
    T, (dV, dw) = jax.vmap(jax.value_and_grad(lambda V, w: net.spikes((V, w)), (0, 1)))(V, w)
    np.testing.assert_array_equal(T, (V >= 10.0).astype(T.dtype))
    np.testing.assert_allclose(dV, slope / (1.0 + slope * jnp.abs(V - 10.0)) ** 2, rtol=1e-12)
    np.testing.assert_array_equal(dw, 0.0)


def test_bad_network_settings_are_config_errors():
    for fields in ({"transmitter": "sigmoid"}, {"slope": 0.0}, {"layout": "x"}, {"unroll": 0}):
        with pytest.raises(ConfigError):
            RecurrentNetwork(NON_EXPLOSIVE, 90.0, 100.0, **fields)
