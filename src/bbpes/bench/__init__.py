"""Benchmarks, `bbpes bench NAME`: performance measurements printed (and saved) as JSON.

Each benchmark module defines `BENCHMARK = Benchmark(name, summary, run, defaults, quick)`;
add new modules to `_MODULES`. A module whose optional dependency is missing here is
left out of the registry (`unavailable()` says why), so the others still run.

Two names are not benchmarks but the speed record built from them:

- `bbpes bench all --out DIR [--set scale=paper] [--set only=sim,es]
  [--set baseline=OLD.json]`: every benchmark in turn (`--quick` sizes unless
  `scale=paper`), each result in `DIR/NAME.json`, and `DIR/all.json` with the date, the
  commit, the load average and each benchmark's ratios (`ratios`);
- `bbpes bench compare --set old=OLD.json --set new=NEW.json [--set tolerance=0.3]`:
  two such records compared ratio by ratio (`compare`), never by absolute seconds.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runs import atomic_write_json, to_jsonable
from ..settings import parse_value

_MODULES: list[str] = [
    "sim",
    "es",
    "devices",
    "memory",
    "roofline",
    "nne_generation",
    "ensemble",
    "peers",
]
RECORD = ("all", "compare")
"""The names of the speed record's commands (not benchmarks themselves)."""

ALL_DEFAULTS: dict[str, Any] = {"scale": "quick", "only": [""], "baseline": "", "tolerance": 0.3}
COMPARE_DEFAULTS: dict[str, Any] = {"old": "", "new": "", "tolerance": 0.3}

RATIO_MARKS = ("_over_", "speedup", "fraction_of_peak", "growth_")
"""A result key holding one of these is a ratio of two things measured in one command."""
LOWER_IS_BETTER = ("growth_",)
"""Ratios where smaller is better (memory growth with trial length); for the rest
(ours over theirs, speedups, fractions of peak) larger is better."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str
    run: Callable[[dict[str, Any]], dict[str, Any]]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)


def _import_all() -> tuple[dict[str, Benchmark], dict[str, str]]:
    found, missing = {}, {}
    for module in _MODULES:
        try:
            benchmark = importlib.import_module(f"{__name__}.{module}").BENCHMARK
        except ImportError as error:  # an optional dependency (evosax, Brian2) is missing
            missing[module.replace("_", "-")] = str(error)
            continue
        found[benchmark.name] = benchmark
    return found, missing


def registry() -> dict[str, Benchmark]:
    """Every benchmark that can be imported here, by name."""
    return _import_all()[0]


def unavailable() -> dict[str, str]:
    """Benchmarks that cannot be imported here, with the import error."""
    return _import_all()[1]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import jax
    import psutil

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": psutil.cpu_count(logical=True),
        "memory_bytes": psutil.virtual_memory().total,
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }


def _settings(name: str, defaults: Mapping[str, Any], overrides: Mapping[str, str] | None):
    config = dict(defaults)
    for key, raw in (overrides or {}).items():
        if key not in config:
            raise ConfigError(f"unknown setting '{key}' for benchmark {name}")
        config[key] = parse_value(key, raw, defaults[key])
    return config


def run_benchmark(
    name: str,
    overrides: Mapping[str, str] | None = None,
    *,
    quick: bool = False,
    out: str | None = None,
) -> dict[str, Any]:
    """Run benchmark `name` (or the record's `all` / `compare`), print its JSON and
    write it to `out` (for `all`: a directory)."""
    if name == "all":
        return run_all(_settings(name, ALL_DEFAULTS, overrides), out, quick=quick)
    if name == "compare":
        config = _settings(name, COMPARE_DEFAULTS, overrides)
        if not config["old"] or not config["new"]:
            raise ConfigError("bench compare needs --set old=OLD.json --set new=NEW.json")
        result = compare(_read(config["old"]), _read(config["new"]), config["tolerance"])
        return _emit({"benchmark": "compare", "config": config, **result}, out)
    benchmarks, missing = _import_all()
    if name not in benchmarks:
        if name in missing:
            raise ConfigError(f"benchmark {name} cannot run here: {missing[name]}")
        known = ", ".join([*benchmarks, *RECORD])
        raise ConfigError(f"unknown benchmark '{name}' (known: {known})")
    benchmark = benchmarks[name]
    config = {**benchmark.defaults, **(benchmark.quick if quick else {})}
    config.update(
        {key: _settings(name, benchmark.defaults, overrides)[key] for key in overrides or {}}
    )
    result = {"benchmark": name, "config": config, "machine": machine(), **benchmark.run(config)}
    return _emit(result, out)


def _emit(result: dict[str, Any], out: str | Path | None) -> dict[str, Any]:
    print(json.dumps(to_jsonable(result), indent=2))
    if out is not None:
        atomic_write_json(Path(out), result)
    return result


def _read(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read the benchmark record {path}: {error}") from None


# --- the speed record ------------------------------------------------------------------


def ratios(result: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The ratios in one benchmark's result (keys holding one of `RATIO_MARKS`, nested
    dictionaries flattened with dots), as floats; booleans and absolute numbers left out."""
    found = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.update(ratios(value, f"{name}."))
        elif (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and any(mark in str(key) for mark in RATIO_MARKS)
        ):
            found[name] = float(value)
    return found


def _commit() -> dict[str, Any]:
    """The checkout's commit and whether it had local changes (None outside git)."""
    root = Path(__file__).resolve().parents[3]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def run_all(config: dict[str, Any], out: str | None, *, quick: bool = False) -> dict[str, Any]:
    """Every benchmark (or those in `config["only"]`) at quick sizes, or the paper's
    when `config["scale"] == "paper"`; one failing benchmark is recorded, not fatal.
    Writes `out/NAME.json` for each and `out/all.json`; compares with
    `config["baseline"]` when given."""
    if config["scale"] not in ("quick", "paper"):
        raise ConfigError(f"bad value {config['scale']!r} for 'scale' (quick or paper)")
    benchmarks, missing = _import_all()
    only = [name for name in config["only"] if name]
    unknown = sorted(set(only) - set(benchmarks) - set(missing))
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)} in 'only'")
    directory = Path(out) if out is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "benchmark": "all",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **_commit(),
        "scale": config["scale"],
        "command": "bbpes bench all"
        + (f" --set scale={config['scale']}" if config["scale"] != "quick" else "")
        + (f" --set only={','.join(only)}" if only else ""),
        "machine": machine(),
        "load_average_start": os.getloadavg()[0],
        "benchmarks": {},
    }
    for name in only or [*benchmarks, *missing]:
        if name in missing:
            record["benchmarks"][name] = {"error": f"cannot run here: {missing[name]}"}
            continue
        t0 = time.perf_counter()
        try:
            result = run_benchmark(
                name,
                quick=quick or config["scale"] == "quick",
                out=str(directory / f"{name}.json") if directory is not None else None,
            )
        except Exception as error:  # a benchmark's failure is recorded; the rest still run
            entry: dict[str, Any] = {"error": f"{type(error).__name__}: {error}"[:500]}
        else:
            entry = {"load_average": result.get("load_average"), "ratios": ratios(result)}
        entry["seconds"] = time.perf_counter() - t0
        record["benchmarks"][name] = entry
    record["load_average_end"] = os.getloadavg()[0]
    if config["baseline"]:
        record["comparison"] = compare(_read(config["baseline"]), record, config["tolerance"])
    print(json.dumps(to_jsonable(record), indent=2))
    if directory is not None:
        atomic_write_json(directory / "all.json", record)
    return record


