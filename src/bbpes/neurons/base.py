"""What every cell model provides, and the one simulation loop they share.

Units everywhere in `bbpes.neurons`: time in ms, voltage in mV, currents in µA/cm²,
conductances in mS/cm², capacitance in µF/cm².
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from .readout import hard_threshold, soft_threshold

State = tuple[Array, ...]
"""A cell's state: a tuple of arrays of one shape (one entry per cell), voltage first."""


class AbstractCell(eqx.Module):
    """A point neuron model.

    Subclasses are equinox modules whose fields are the cell's constants, so a cell is
    a pytree. To simulate a batch of cells, give the varied fields a leading axis and
    map with `eqx.filter_vmap(f, in_axes=(eqx.if_array(0), ...))`: array fields are
    mapped, plain floats shared.
    """

    @abc.abstractmethod
    def initial_state(self, shape: tuple[int, ...] = ()) -> State:
        """The state a simulation starts from when none is given, for cells of `shape`."""

    @abc.abstractmethod
    def vector_field(self, state: State, i_app: Array) -> State:
        """d(state)/dt in units per ms, for an applied current `i_app` (µA/cm²).

        The form diffrax solvers integrate: `lambda t, y, args: cell.vector_field(y, args)`.
        """

    @abc.abstractmethod
    def step(self, state: State, i_app: Array, dt: float) -> State:
        """Advance `state` by `dt` ms with the cell's own fixed-step scheme.

        A negative `dt` runs the same scheme backwards in time.
        """

    def voltage(self, state: State) -> Array:
        """Membrane potential (mV) of `state`."""
        return state[0]

    def output(self, state: State, hard: bool = False) -> Array:
        """The cell's spike output in [0, 1], what synapses and readouts see: the soft
        T(V) of the paper (Eq. 11, V_T = 10 mV, K_p = 3 mV), or the hard threshold
        (Eq. 10) when `hard`. Cells whose voltage scale differs override this."""
        V = self.voltage(state)
        return hard_threshold(V) if hard else soft_threshold(V)


def n_steps(t_end: float, dt: float) -> int:
    """Number of fixed steps of size |dt| covering the duration `t_end` (Python floats, ms)."""
    n = round(float(t_end) / abs(float(dt)))
    if n < 1 or abs(n * abs(dt) - t_end) > 1e-6 * max(abs(t_end), 1.0):
        raise ValueError(f"t_end={t_end} ms is not a positive whole number of steps of dt={dt} ms")
    return n


def simulate(
    cell: AbstractCell,
    i_app: Array | float,
    t_end: float,
    dt: float,
    state0: State | None = None,
) -> tuple[Array, ...]:
    """Run `cell` under a constant current with its own stepper.

    **Arguments:**

    - `cell`: any `AbstractCell`.
    - `i_app`: applied current (µA/cm²), a scalar or an array whose shape is the shape
      of the population of cells simulated at once.
    - `t_end`, `dt`: duration and step (ms), Python floats; `t_end / |dt|` steps are
      taken. A negative `dt` runs the stepper backwards in time (times count down from 0).
    - `state0`: initial state; `cell.initial_state(jnp.shape(i_app))` if not given.

    **Returns:** `(times, *state)`, e.g. `(times, V, w)` for Morris-Lecar: `times` of
    shape `(n + 1,)` in ms and each state variable of shape `(n + 1, *jnp.shape(i_app))`,
    the initial state included.

    Jit-able (with `t_end`, `dt` static) and vmap-able over `i_app` and over cells.
    """
    n = n_steps(t_end, dt)
    i_app = jnp.asarray(i_app, dtype=jnp.result_type(float))
    if state0 is None:
        state0 = cell.initial_state(i_app.shape)
    state0 = tuple(jnp.broadcast_to(jnp.asarray(s, i_app.dtype), i_app.shape) for s in state0)

    def body(state, _):
        new = cell.step(state, i_app, dt)
        return new, new

    _, traj = jax.lax.scan(body, state0, None, length=n)
    times = jnp.arange(n + 1, dtype=i_app.dtype) * dt
    return (times, *(jnp.concatenate([s0[None], s], axis=0) for s0, s in zip(state0, traj)))
