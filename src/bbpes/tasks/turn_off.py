"""The single-neuron "turn-off" task (BBPES paper, section 3.1.2, Eq. 9).

One Morris-Lecar cell under a learnable constant current I_app; the loss is its mean
spike output over the time frame, L(I_app) = (1/T) integral_0^T T(V(t)) dt. Lowering
I_app below the firing threshold solves it; the landscape in I_app is jagged because
the number of spikes in the window is discrete (paper, Figs. 5 and 11).
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from ..neurons import MorrisLecar, n_steps
from ..neurons.morris_lecar import NON_EXPLOSIVE
from ..neurons.readout import soft_threshold
from ..ode import ODELoss

Params = dict[str, Array]  # {"i_app": scalar current in µA/cm²}


class TurnOff(eqx.Module):
    """**Fields:** `cell`; `t_end`, `dt` (ms); `readout` T(V) (soft sigmoid by default)."""

    cell: MorrisLecar = NON_EXPLOSIVE
    t_end: float = eqx.field(default=10_000.0, static=True)
    dt: float = eqx.field(default=0.1, static=True)
    readout: Callable[[Array], Array] = eqx.field(default=soft_threshold, static=True)

    def loss(self, params: Params) -> Array:
        """Mean of T(V) over the steps 1..n of the cell's own stepper; keeps no trajectory."""
        i_app = params["i_app"]
        n = n_steps(self.t_end, self.dt)

        def body(carry, _):
            state, total = carry
            state = self.cell.step(state, i_app, self.dt)
            return (state, total + self.readout(state[0])), None

        state0 = self.cell.initial_state(jnp.shape(i_app))
        state0 = jax.tree.map(lambda s: s.astype(jnp.result_type(i_app, float)), state0)
        (_, total), _ = jax.lax.scan(body, (state0, jnp.zeros_like(state0[0])), None, length=n)
        return total / n

    def trace(self, params: Params) -> tuple[Array, Array]:
        """`(times, V)` of the cell under `params` (for plots)."""
        from ..neurons import simulate

        times, V, _ = simulate(self.cell, params["i_app"], self.t_end, self.dt)
        return times, V

    def ode_loss(
        self,
        solver: diffrax.AbstractSolver | None = None,
        rtol: float = 1e-6,
        atol: float = 1e-6,
        max_steps: int = 1_000_000,
    ) -> ODELoss:
        """The same task as an ODE solved by diffrax (for the adjoint methods): the
        running cost is T(V) / t_end, so the loss is the time average of T(V)."""
        cell, readout, t_end = self.cell, self.readout, self.t_end
        return ODELoss(
            vector_field=lambda t, y, p: cell.vector_field(y, p["i_app"]),
            initial_state=lambda p: cell.initial_state(jnp.shape(p["i_app"])),
            t0=0.0,
            t1=t_end,
            running_cost=lambda t, y, p: readout(y[0]) / t_end,
            solver=solver or diffrax.Tsit5(),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps,
        )
