"""Reading recording files into sweeps, in bbpes's units (ms, mV, nA).

The loaders behind `bbpes.fitting.recordings.read_recording`: the CSV reader (header
names and units, delimiters, the time column) and the `neo` reader for Igor, Axon and
NWB files, the unit tables (`TIME_UNITS`, `VOLTAGE_UNITS`, `CURRENT_UNITS`) and file
formats (`FORMATS`), and the checks on the sweeps read: one sample step, equal lengths,
finite samples, voltages and currents in plausible units. The layouts are described in
the docstring of `bbpes.fitting.recordings`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError

PathLike = str | os.PathLike[str]

TIME_UNITS = {"ms": 1.0, "s": 1e3}  # to ms
VOLTAGE_UNITS = {"mV": 1.0, "V": 1e3}  # to mV
CURRENT_UNITS = {"nA": 1.0, "pA": 1e-3}  # to nA
_UNITS = {"time": TIME_UNITS, "voltage": VOLTAGE_UNITS, "current": CURRENT_UNITS}
_DEFAULT_UNIT = {"time": "ms", "voltage": "mV", "current": "nA"}

FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".dat": "csv"}
FORMATS |= {".ibw": "igor", ".abf": "abf", ".nwb": "nwb"}
_NEO_IO = {"igor": ("IgorIO", "igor2"), "abf": ("AxonIO", None), "nwb": ("NWBIO", "pynwb")}


@dataclass
class _Sweeps:
    """The sweeps of one file: traces in mV / nA, each of shape `(T,)`, and `dt` in ms."""

    voltage: list[np.ndarray] = field(default_factory=list)
    current: list[np.ndarray] = field(default_factory=list)
    dt: list[float] = field(default_factory=list)


def _paths(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise ConfigError("no recording files given")
    for p in items:
        if not Path(p).is_file():
            raise ConfigError(f"recording file not found: {p}")
    return [Path(p) for p in items]


def _load(path: Path, format: str, role: str, units: dict) -> _Sweeps:
    """The sweeps of one file; `role` ("voltage" or "current") is what it was given as."""
    fmt = FORMATS.get(path.suffix.lower()) if format == "auto" else format
    if fmt is None:
        raise ConfigError(
            f"{path}: unknown recording format {path.suffix!r}; known extensions: "
            f"{', '.join(FORMATS)}, or pass format= (csv, igor, abf, nwb)"
        )
    if fmt == "csv":
        sweeps = _load_csv(path, role, units)
    elif fmt in _NEO_IO:
        sweeps = _load_neo(path, fmt, role, units)
    else:
        raise ConfigError(f"unknown recording format {fmt!r}: use auto, csv, igor, abf or nwb")
    wanted = sweeps.voltage if role == "voltage" else sweeps.current
    if not wanted:
        other = "current" if role == "voltage" else "voltage"
        raise ConfigError(
            f"{path} holds no {role} trace (only {other}): check which files are the "
            f"voltages and which the currents"
        )
    return sweeps


def _load_neo(path: Path, fmt: str, role: str, units: dict) -> _Sweeps:
    io_name, needs = _NEO_IO[fmt]
    if needs is not None and importlib.util.find_spec(needs) is None:
        raise ConfigError(f"reading {path.suffix} files needs {needs}: pip install {needs}")
    if units["time"] is not None:
        raise ConfigError(f"{path}: time_unit is for CSV files; {fmt} files declare their own")
    import neo  # deferred: neo is slow to import and only file reading needs it

    reader = None
    try:
        reader = getattr(neo.io, io_name)(filename=str(path))
        blocks = reader.read(lazy=False)
    except Exception as error:  # neo raises anything on a damaged or foreign file
        raise ConfigError(f"{path}: not a readable {fmt} file ({error})") from None
    finally:
        io_nwb = getattr(reader, "_io_nwb", None)
        if io_nwb is not None:  # NWBIO leaves its HDF5 file open
            io_nwb.close()
    sweeps = _Sweeps()
    for segment in (s for b in blocks for s in b.segments):
        for signal in segment.analogsignals:
            kind, scale = _neo_kind(signal.units, role, units, path)
            values = np.asarray(signal.magnitude, dtype=np.float64).reshape(len(signal), -1)
            dt = float(signal.sampling_period.rescale("ms").magnitude)
            for column in values.T:
                (sweeps.voltage if kind == "voltage" else sweeps.current).append(column * scale)
                sweeps.dt.append(dt)
    return sweeps


def _neo_kind(unit, role: str, units: dict, path: Path) -> tuple[str, float]:
    """("voltage" or "current", the factor to mV or nA) of a neo signal's `unit`."""
    for kind, target in (("voltage", "mV"), ("current", "nA")):
        try:
            scale = float((1.0 * unit).rescale(target).magnitude)
        except ValueError:
            continue
        setting = units[kind]
        if setting is not None and not np.isclose(scale, _UNITS[kind][setting]):
            raise ConfigError(
                f"{path} declares its {kind} in {unit.dimensionality}, but {kind}_unit is "
                f"{setting!r}: leave {kind}_unit out for files that declare units"
            )
        return kind, scale
    return role, _UNITS[role][units[role] or _DEFAULT_UNIT[role]]


