"""What every cell model provides, and the one simulation loop they share.

Units everywhere in `bbpes.neurons`: time in ms, voltage in mV, currents in µA/cm²,
conductances in mS/cm², capacitance in µF/cm².
"""

from __future__ import annotations

import abc
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from .readout import hard_threshold, soft_threshold

State = tuple[Array, ...]
"""A cell's state: a tuple of arrays of one shape (one entry per cell), voltage first."""


class AbstractCell(eqx.Module):
    """A point neuron model: its constants (the fields), `initial_state`,
    `vector_field` and, where the default does not suit, `step`, `reset` and `output`.

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

    solver: ClassVar[diffrax.AbstractSolver] = diffrax.Tsit5()
    """The fixed-step scheme of the default `step`; a subclass may set another explicit
    diffrax solver (`solver = diffrax.Heun()`: 2 vector-field evaluations a step)."""

    def step(self, state: State, i_app: Array, dt: float) -> State:
        """Advance `state` by `dt` ms: `reset`, then one step of `solver` (by default
        Tsit5, Tsitouras 2011: explicit Runge-Kutta of order 5, 6 vector-field
        evaluations a step) of `vector_field` with `i_app` held over the step.

        This default lets a new cell be its constants, `initial_state`, `vector_field`
        and `output` (and `reset` for an integrate-and-fire model); the cells of this
        package override it with schemes built for their equations (staggered,
        exponential, exact). Explicit: stable for dt up to about 3 / |lambda| (lambda:
        the fastest eigenvalue of the vector field's Jacobian). Differentiable and
        vmappable. A negative `dt` runs it backwards in time (resets are not undone).
        """
        term = diffrax.ODETerm(lambda t, y, args: self.vector_field(y, args))
        state = self.reset(state)
        solver_state = self.solver.init(term, 0.0, dt, state, i_app)
        new, *_ = self.solver.step(term, 0.0, dt, state, i_app, solver_state, made_jump=False)
        return tuple(new)

    def reset(self, state: State) -> State:
        """The jump of a hybrid model, applied by the default `step` to the state it
        starts from: none by default (`state` unchanged).

        An integrate-and-fire model resets here the cells whose voltage has reached its
        peak, so that the step that reaches the peak returns it (every spike shows in the
        trajectory and in the output for one step) and the next step starts from the
        reset. This is the order of Izhikevich's reference code (2003): find the fired
        cells, reset them, integrate. Spike times are then resolved to one step: each
        reset comes up to `dt` late.
        """
        return state

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
