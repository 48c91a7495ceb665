"""Current-clamp protocols and the simulator that plays them to a cell.

Currents here are in nA (what an electrode injects); `simulate` converts them to the
current density of `bbpes.neurons` (µA/cm²) with the cell's membrane `area` (µm²):
I nA = I 1e5 / area µA/cm².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.sharding import NamedSharding, PartitionSpec

from ..errors import ConfigError
from ..neurons.base import AbstractCell
from ..parallel import POPULATION, population_mesh_for


@dataclass(frozen=True)
class CurrentClamp:
    """Current-clamp sweeps: in sweep k, `holding[k] + amplitudes[k]` nA from `start` to
    `end` ms, `holding[k]` otherwise; `duration` ms at step `dt`.

    The step is switched as NEURON's `IClamp` switches it in the fixed-step scheme:
    NEURON evaluates currents at the midpoint t + dt/2 of a step, so the step is on in
    the time steps whose midpoint lies in [start, end) (step n runs from n dt to
    (n + 1) dt). `start` and `end` need not be multiples of `dt`.

    **Fields:**

    - `amplitudes`: the step of each sweep (nA), one per sweep.
    - `start`, `end`: when the step is on (ms), 0 <= start < end <= duration.
    - `duration`: length of each sweep (ms), a whole number of steps of `dt`.
    - `dt`: the time step (ms), 0.025 by default (NEURON's).
    - `holding`: the current on throughout (nA), shared or one per sweep.
    - `record_every`: keep every k-th sample of V (4 at dt 0.025 gives eFEL's 0.1 ms
      interpolation grid); must divide the number of steps.

    Frozen and hashable: a jitted function takes it as a static argument, and the
    same protocol reuses the compiled program.
    """

    amplitudes: tuple[float, ...]
    start: float
    end: float
    duration: float
    dt: float = 0.025
    holding: float | tuple[float, ...] = 0.0
    record_every: int = 1

    def __post_init__(self):
        amps = self.amplitudes
        if isinstance(amps, int | float):
            amps = (amps,)
        amps = tuple(float(a) for a in amps)
        if not amps or not all(math.isfinite(a) for a in amps):
            raise ConfigError(f"CurrentClamp needs one or more finite amplitudes (nA), got {amps}")
        object.__setattr__(self, "amplitudes", amps)
        hold = self.holding
        if isinstance(hold, int | float):
            hold = float(hold)
        else:
            hold = tuple(float(x) for x in hold)
            if len(hold) != len(amps):
                raise ConfigError(
                    f"CurrentClamp: {len(hold)} holding currents for {len(amps)} sweeps; "
                    "give one per sweep or a single float"
                )
        if not all(math.isfinite(x) for x in np.atleast_1d(hold)):
            raise ConfigError(f"CurrentClamp: holding current must be finite, got {hold}")
        object.__setattr__(self, "holding", hold)
        dt, duration = float(self.dt), float(self.duration)
        if not dt > 0:
            raise ConfigError(f"CurrentClamp: dt must be > 0 ms, got {self.dt}")
        if not duration > 0:
            raise ConfigError(f"CurrentClamp: duration must be > 0 ms, got {self.duration}")
        n = round(duration / dt)
        if n < 1 or abs(n * dt - duration) > 1e-9 * duration:
            raise ConfigError(
                f"CurrentClamp: duration {duration} ms is not a whole number of steps of dt {dt} ms"
            )
        if not 0 <= self.start < self.end:
            raise ConfigError(
                f"CurrentClamp: need 0 <= start < end, got start {self.start}, end {self.end} ms"
            )
        if self.end > duration:
            raise ConfigError(
                f"CurrentClamp: end {self.end} ms is after the end of the sweep ({duration} ms)"
            )
        k = self.record_every
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or n % k:
            raise ConfigError(
                f"CurrentClamp: record_every must be a positive int dividing the {n} steps, got {k}"
            )
        on, off = self.window
        if on == off:
            raise ConfigError(
                f"CurrentClamp: the step from {self.start} to {self.end} ms covers no step of dt {dt} ms"
            )

    @property
    def n_sweeps(self) -> int:
        """Number of sweeps (one per amplitude)."""
        return len(self.amplitudes)

    @property
    def n_steps(self) -> int:
        """Number of time steps of `dt` in a sweep."""
        return round(self.duration / self.dt)

    @property
    def n_recorded(self) -> int:
        """Samples of V kept per sweep: `n_steps / record_every + 1` (t = 0 included)."""
        return self.n_steps // self.record_every + 1

    @property
    def window(self) -> tuple[int, int]:
        """`(n_on, n_off)`: the step is on in time steps n_on <= n < n_off."""
        mid = (np.arange(self.n_steps) + 0.5) * self.dt
        on = np.flatnonzero((mid >= self.start) & (mid < self.end))
        return (int(on[0]), int(on[-1]) + 1) if on.size else (0, 0)

    def holdings(self) -> np.ndarray:
        """The holding current of each sweep (nA), shape `(n_sweeps,)`."""
        return np.broadcast_to(np.asarray(self.holding, np.float64), (self.n_sweeps,)).copy()

    def times(self) -> np.ndarray:
        """Times of the recorded samples (ms, float64), shape `(n_recorded,)`: 0,
        `record_every dt`, ..., `duration`."""
        return np.arange(self.n_recorded) * (self.record_every * self.dt)

    def current(self) -> np.ndarray:
        """The current applied in each time step (nA, float64), shape `(n_sweeps, n_steps)`:
        entry n is the current from n dt to (n + 1) dt."""
        on, off = self.window
        steps = np.arange(self.n_steps)
        pulse = ((steps >= on) & (steps < off)).astype(np.float64)
        return self.holdings()[:, None] + np.asarray(self.amplitudes)[:, None] * pulse


_STEPS_PER_ITERATION = 8  # steps unrolled in one scan iteration (more: longer compiles)
_LONG_TRACE = 4096  # samples; shorter traces are recorded one sample per scan iteration


def _sweep(cell: AbstractCell, amplitude: Array, holding: Array, protocol: CurrentClamp) -> Array:
    """V (mV) of one cell in one sweep at the recorded times, shape `(n_recorded,)`.

    What keeps it fast: the scan carries only the cell's state, and the current is
    recomputed from the step index (no per-step input array). Each scan iteration
    records B samples, each taken before its `record_every` steps, as one `(B,)` row
    (B = 8 / record_every, at least 1, for traces of over 4,096 samples; else 1). The
    scan's output `(n_iterations, B)` per cell is batched as `(n_iterations, P, S, B)`
    and moved to `(P, S, n_iterations, B)` in contiguous chunks of B: with B = 1 that
    final transpose took as long as the simulation itself (float32, population 1,000,
    8,000 steps). The last iteration may run up to B record_every - 1 steps past
    `duration`, under the holding current; they are cut off.
    """
    on, off = protocol.window
    k, dt = protocol.record_every, protocol.dt
    # Short traces: B = 1, since the transpose is then cheap and unrolling costs compile time.
    B = max(1, _STEPS_PER_ITERATION // k) if protocol.n_recorded > _LONG_TRACE else 1
    n_iterations = -(-protocol.n_recorded // B)
    to_density = 1e5 / cell.area  # nA -> µA/cm² for an area in µm²
    state0 = cell.initial_state()
    i_hold = jnp.asarray(holding * to_density, state0[0].dtype)
    i_on = jnp.asarray((holding + amplitude) * to_density, state0[0].dtype)

    def iteration(state, j):
        samples = []
        for b in range(B):  # unrolled: B and k are small and static
            samples.append(state[0])
            for s in range(k):
                n = (j * B + b) * k + s
                i_app = jnp.where((n >= on) & (n < off), i_on, i_hold)
                state = cell.step(state, i_app, dt)
        return state, jnp.stack(samples)

    _, v = jax.lax.scan(iteration, state0, jnp.arange(n_iterations))
    return v.reshape(-1)[: protocol.n_recorded]


def _sweeps(cell: AbstractCell, protocol: CurrentClamp) -> Array:
    amps = jnp.asarray(protocol.amplitudes, jnp.result_type(float))
    holds = jnp.asarray(protocol.holdings(), jnp.result_type(float))
    return jax.vmap(_sweep, in_axes=(None, 0, 0, None))(cell, amps, holds, protocol)


def _check_cell(cell) -> None:
    if not isinstance(cell, AbstractCell) or not hasattr(cell, "area"):
        raise ConfigError(
            f"simulate needs a bbpes.neurons cell with a membrane `area` (µm²), got {type(cell).__name__}"
        )


@eqx.filter_jit
def _simulate(cell: AbstractCell, protocol: CurrentClamp) -> Array:
    return _sweeps(cell, protocol)


@eqx.filter_jit
def _simulate_population(cells: AbstractCell, protocol: CurrentClamp) -> Array:
    run = eqx.filter_vmap(_sweeps, in_axes=(eqx.if_array(0), None))
    return run(cells, protocol)


def simulate(cell: AbstractCell, protocol: CurrentClamp) -> Array:
    """V (mV) of `cell` in every sweep of `protocol`, shape `(n_sweeps, n_recorded)`, at
    `protocol.times()` (t = 0 first), in the default float dtype.

    `cell` is one cell with a membrane `area` (µm², e.g. `NeuronHH`, `Pospischil`),
    stepped by its own `step` from `cell.initial_state()`. Jitted (the protocol and
    the cell's float fields are static: array fields avoid recompiling for new values),
    differentiable in the cell's array fields.
    """
    _check_cell(cell)
    return _simulate(cell, protocol)


def simulate_population(cells: AbstractCell, protocol: CurrentClamp) -> Array:
    """V (mV) of a population of cells in every sweep, shape `(P, n_sweeps, n_recorded)`.

    `cells` is one cell pytree whose varied fields are arrays with a leading population
    axis of size P and whose shared fields are Python floats (what
    `ParameterSpace.cells` builds). All sweeps of all members run as one jitted program:
    vmap over the population and the sweeps, `lax.scan` over time. With several JAX
    devices whose number divides P (`bbpes.parallel.split_cpu` makes one per CPU core)
    the population is split across them, as the ES population is.
    """
    _check_cell(cells)
    leaves = jax.tree.leaves(eqx.filter(cells, eqx.is_array))
    sizes = {x.shape[0] if x.ndim else "none (a 0-d array)" for x in leaves}
    if len(sizes) != 1 or not all(isinstance(n, int) for n in sizes):
        raise ConfigError(
            "simulate_population needs the varied fields of `cells` as arrays with one "
            f"leading population axis (shared fields as floats); got leading sizes {sorted(map(str, sizes))}"
        )
    mesh = population_mesh_for(sizes.pop())
    if mesh is not None:  # several devices (e.g. one per CPU core): split the population
        split = NamedSharding(mesh, PartitionSpec(POPULATION))
        cells = jax.tree.map(lambda x: jax.device_put(x, split) if eqx.is_array(x) else x, cells)
    return _simulate_population(cells, protocol)


def simulate_float64(cell: AbstractCell, protocol: CurrentClamp) -> np.ndarray:
    """`simulate` in float64, as a NumPy array `(n_sweeps, n_recorded)` of mV.

    Runs inside `jax.enable_x64(True)`, a scoped setting: jax's global x64 flag is left
    as it is (when it is already on this is just `simulate`). The cell's array fields
    are cast to float64 first.
    """
    with jax.enable_x64(True):
        cell64 = jax.tree.map(
            lambda x: (
                jnp.asarray(x, jnp.float64)
                if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating)
                else x
            ),
            cell,
        )
        return np.asarray(simulate(cell64, protocol), dtype=np.float64)
