"""Current-clamp recordings of one cell, read into bbpes's units (ms, mV, nA).

`read_recording` reads sweeps from Igor binary waves (`.ibw`), Axon files (`.abf`), NWB
files (`.nwb`, needs `pip install pynwb`), all through `neo`, or from CSV files, and
returns a `Recording`: voltages with the liquid junction potential subtracted, the
injected currents, and the current step of every sweep, found from the current traces
(or given with `step=` when there are none). `Recording.protocol()` is the same
stimulus for a simulation; `write_csv` saves a recording as a user would have it.

**Sweeps.** Each file gives one or more sweeps: every column of every analog signal of
every `neo` segment (in file order) whose unit is a voltage is a voltage sweep, and
whose unit is a current is a current sweep, so one Axon file with a voltage and a
current channel gives both. A signal without a usable unit counts as what the file was
given for (`voltage_paths` or `current_paths`), in `voltage_unit` or `current_unit`.
Sweeps keep the order of the files, then of the sweeps in each file.

**CSV layout.** Comma-, semicolon-, tab- or space-separated numbers; lines starting
with `#` are comments. The first column is the time. Without a header, a file holds
`time, voltage, current` or, one sweep per file, `time, voltage` (given as a voltage
file) or `time, current` (given as a current file). A header names the columns and so
allows several sweeps per file: a name starting with `v` or holding `volt` is a
voltage sweep, one starting with `i` or holding `curr` or `stim` a current sweep (in
column order), and a unit in brackets or after the last `_` or space is the column's
unit (`time (s)`, `V [mV]`, `I_pA`). Columns without a unit are in `time_unit`,
`voltage_unit` and `current_unit`, by default ms, mV and nA. `write_csv` writes
`time (ms), voltage 0 (mV), ..., current 0 (nA), ...`.

**The step.** In each current trace, a 5-sample running median (which removes noise
spikes) is split into two levels: holding (where the trace begins) and the step. The
step is the longest run of samples more than half-way from holding to the step level;
it must stand out of the sample noise by 6 standard deviations, last at least 5
samples, hold at least half of the samples that far from holding, and end before the
trace does. `start` is the time of its first sample and `end` the time of the first
sample after it (the step covers `start <= t < end`); the holding current is the
median outside the step and the amplitude the median inside it minus the holding (2
samples at each edge left out). A sweep without a step (a 0 pA sweep) takes the step
times of the others; every sweep's step must start and end within 2 samples of the
others'.

Every bad input raises `bbpes.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .recording_files import _UNITS, _check_scale, _common_dt, _load, _paths, _stack
from .recording_files import CURRENT_UNITS as CURRENT_UNITS
from .recording_files import FORMATS as FORMATS
from .recording_files import TIME_UNITS as TIME_UNITS
from .recording_files import VOLTAGE_UNITS as VOLTAGE_UNITS
from .recording_files import PathLike as PathLike
from .recording_step import _find_step as _find_step

if TYPE_CHECKING:
    from .protocol import CurrentClamp


@dataclass(frozen=True)
class Step:
    """A current step given by hand (for recordings without a current trace).

    **Arguments:**

    - `start`, `end`: ms from the first sample; the step covers `start <= t < end`.
    - `amplitudes`: nA above holding, one per sweep (or one number for all).
    - `holding`: nA, one number or one per sweep.
    """

    start: float
    end: float
    amplitudes: float | Sequence[float]
    holding: float | Sequence[float] = 0.0


@dataclass(frozen=True, eq=False)
class Recording:
    """Current-clamp sweeps of one cell, in bbpes's units.

    **Fields:**

    - `voltage`: shape `(n_sweeps, T)`, mV, liquid junction potential subtracted;
      sample k at `k * dt` ms.
    - `dt`: ms between samples.
    - `current`: shape `(n_sweeps, T)`, nA injected, or None.
    - `amplitudes`: nA, the step of each sweep above its holding current.
    - `holding`: nA, the holding current of each sweep.
    - `start`, `end`: ms, the step covers `start <= t < end`.
    - `source`: the files read.
    - `ljp`: mV, the liquid junction potential subtracted from the recorded voltage.
    """

    voltage: np.ndarray
    dt: float
    current: np.ndarray | None
    amplitudes: tuple[float, ...]
    holding: tuple[float, ...]
    start: float
    end: float
    source: tuple[str, ...] = ()
    ljp: float = 0.0

    def __post_init__(self):
        n = self.voltage.shape[0]
        if self.voltage.ndim != 2 or len(self.amplitudes) != n or len(self.holding) != n:
            raise ConfigError(
                f"Recording: voltage of shape {self.voltage.shape} needs one amplitude and "
                f"one holding current per sweep, got {len(self.amplitudes)} and {len(self.holding)}"
            )
        if self.current is not None and self.current.shape != self.voltage.shape:
            raise ConfigError(
                f"Recording: current of shape {self.current.shape} and voltage of shape "
                f"{self.voltage.shape} differ"
            )

    @property
    def n_sweeps(self) -> int:
        return self.voltage.shape[0]

    @property
    def duration(self) -> float:
        """ms: `T * dt`."""
        return self.voltage.shape[1] * self.dt

    @property
    def times(self) -> np.ndarray:
        """Shape `(T,)`, ms: `k * dt`."""
        return np.arange(self.voltage.shape[1]) * self.dt

    def protocol(self, dt: float = 0.025, record_every: int | None = None) -> CurrentClamp:
        """The same stimulus for a simulation stepped every `dt` ms, recording every
        `record_every` steps (by default `self.dt / dt`, so that the simulated samples
        fall on the recorded ones)."""
        from .protocol import CurrentClamp  # deferred: protocol.py is written separately

        if record_every is None:
            record_every = round(self.dt / dt)
            if record_every < 1 or abs(record_every * dt - self.dt) > 1e-6 * self.dt:
                raise ConfigError(
                    f"the recording's sample step {self.dt} ms is not a multiple of the "
                    f"simulation step {dt} ms; pick dt = {self.dt} / k, or record_every"
                )
        same = all(h == self.holding[0] for h in self.holding)
        return CurrentClamp(
            amplitudes=self.amplitudes,
            start=self.start,
            end=self.end,
            duration=self.duration,
            dt=dt,
            holding=self.holding[0] if same else self.holding,
            record_every=record_every,
        )


def read_recording(
    voltage_paths: PathLike | Sequence[PathLike],
    current_paths: PathLike | Sequence[PathLike] | None = None,
    *,
    format: str = "auto",
    ljp: float = 0.0,
    voltage_unit: str | None = None,
    current_unit: str | None = None,
    time_unit: str | None = None,
    step: Step | tuple | None = None,
    sweeps: Sequence[int] | None = None,
) -> Recording:
    """Read the current-clamp sweeps of one cell (see the module docstring for formats).

    **Arguments:**

    - `voltage_paths`: one file or several (one sweep each, or several sweeps each).
    - `current_paths`: the injected currents, in the same order, when they are in other
      files than the voltages; without it, currents found in the voltage files are used.
    - `format`: `"auto"` (from the file extension), `"csv"`, `"igor"`, `"abf"`, `"nwb"`.
    - `ljp`: mV, the liquid junction potential, subtracted from the voltages.
    - `voltage_unit` (`"mV"`, `"V"`), `current_unit` (`"nA"`, `"pA"`), `time_unit`
      (`"ms"`, `"s"`): for CSV columns and signals that declare no unit.
    - `step`: a `Step` or `(start_ms, end_ms, amplitudes_nA[, holding_nA])`; overrides
      the step found in the current traces, and is needed when there are none.
    - `sweeps`: indices of the sweeps to keep (in reading order), by default all.

    **Returns:** a `Recording`.
    """
    units = {"time": time_unit, "voltage": voltage_unit, "current": current_unit}
    for kind, unit in units.items():
        if unit is not None and unit not in _UNITS[kind]:
            raise ConfigError(f"{kind}_unit {unit!r}: use one of {', '.join(_UNITS[kind])}")
    voltage_files = _paths(voltage_paths)
    current_files = _paths(current_paths) if current_paths is not None else []
    read = [_load(p, format, "voltage", units) for p in voltage_files]
    voltage = [v for f in read for v in f.voltage]
    current = [i for f in read for i in f.current]
    dts = [dt for f in read for dt in f.dt]
    if not voltage:
        raise ConfigError(f"no voltage sweep in {', '.join(map(str, voltage_files))}")
    if current_files:
        read = [_load(p, format, "current", units) for p in current_files]
        current = [i for f in read for i in f.current]
        dts += [dt for f in read for dt in f.dt]
    if current and len(current) != len(voltage):
        raise ConfigError(
            f"{len(voltage)} voltage sweeps but {len(current)} current sweeps: give one "
            f"current trace per voltage trace"
        )
    if sweeps is not None:
        bad = [k for k in sweeps if not -len(voltage) <= k < len(voltage)]
        if bad or not len(sweeps):
            raise ConfigError(f"sweeps {bad} out of range: {len(voltage)} sweeps were read")
        voltage = [voltage[k] for k in sweeps]
        current = [current[k] for k in sweeps] if current else []
    dt = _common_dt(dts)
    v = _stack(voltage, "voltage")
    i = _stack(current, "current") if current else None
    if i is not None and i.shape != v.shape:
        raise ConfigError(
            f"voltage sweeps have {v.shape[1]} samples but current sweeps {i.shape[1]}"
        )
    _check_scale(v, i)
    if step is not None:
        start, end, amplitudes, holding = _given_step(step, v.shape[0], v.shape[1] * dt)
    elif i is None:
        raise ConfigError(
            "no current trace to find the step in: give current_paths, or "
            "step=(start_ms, end_ms, amplitudes_nA)"
        )
    else:
        start, end, amplitudes, holding = _find_step(i, dt)
    return Recording(
        voltage=v - ljp,
        dt=dt,
        current=i,
        amplitudes=amplitudes,
        holding=holding,
        start=start,
        end=end,
        source=tuple(str(p) for p in [*voltage_files, *current_files]),
        ljp=float(ljp),
    )


def write_csv(recording: Recording, path: PathLike) -> None:
    """Save `recording` as one CSV file with a header, in ms, mV and nA (the voltage as
    stored, junction potential subtracted). Without current traces the current is
    written from the step, so that `read_recording(path)` finds the same step again
    (unless every step is 0 nA: read such a file with `step=`).
    Numbers are written exactly (shortest round-trip form)."""
    r = recording
    current = r.current
    if current is None:
        on = (r.times >= r.start) & (r.times < r.end)
        current = np.asarray(r.holding)[:, None] + np.asarray(r.amplitudes)[:, None] * on
    names = ["time (ms)"]
    names += [f"voltage {k} (mV)" for k in range(r.n_sweeps)]
    names += [f"current {k} (nA)" for k in range(r.n_sweeps)]
    table = np.column_stack([r.times, r.voltage.T, current.T]).tolist()
    lines = [f"# bbpes recording; junction potential of {r.ljp} mV subtracted", ",".join(names)]
    lines += [",".join(map(repr, row)) for row in table]
    Path(path).write_text("\n".join(lines) + "\n")


def _given_step(step, n_sweeps: int, duration: float):
    step = step if isinstance(step, Step) else Step(*step)
    start, end = float(step.start), float(step.end)
    if not 0.0 <= start < end <= duration:
        raise ConfigError(
            f"step from {start:g} to {end:g} ms: needs 0 <= start < end <= {duration:g} ms "
            f"(the recording's length)"
        )
    return (
        start,
        end,
        _per_sweep(step.amplitudes, n_sweeps, "amplitudes"),
        _per_sweep(step.holding, n_sweeps, "holding"),
    )


def _per_sweep(values, n: int, what: str) -> tuple[float, ...]:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if len(values) == 1:
        values = np.repeat(values, n)
    if len(values) != n:
        raise ConfigError(f"step {what}: {len(values)} values for {n} sweeps")
    return tuple(float(x) for x in values)
