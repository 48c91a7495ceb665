from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.estimators import bptt, checkpointed_scan, finite_difference, fnde, pnde, pnde_solve
from bbpes.estimators.adjoint import fnde_solve
from bbpes.learners import GradientLearner
from bbpes.tasks.turn_off import TurnOff


@pytest.fixture(scope="module")
def short_task():
    """30 ms of a cell at I = 60-ish: a smooth horizon (no spike), where BP is exact."""
    return TurnOff(t_end=30.0, dt=0.01)


def test_bptt_matches_finite_differences_on_the_stepper(short_task):
    params = {"i_app": jnp.array(60.0)}
    _, bp = bptt(short_task.loss)(params, None)
    _, fd = finite_difference(short_task.loss, 1e-3)(params, None)
    assert bp["i_app"] == pytest.approx(float(fd["i_app"]), rel=1e-5)


@pytest.mark.parametrize(
    "i_app",
    [60.0, pytest.param(100.0, marks=pytest.mark.slow)],  # 19 s each; CI runs both
)
def test_bptt_pnde_fnde_agree_with_finite_differences_on_the_ode(short_task, i_app):
    ode = short_task.ode_loss(solver=diffrax.Dopri5(), rtol=1e-10, atol=1e-10)
    params = {"i_app": jnp.array(i_app)}
    _, fd = finite_difference(ode, 1e-3)(params, None)
    for estimator in (bptt, pnde, fnde):
        loss, grads = jax.jit(estimator(ode))(params, None)
        assert loss == pytest.approx(float(ode(params)), rel=1e-10)
        assert grads["i_app"] == pytest.approx(float(fd["i_app"]), rel=1e-4), estimator.__name__


def test_adjoints_handle_params_in_initial_state_and_terminal_cost():
    """dy/dt = -k y + c, y0 = (1, 2 c), loss = |y(1)|^2 + integral of sum(y)."""
    from bbpes.ode import ODELoss

    ode = ODELoss(
        vector_field=lambda t, y, p: -p["k"] * y + p["c"],
        initial_state=lambda p: jnp.stack([1.0, 2.0 * p["c"]]),
        t0=0.0,
        t1=1.0,
        running_cost=lambda t, y, p: jnp.sum(y),
        terminal_cost=lambda y, p: jnp.sum(y**2),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
    )
    params = {"k": jnp.array(0.7), "c": jnp.array(0.3)}
    _, fd = finite_difference(ode, 1e-5)(params, None)
    for estimator in (bptt, pnde, fnde):
        _, grads = jax.jit(estimator(ode))(params, None)
        for name in params:
            assert grads[name] == pytest.approx(float(fd[name]), rel=1e-6)


def test_pnde_trajectory_ends_at_the_gradient(short_task):
    ode = short_task.ode_loss(rtol=1e-9, atol=1e-9)
    params = {"i_app": jnp.array(60.0)}
    sol = pnde_solve(ode, params, ts=jnp.linspace(0.0, 30.0, 31))
    assert sol.ts.shape == (31,) and sol.adjoint[0][0].shape == (31,)
    # the running gradient is zero at t1 and, at t0, the whole gradient
    assert sol.running_grads["i_app"][-1] == 0.0
    assert sol.running_grads["i_app"][0] == pytest.approx(float(sol.grads["i_app"]), rel=1e-9)


def _loss_of(scan, length):
    def loss(x):
        def step(c, _):
            return jnp.sin(c) * x + 0.99 * c, None

        carry, _ = scan(step, jnp.ones(64), None, length=length)
        return jnp.sum(carry)

    return loss


def test_checkpointed_scan_gives_the_same_values_and_gradients():
    for length in (1, 7, 100, 101):
        a = jax.value_and_grad(_loss_of(jax.lax.scan, length))(0.3)
        b = jax.value_and_grad(_loss_of(checkpointed_scan, length))(0.3)
        np.testing.assert_allclose(a, b, rtol=1e-12)
    xs = jnp.arange(10.0)
    ys_a = jax.lax.scan(lambda c, x: (c + x, c * x), 0.0, xs)
    ys_b = checkpointed_scan(lambda c, x: (c + x, c * x), 0.0, xs, segment=3)
    np.testing.assert_allclose(ys_a[1], ys_b[1])


def _gradient_temp_bytes(scan, length):
    compiled = jax.jit(jax.grad(_loss_of(scan, length))).lower(0.3).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_checkpointed_scan_memory_grows_sublinearly():
    """XLA's own buffer assignment: 16x more steps cost ~16x memory through lax.scan
    and ~4x (sqrt) through checkpointed_scan."""
    plain = [_gradient_temp_bytes(jax.lax.scan, n) for n in (1024, 16384)]
    ckpt = [_gradient_temp_bytes(checkpointed_scan, n) for n in (1024, 16384)]
    assert plain[1] / plain[0] > 12
    assert ckpt[1] / ckpt[0] < 6
    assert ckpt[1] < plain[1] / 10