_UNIT_IN_NAME = re.compile(r"^(?P<name>.*?)\s*[(\[](?P<unit>[^)\]]*)[)\]]\s*$")
_UNIT_TOKENS = {u.lower(): u for table in _UNITS.values() for u in table}


def _load_csv(path: Path, role: str, units: dict) -> _Sweeps:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a readable CSV file ({error})") from None
    rows = [r for r in text.splitlines() if r.strip() and not r.lstrip().startswith("#")]
    if len(rows) < 2:
        raise ConfigError(f"{path}: a CSV recording needs at least two rows of numbers")
    delimiter = next((d for d in ",;\t" if d in rows[0]), None)
    header = [c.strip() for c in rows[0].split(delimiter)]
    try:
        [float(c) for c in header]
        header = None
    except ValueError:
        rows = rows[1:]
    try:
        data = np.loadtxt(rows, delimiter=delimiter, ndmin=2, dtype=np.float64)
    except ValueError as error:
        raise ConfigError(f"{path}: not a table of numbers ({error})") from None
    if data.shape[1] < 2 or len(data) < 2:
        raise ConfigError(f"{path}: a CSV recording needs a time column and a data column")
    columns = _csv_columns(header, data.shape[1], role, path)
    sweeps = _Sweeps()
    for k, (kind, unit) in enumerate(columns):
        scale = _csv_scale(kind, unit, units, path)
        if kind == "time":
            dt = _uniform_step(data[:, k] * scale, path)
        else:
            (sweeps.voltage if kind == "voltage" else sweeps.current).append(data[:, k] * scale)
    sweeps.dt = [dt] * (len(sweeps.voltage) + len(sweeps.current))
    return sweeps


def _csv_columns(header, n: int, role: str, path: Path) -> list[tuple[str, str | None]]:
    """(kind, unit or None) of every column; the first is the time."""
    if header is None:
        kinds = {("voltage", 2): ["voltage"], ("current", 2): ["current"]}
        kinds[("voltage", 3)] = kinds[("current", 3)] = ["voltage", "current"]
        if (role, n) not in kinds:
            raise ConfigError(
                f"{path}: {n} columns and no header; name the columns in a header line "
                f"(time, voltage 0, voltage 1, ..., current 0, ...)"
            )
        return [("time", None)] + [(kind, None) for kind in kinds[(role, n)]]
    if len(header) != n:
        raise ConfigError(f"{path}: {len(header)} names in the header but {n} columns")
    columns = []
    for k, raw in enumerate(header):
        name, unit = _split_unit(raw)
        low = name.lower()
        if k == 0:
            kind = "time"
        elif low.startswith("v") or "volt" in low:
            kind = "voltage"
        elif low.startswith("i") or "curr" in low or "stim" in low:
            kind = "current"
        else:
            raise ConfigError(
                f"{path}: column {raw!r} is neither a voltage (name it v..., voltage...) "
                f"nor a current (i..., current...)"
            )
        columns.append((kind, unit))
    return columns


