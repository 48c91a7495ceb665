from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.estimators import bptt, checkpointed_scan, finite_difference, fnde, pnde, pnde_solve
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


@pytest.mark.parametrize("i_app", [60.0, 100.0])
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
