"""Adjoint (neural-ODE) gradients of an `ODELoss` (BBPES paper, section 2.2).

- `pnde`, "partial" neural ODE: the forward solution is cached (diffrax dense output)
  and the adjoint ODE alone is solved backwards over it. Memory grows with the number
  of forward steps.
- `fnde`, "full" neural ODE (Chen et al. 2018): only the final state is kept; state
  and adjoint are solved backwards together (`diffrax.BacksolveAdjoint`). Constant
  memory, but the state must be reconstructed by running the ODE backwards, which
  fails for irreversible dynamics such as spiking cells (paper, Fig. 4).

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
    """What `pnde_solve` returns. `ts` is the time grid of the saved trajectories."""

    loss: Array  # scalar
    grads: Any  # pytree like params
    ts: Array | None  # (T,) in the ODE's time unit, or None
    adjoint: Any  # a(t) at ts: pytree like the augmented state (y, q), leading axis T
    running_grads: (
        Any  # g(t) at ts (the gradient accumulated from t1 back to t): like params, leading axis T
    )


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
    loss = jnp.where(ok, loss, jnp.inf)
    grads = jax.tree.map(lambda g: jnp.where(ok, g, jnp.nan), grads)
    if ts is None:
        return AdjointSolution(loss, grads, None, None, None)
    adjoint, running = jax.tree.map(lambda x: x[:-1][::-1], backward.ys)
    return AdjointSolution(loss, grads, save_ts[::-1], adjoint, running)


def pnde(ode: ODELoss) -> Callable[..., tuple[Array, Any]]:
    """Adjoint gradient over the cached forward solution: `f(params, key, *args) -> (loss, grads)`."""
    if ode.observation_cost is not None:
        raise ValueError("pnde does not support an ODELoss with an observation_cost; use fnde")

    def estimate(params, key, *args):
        del key
        sol = pnde_solve(ode, params, *args)
        return sol.loss, sol.grads

    return estimate


def fnde(ode: ODELoss) -> Callable[..., tuple[Array, Any]]:
    """Adjoint gradient with the state reconstructed backwards from y(t1) alone:
    `f(params, key, *args) -> (loss, grads)`."""
    adjoint = diffrax.BacksolveAdjoint(
        solver=ode.solver, stepsize_controller=ode.stepsize_controller
    )

    def loss(params, *args):
        return ode.loss_of_solution(ode.solve(params, *args, adjoint=adjoint), params, *args)

    value_and_grad = jax.value_and_grad(loss)

    def estimate(params, key, *args):
        del key
        return value_and_grad(params, *args)

    return estimate
