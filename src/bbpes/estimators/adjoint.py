"""Adjoint (neural-ODE) gradients of an `ODELoss` (BBPES paper, section 2.2).

- `pnde`, "partial" neural ODE: the forward solution is cached (diffrax dense output)
  and the adjoint ODE alone is solved backwards over it. Memory grows with the number
  of forward steps.
- `fnde`, "full" neural ODE (Chen et al. 2018): only the final state (and the
  observed states, if the loss observes any) is kept; state and adjoint are solved
  backwards together. Constant memory, but the state must be reconstructed by running
  the ODE backwards, which fails for irreversible dynamics such as spiking cells
  (paper, Fig. 4).

Both report a failed solve, forward or backward, the same way: the loss is `inf`, the
gradient NaN (so the training loop rejects the step) and `AdjointSolution.successful`
is False. (fnde is written here rather than with `diffrax.BacksolveAdjoint`, whose
backward solve drops its result code: a failed backward solve there returns a finite,
wrong gradient.)

For dy/dt = f(t, y, theta) and loss Phi(y(t1)), the adjoint a(t) = dLoss/dy(t) obeys

    da/dt = -(df/dy)^T a,   a(t1) = dPhi/dy(t1)
    dg/dt = -(df/dtheta)^T a,  g(t1) = dPhi/dtheta,    dLoss/dtheta = g(t0) + (dy0/dtheta)^T a(t0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
from jax import Array

from ..ode import ODELoss


class AdjointSolution(NamedTuple):
    """What `pnde_solve` and `fnde_solve` return. `ts` is the time grid of the saved
    trajectories (pnde with `ts` only)."""

    loss: Array  # scalar
    grads: Any  # pytree like params
    ts: Array | None  # (T,) in the ODE's time unit, or None
    adjoint: Any  # a(t) at ts: pytree like the augmented state (y, q), leading axis T
    running_grads: (
        Any  # g(t) at ts (the gradient accumulated from t1 back to t): like params, leading axis T
    )
    successful: Array  # () bool: every forward and backward solve succeeded


def pnde_solve(ode: ODELoss, params, *args, ts: Array | None = None) -> AdjointSolution:
    """Loss and pnde gradient of `ode` at `params`, optionally with the adjoint and the
    running gradient saved at the times `ts` (any order, inside [t0, t1]).

    Supports terminal and running costs; an `observation_cost` (which would need jumps
    of the adjoint at every observation time) raises `ValueError`: use fnde or BPTT."""
    if ode.observation_cost is not None:
        raise ValueError("pnde does not support an ODELoss with an observation_cost; use fnde")
    params = jax.lax.stop_gradient(params)
    forward = ode.solve(params, *args, saveat=diffrax.SaveAt(t1=True, dense=True))
    final = jax.tree.map(lambda x: x[-1], forward.ys)
    loss, (a1, g1) = jax.value_and_grad(lambda s, p: ode.final_loss(s, p, *args), argnums=(0, 1))(
        final, params
    )

    def adjoint_field(t, state, _):
        a, _g = state
        _, vjp = jax.vjp(
            lambda s, p: ode.augmented_field(t, s, p, *args), forward.evaluate(t), params
        )
        da, dg = vjp(a)
        return jax.tree.map(jnp.negative, (da, dg))

    save_ts = None if ts is None else jnp.sort(jnp.asarray(ts))[::-1]
    backward = diffrax.diffeqsolve(
        diffrax.ODETerm(adjoint_field),
        ode.solver,
        ode.t1,
        ode.t0,
        None if ode.dt0 is None else -ode.dt0,
        (a1, g1),
        saveat=diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(t1=True, ts=save_ts),
        stepsize_controller=ode.stepsize_controller,
        max_steps=ode.max_steps,
        throw=False,
    )
    a0, g0 = jax.tree.map(lambda x: x[-1], backward.ys)
    _, vjp0 = jax.vjp(lambda p: ode.augmented_initial_state(p, *args), params)
    (from_y0,) = vjp0(a0)
    grads = jax.tree.map(jnp.add, g0, from_y0)
    ok = (forward.result == diffrax.RESULTS.successful) & (
        backward.result == diffrax.RESULTS.successful
    )
    loss, grads = _flag_failure(ok, loss, grads)
    if ts is None:
        return AdjointSolution(loss, grads, None, None, None, ok)
    adjoint, running = jax.tree.map(lambda x: x[:-1][::-1], backward.ys)
    return AdjointSolution(loss, grads, save_ts[::-1], adjoint, running, ok)


def _flag_failure(ok: Array, loss: Array, grads: Any) -> tuple[Array, Any]:
    """A failed solve: `inf` loss and NaN gradient (see the module docstring)."""
    loss = jnp.where(ok, loss, jnp.inf)
    return loss, jax.tree.map(lambda g: jnp.where(ok, g, jnp.nan), grads)


def pnde(ode: ODELoss) -> Callable[..., tuple[Array, Any]]:
    """Adjoint gradient over the cached forward solution: `f(params, key, *args) -> (loss, grads)`."""
    if ode.observation_cost is not None:
        raise ValueError("pnde does not support an ODELoss with an observation_cost; use fnde")

    def estimate(params, key, *args):
        del key
        sol = pnde_solve(ode, params, *args)
        return sol.loss, sol.grads

    return estimate


def fnde_solve(ode: ODELoss, params, *args, max_steps: int | None = None) -> AdjointSolution:
    """Loss and fnde gradient of `ode` at `params` (`ts`, `adjoint`, `running_grads`
    are None).

    Forward, only the states the loss needs are saved (`ode.default_saveat()`: t1 and
    the observation times). Backward, from t1 to t0, the augmented state s = (y, q),
    its adjoint a = dLoss/ds and the running gradient g are solved together,

        ds/dt = F(t, s),  da/dt = -(dF/ds)^T a,  dg/dt = -(dF/dtheta)^T a,

    one diffrax solve per interval between observation times, each restarted from the
    saved forward state there, with the observation's cotangent added to a (the jump of
    the adjoint). dLoss/dtheta = g(t0) + (ds0/dtheta)^T a(t0). `max_steps` bounds each
    backward solve (default `ode.max_steps`)."""
    params = jax.lax.stop_gradient(params)
    forward = ode.solve(params, *args)
    forward_ok = forward.result == diffrax.RESULTS.successful
    loss, (cotangents, g1) = jax.value_and_grad(
        lambda ys, p: ode.loss_of_saved(ys, p, *args), argnums=(0, 1)
    )(forward.ys, params)
    # After a failed forward solve the saved states are inf: backsolve from zeros
    # instead (the result is flagged anyway), which is cheap, rather than from
    # non-finite values that make every backward step fail until max_steps.
    ys, cotangents, g1 = jax.tree.map(
        lambda x: jnp.where(forward_ok, x, 0), (forward.ys, cotangents, g1)
    )

    def backward_field(t, state, _):
        s, a, _g = state
        ds, vjp = jax.vjp(lambda s_, p: ode.augmented_field(t, s_, p, *args), s, params)
        da, dg = vjp(a)
        return ds, *jax.tree.map(jnp.negative, (da, dg))

    def interval(carry, piece):
        """Solve back from `upper` to `lower`, starting from the saved state there."""
        a, g, ok = carry
        upper, lower, s_saved, jump = piece
        a = jax.tree.map(jnp.add, a, jump)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(backward_field),
            ode.solver,
            upper,
            lower,
            None if ode.dt0 is None else -ode.dt0,
            (s_saved, a, g),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=ode.stepsize_controller,
            max_steps=max_steps or ode.max_steps,
            throw=False,
        )
        _, a, g = jax.tree.map(lambda x: x[-1], sol.ys)
        return (a, g, ok & (sol.result == diffrax.RESULTS.successful)), None

    # Saved times, last to first: t1, then the observation times backwards, each
    # interval ending at the next one and the last at t0.
    dtype = jnp.result_type(*jax.tree.leaves(ys))
    saved_ts = jnp.asarray([ode.t1], dtype)
    if ode.observation_cost is not None:
        saved_ts = jnp.concatenate([jnp.asarray(ode.ts, dtype), saved_ts])
    saved_ts = saved_ts[::-1]
    lowers = jnp.concatenate([saved_ts[1:], jnp.asarray([ode.t0], dtype)])
    pieces = (saved_ts, lowers, *jax.tree.map(lambda x: x[::-1], (ys, cotangents)))
    start = (jax.tree.map(lambda x: jnp.zeros_like(x[0]), ys), g1, forward_ok)
    (a0, g0, ok), _ = jax.lax.scan(interval, start, pieces)
    _, vjp0 = jax.vjp(lambda p: ode.augmented_initial_state(p, *args), params)
    (from_y0,) = vjp0(a0)
    loss, grads = _flag_failure(ok, loss, jax.tree.map(jnp.add, g0, from_y0))
    return AdjointSolution(loss, grads, None, None, None, ok)


def fnde(ode: ODELoss, *, max_steps: int | None = None) -> Callable[..., tuple[Array, Any]]:
    """Adjoint gradient with the state reconstructed backwards from the saved states:
    `f(params, key, *args) -> (loss, grads)` (`fnde_solve`)."""

    def estimate(params, key, *args):
        del key
        sol = fnde_solve(ode, params, *args, max_steps=max_steps)
        return sol.loss, sol.grads

    return estimate