def decay_ode(**options):
    """dy/dt = -k y, y0 = (c, 2c), loss |y(1)|^2: a solve any budget of steps can fail."""
    from bbpes.ode import ODELoss

    return ODELoss(
        vector_field=lambda t, y, p: -p["k"] * y,
        initial_state=lambda p: jnp.stack([p["c"], 2.0 * p["c"]]),
        t0=0.0,
        t1=1.0,
        terminal_cost=lambda y, p: jnp.sum(y**2),
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
        **options,
    )


DECAY_PARAMS = {"k": jnp.array(0.7), "c": jnp.array(0.3)}


def test_a_failed_forward_solve_gives_inf_and_a_nan_gradient_for_every_signal():
    """Not a zero gradient: a learner must see the failure and reject the step."""
    ode = decay_ode(max_steps=2)
    loss, grads = jax.jit(bptt(ode))(DECAY_PARAMS, None)
    assert loss == jnp.inf and all(bool(jnp.isnan(g)) for g in jax.tree.leaves(grads))
    for solve in (pnde_solve, fnde_solve):  # what pnde and fnde return, and the flag
        sol = eqx.filter_jit(solve)(ode, DECAY_PARAMS)
        assert sol.loss == jnp.inf and not bool(sol.successful), solve.__name__
        assert all(bool(jnp.isnan(g)) for g in jax.tree.leaves(sol.grads)), solve.__name__


def test_fnde_flags_a_failed_backward_solve():
    ode = decay_ode()
    assert bool(ode.solve(DECAY_PARAMS).result == diffrax.RESULTS.successful)
    fine = jax.jit(lambda p: fnde_solve(ode, p))(DECAY_PARAMS)
    failed = jax.jit(lambda p: fnde_solve(ode, p, max_steps=2))(DECAY_PARAMS)
    assert bool(fine.successful) and not bool(failed.successful)
    assert np.isfinite(float(fine.loss)) and failed.loss == jnp.inf
    assert all(bool(jnp.isnan(g)) for g in jax.tree.leaves(failed.grads))
    # ... and the training loop's learner rejects that step whole (Adam state included)
    learner = GradientLearner(fnde(ode, max_steps=2), optax.adam(0.1))
    state = learner.init(DECAY_PARAMS)
    new, metrics = jax.jit(learner.step)(state, None)
    assert not np.isfinite(float(metrics["grad_norm"]))
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fnde_with_observations_at_many_times_matches_bptt():
    """Observations at t0, inside and at t1 (the adjoint jumps at each) and a running
    cost: fnde's backsolve against exact backprop through the same solver."""
    from bbpes.ode import ODELoss

    ts = jnp.array([0.0, 0.3, 0.7, 1.0])
    data = jnp.array([[1.0, 0.5], [0.8, 0.6], [0.5, 0.4], [0.3, 0.2]])
    ode = ODELoss(
        vector_field=lambda t, y, p: jnp.array([[-p["k"], p["w"]], [-p["w"], -0.1]]) @ y,
        initial_state=lambda p: jnp.stack([1.0, p["c"]]),
        t0=0.0,
        t1=1.0,
        running_cost=lambda t, y, p: 0.1 * jnp.sum(y**2),
        terminal_cost=lambda y, p: y[0] ** 2,
        stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11),
        ts=ts,
        observation_cost=lambda ys, p: jnp.sum((ys - data) ** 2),
    )
    params = {"k": jnp.array(0.4), "w": jnp.array(1.3), "c": jnp.array(0.2)}
    loss_bp, bp = jax.jit(bptt(ode))(params, None)
    loss_f, f = jax.jit(fnde(ode))(params, None)
    assert loss_f == pytest.approx(float(loss_bp), rel=1e-12)
    for name in params:
        assert f[name] == pytest.approx(float(bp[name]), rel=1e-7), name


def test_the_forward_mode_loss_has_the_values_and_directional_derivatives_of_bptt():
    ode = decay_ode()
    forward = ode.in_forward_mode()
    tangent = {"k": jnp.array(0.3), "c": jnp.array(-1.2)}
    value, derivative = jax.jit(lambda p, v: jax.jvp(forward, (p,), (v,)))(DECAY_PARAMS, tangent)
    loss, grads = jax.jit(bptt(ode))(DECAY_PARAMS, None)
    assert value == loss
    expected = sum(float(grads[n] * tangent[n]) for n in grads)
    assert float(derivative) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(TypeError):  # the default (reverse-mode) loss has no jvp
        jax.jvp(ode, (DECAY_PARAMS,), (tangent,))
