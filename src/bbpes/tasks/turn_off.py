"""The single-neuron "turn-off" task (BBPES paper, section 3.1.2, Eq. 9).

One Morris-Lecar cell under a learnable constant current I_app; the loss is its mean
spike output over the time frame, L(I_app) = (1/T) integral_0^T T(V(t)) dt. Lowering
I_app below the firing threshold solves it; the landscape in I_app is jagged because
the number of spikes in the window is discrete (paper, Figs. 5 and 11).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..models.bnn import Scan
from ..neurons import MorrisLecar, n_steps
from ..neurons.morris_lecar import EXPLOSIVE, NON_EXPLOSIVE
from ..neurons.readout import hard_threshold, soft_threshold, surrogate_threshold
from ..ode import ODELoss
from ..settings import Setting

Params = dict[str, Array]  # {"i_app": scalar current in µA/cm²}

PRESETS = {"non_explosive": NON_EXPLOSIVE, "explosive": EXPLOSIVE}

PRESET = Setting(
    "preset",
    "non_explosive",
    "the Morris-Lecar cell of section 3.1: non_explosive or explosive",
    choices=tuple(PRESETS),
)
"""The setting that picks one of `PRESETS` (the single-cell experiments share it)."""
"""The paper's two Morris-Lecar cells by name (section 3.1)."""
READOUTS = {"soft": soft_threshold, "hard": hard_threshold}
"""The spike outputs T(V) by name: the sigmoid (Eq. 11) and the hard threshold (Eq. 10)."""


class TurnOff(eqx.Module):
    """**Fields:** `cell`; `t_end`, `dt` (ms); `readout` T(V) (soft sigmoid by default)."""

    cell: MorrisLecar = NON_EXPLOSIVE
    t_end: float = eqx.field(default=10_000.0, static=True)
    dt: float = eqx.field(default=0.1, static=True)
    readout: Callable[[Array], Array] = eqx.field(default=soft_threshold, static=True)

    def loss(self, params: Params, *, scan: Scan = jax.lax.scan) -> Array:
        """Mean of T(V) over the steps 1..n of the cell's own stepper (a scalar); keeps no
        trajectory. `scan` loops over the steps (`bbpes.estimators.checkpointed_scan`
        for checkpointed BPTT)."""
        i_app = params["i_app"]
        n = n_steps(self.t_end, self.dt)

        def body(carry, _):
            state, total = carry
            state = self.cell.step(state, i_app, self.dt)
            return (state, total + self.readout(state[0])), None

        state0 = self.cell.initial_state(jnp.shape(i_app))
        state0 = jax.tree.map(lambda s: s.astype(jnp.result_type(i_app, float)), state0)
        (_, total), _ = scan(body, (state0, jnp.zeros_like(state0[0])), None, length=n)
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


FORMS = frozenset({"loss", "checkpointed_loss", "ode_loss", "truncated_loss"})
"""The `LossForms` fields `loss_forms` always fills (`surrogate_loss` too when the
readout is the hard threshold)."""


def forms_offered(hard: bool) -> frozenset[str]:
    """The loss forms of the task with the hard readout (`hard`) or a smooth one."""
    return FORMS | {"surrogate_loss"} if hard else FORMS


def loss_forms(task: TurnOff, *, hard: bool = False, surrogate_slope: float = 1.0):
    """The task's loss `params -> scalar` in every form a learning signal may need
    (`bbpes.signals.LossForms`): its stepper looping with `lax.scan`, with
    `checkpointed_scan`, and with `truncated_scan` (gradients through the last fifth of
    the steps only), and the ODE; when the readout is the hard threshold (`hard`), the
    same task with `surrogate_threshold` (the hard step forward, a fast-sigmoid
    derivative of slope `surrogate_slope` per mV backward), whose truncated form is then
    the truncated one (the hard step's own has no gradient)."""
    from ..estimators.backprop import checkpointed_scan, truncated_scan
    from ..signals import LossForms

    keep = max(1, n_steps(task.t_end, task.dt) // 5)
    surrogate = None
    if hard:
        readout = partial(surrogate_threshold, slope=surrogate_slope)
        surrogate = dataclasses.replace(task, readout=readout)
    return LossForms(
        loss=task.loss,
        checkpointed_loss=partial(task.loss, scan=checkpointed_scan),
        ode_loss=task.ode_loss(),
        surrogate_loss=surrogate.loss if surrogate is not None else None,
        truncated_loss=partial((surrogate or task).loss, scan=partial(truncated_scan, keep=keep)),
    )


def gaussian_smooth(grid: np.ndarray, values: np.ndarray, sigma: float) -> np.ndarray:
    """E[L(I + sigma eps)] on a uniform grid, by discrete convolution with a normalised
    Gaussian (edges padded with the end values)."""
    h = grid[1] - grid[0]
    half = int(np.ceil(4 * sigma / h))
    offsets = np.arange(-half, half + 1) * h
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, kernel, mode="valid")