def _split_unit(raw: str) -> tuple[str, str | None]:
    """`"time (s)"`, `"V [mV]"`, `"I_pA"` -> (name, unit); the unit is None if absent."""
    match = _UNIT_IN_NAME.match(raw)
    if match:
        return match["name"], match["unit"].strip()
    parts = re.split(r"[_\s]+", raw.strip())
    if len(parts) > 1 and parts[-1].lower() in _UNIT_TOKENS:
        return " ".join(parts[:-1]), _UNIT_TOKENS[parts[-1].lower()]
    return raw, None


def _csv_scale(kind: str, unit: str | None, units: dict, path: Path) -> float:
    table, setting = _UNITS[kind], units[kind]
    if unit is not None:
        unit = _UNIT_TOKENS.get(unit.lower(), unit)
        if unit not in table:
            raise ConfigError(f"{path}: {kind} unit {unit!r}; use one of {', '.join(table)}")
        if setting is not None and setting != unit:
            raise ConfigError(
                f"{path}: the header gives the {kind} in {unit} but {kind}_unit is {setting!r}"
            )
    return table[unit or setting or _DEFAULT_UNIT[kind]]


def _uniform_step(t: np.ndarray, path: Path) -> float:
    """ms between samples of the time column `t` (ms), which must be evenly spaced."""
    dt = (t[-1] - t[0]) / (len(t) - 1)
    if not dt > 0:
        raise ConfigError(f"{path}: the time column (first column) must increase")
    if np.max(np.abs(t - t[0] - dt * np.arange(len(t)))) > 0.25 * dt:
        raise ConfigError(f"{path}: the time column is not evenly spaced (gaps or jitter)")
    return float(dt)


def _common_dt(dts: list[float]) -> float:
    dt = dts[0]
    if any(abs(d - dt) > 1e-4 * dt for d in dts):
        steps = ", ".join(f"{d:g}" for d in sorted(set(dts)))
        raise ConfigError(f"sweeps are sampled at different steps ({steps} ms)")
    if not 1e-3 <= dt <= 10.0:
        hint = "seconds given as ms" if dt < 1e-3 else "ms given as seconds"
        raise ConfigError(f"a sample step of {dt:g} ms looks like {hint}: check time_unit")
    return dt


def _stack(traces: list[np.ndarray], kind: str) -> np.ndarray:
    lengths = sorted({len(t) for t in traces})
    if len(lengths) > 1:
        raise ConfigError(f"{kind} sweeps of different lengths ({lengths} samples)")
    values = np.stack(traces)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        sweep, k = bad[0]
        raise ConfigError(
            f"{kind} sweep {sweep} has {len(bad)} NaN or infinite samples (first at sample {k})"
        )
    return values


def _check_scale(voltage: np.ndarray, current: np.ndarray | None) -> None:
    """Catch voltages and currents read in the wrong unit (V for mV, pA for nA)."""
    top = float(np.max(np.abs(voltage)))
    if top < 1.0:
        raise ConfigError(
            f"the voltage never exceeds {top:.3g} mV in size: volts read as mV? "
            f"set voltage_unit='V'"
        )
    if top > 1000.0:
        raise ConfigError(
            f"the voltage reaches {top:.3g} mV: mV read as volts? set voltage_unit='mV'"
        )
    if current is None:
        return
    top = float(np.max(np.abs(current)))
    if top > 20.0:  # whole-cell current clamp stays within a few nA
        raise ConfigError(f"the current reaches {top:.3g} nA: pA read as nA? set current_unit='pA'")
    if 0.0 < top < 1e-3:
        raise ConfigError(
            f"the current never exceeds {top * 1e3:.3g} pA in size: nA read as pA? "
            f"set current_unit='nA'"
        )
