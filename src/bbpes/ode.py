"""A loss defined by an ODE solve: the form the adjoint estimators (pnde, fnde) need.

    dy/dt = f(t, y, params, *args),   y(t0) = y0(params, *args)
    loss  = terminal(y(t1), params, *args) + integral_{t0}^{t1} running(t, y, params, *args) dt
            + observation(y(ts), params, *args)

The running cost is integrated alongside the state (an extra scalar `q`, dq/dt =
running), so the terminal and running costs are a function of the final augmented state
`(y, q)` only. The optional observation cost sees the solution at the times `ts` (e.g. a
fit to data observed at many times); the pnde adjoint does not support it (fnde, BPTT
and ES do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array


@jax.custom_jvp
def failed_to_inf(loss: Array, ok: Array) -> Array:
    """`loss` where `ok` (a bool array), `inf` elsewhere; its derivative is `loss`'s
    where `ok` and NaN elsewhere, so a failed solve never looks like a zero gradient."""
    return jnp.where(ok, loss, jnp.inf)


@failed_to_inf.defjvp
def _failed_to_inf_jvp(primals, tangents):
    loss, ok = primals
    dloss, _ = tangents
    return failed_to_inf(loss, ok), dloss * jnp.where(ok, 1.0, jnp.nan).astype(dloss.dtype)


def _float_type(tree):
    """The dtype of the running-cost integral for the state `tree`: its leaves' common
    type as JAX will hold it (float32 for a float64 numpy state when x64 is off)."""
    return jax.dtypes.canonicalize_dtype(jnp.result_type(*jax.tree.leaves(tree)))


class ODELoss(eqx.Module):
    """A differentiable loss of the solution of an ODE, solved with diffrax.

    **Fields:**

    - `vector_field`: `f(t, y, params, *args) -> dy/dt`, a pytree like `y`.
    - `initial_state`: `y0(params, *args) -> y`.
    - `t0`, `t1`: the time span (in the model's own unit).
    - `running_cost`: `(t, y, params, *args) -> scalar`, or None.
    - `terminal_cost`: `(y, params, *args) -> scalar`, or None.
    - `solver`, `stepsize_controller`, `dt0`, `max_steps`: passed to `diffrax.diffeqsolve`.
    - `ts`: observation times, shape `(T,)`, increasing, inside [t0, t1]; or None.
    - `observation_cost`: `(ys, params, *args) -> scalar`, where `ys` is the solution `y`
      at `ts` (a pytree like `y` with leading axis T); or None. Needs `ts`.
    - `adjoint`: how `jax` differentiates the call (`diffrax.RecursiveCheckpointAdjoint`,
      reverse mode: BPTT); `in_forward_mode()` gives the same loss for `jax.jvp`.

    Calling it, `ode_loss(params, *args)`, solves forward and returns the loss; a solve
    that fails (too many steps, a blow-up) returns `inf` instead of raising, so that ES
    can treat it by its non-finite policy, and its derivative is NaN (`failed_to_inf`),
    so that a gradient learner rejects the step instead of applying a zero gradient.
    Differentiating the call backpropagates through the solver's steps
    (`RecursiveCheckpointAdjoint`), i.e. BPTT.
    """

    vector_field: Callable[..., Any]
    initial_state: Callable[..., Any]
    t0: float
    t1: float
    running_cost: Callable[..., Array] | None = None
    terminal_cost: Callable[..., Array] | None = None
    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    stepsize_controller: diffrax.AbstractStepSizeController = diffrax.PIDController(
        rtol=1e-6, atol=1e-6
    )
    dt0: float | None = None
    max_steps: int = 100_000
    ts: Array | None = None
    observation_cost: Callable[..., Array] | None = None
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()

    def __check_init__(self):
        if self.observation_cost is not None and self.ts is None:
            raise ValueError("an ODELoss with an observation_cost needs the observation times ts")

    def augmented_field(self, t, state, params, *args):
        """d(y, q)/dt for the state augmented with the running-cost integral `q`."""
        y, _ = state
        dy = self.vector_field(t, y, params, *args)
        dq = (
            jnp.zeros((), _float_type(y))
            if self.running_cost is None
            else jnp.asarray(self.running_cost(t, y, params, *args))
        )
        return dy, dq

    def augmented_initial_state(self, params, *args):
        y0 = self.initial_state(params, *args)
        return y0, jnp.zeros((), _float_type(y0))

    def final_loss(self, state, params, *args) -> Array:
        """Loss as a function of the final augmented state `(y(t1), q(t1))`."""
        y, q = state
        return q if self.terminal_cost is None else q + self.terminal_cost(y, params, *args)

    def solve(
        self,
        params,
        *args,
        saveat: diffrax.SaveAt | None = None,
        adjoint: diffrax.AbstractAdjoint | None = None,
    ) -> diffrax.Solution:
        """The forward diffrax solve of the augmented state (never raises on failure)."""
        term = diffrax.ODETerm(lambda t, s, a: self.augmented_field(t, s, *a))
        return diffrax.diffeqsolve(
            term,
            self.solver,
            self.t0,
            self.t1,
            self.dt0,
            self.augmented_initial_state(params, *args),
            args=(params, *args),
            saveat=saveat or self.default_saveat(),
            stepsize_controller=self.stepsize_controller,
            adjoint=adjoint or self.adjoint,
            max_steps=self.max_steps,
            throw=False,
        )

    def in_forward_mode(self) -> ODELoss:
        """The same loss, solved with `diffrax.ForwardMode`: differentiable by forward-mode
        autodiff (`jax.jvp`, the forward gradient), not by reverse mode. Its values are
        those of the reverse-mode loss."""
        return eqx.tree_at(lambda o: o.adjoint, self, diffrax.ForwardMode())

    def default_saveat(self) -> diffrax.SaveAt:
        """What `loss_of_solution` needs: t1, and the observation times if there are any."""
        if self.observation_cost is None:
            return diffrax.SaveAt(t1=True)
        return diffrax.SaveAt(ts=self.ts, t1=True)

    def loss_of_saved(self, ys, params, *args) -> Array:
        """The loss of the augmented states `ys` saved as `default_saveat()` says (the
        observation times, if any, then t1), whether or not the solve succeeded."""
        final = jax.tree.map(lambda x: x[-1], ys)
        loss = self.final_loss(final, params, *args)
        if self.observation_cost is not None:
            observed = jax.tree.map(lambda x: x[:-1], ys[0])
            loss = loss + self.observation_cost(observed, params, *args)
        return loss

    def loss_of_solution(self, sol: diffrax.Solution, params, *args) -> Array:
        """The loss of a solve saved as `default_saveat()` says: `inf` if it failed, with
        a NaN derivative."""
        loss = self.loss_of_saved(sol.ys, params, *args)
        return failed_to_inf(loss, sol.result == diffrax.RESULTS.successful)

    def __call__(self, params, *args) -> Array:
        return self.loss_of_solution(self.solve(params, *args), params, *args)