def compare(old: Mapping[str, Any], new: Mapping[str, Any], tolerance: float) -> dict[str, Any]:
    """Ratio by ratio, `new` against `old` (two `all.json` records): a ratio that moved
    the wrong way by more than `tolerance` (relative: 0.3 = 30%) is a regression, the
    right way an improvement. Ratios present in only one record are listed apart.

    **Returns:** `regressions`, `improvements` (each a list of `{benchmark, ratio, old,
    new, change}`, `change = new / old - 1`), `only_old`, `only_new`, `compared` (count)
    and `ok` (no regression)."""
    if not tolerance >= 0:
        raise ConfigError(f"tolerance must be >= 0, got {tolerance}")
    found: dict[str, Any] = {"regressions": [], "improvements": [], "only_old": [], "only_new": []}
    compared = 0
    olds, news = old.get("benchmarks", {}), new.get("benchmarks", {})
    for bench in sorted(set(olds) | set(news)):
        a = olds.get(bench, {}).get("ratios", {})
        b = news.get(bench, {}).get("ratios", {})
        found["only_old"] += [f"{bench}:{k}" for k in sorted(set(a) - set(b))]
        found["only_new"] += [f"{bench}:{k}" for k in sorted(set(b) - set(a))]
        for key in sorted(set(a) & set(b)):
            if a[key] is None or b[key] is None or a[key] == 0:
                continue
            compared += 1
            change = b[key] / a[key] - 1.0
            better = -change if key.split(".")[-1].startswith(LOWER_IS_BETTER) else change
            row = {"benchmark": bench, "ratio": key, "old": a[key], "new": b[key], "change": change}
            if better < -tolerance:
                found["regressions"].append(row)
            elif better > tolerance:
                found["improvements"].append(row)
    return {**found, "tolerance": tolerance, "compared": compared, "ok": not found["regressions"]}
