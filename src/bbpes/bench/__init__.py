"""Benchmarks, `bbpes bench NAME`: performance measurements printed (and saved) as JSON.

Each benchmark module defines `BENCHMARK = Benchmark(name, summary, run, defaults, quick)`;
add new modules to `_MODULES`.
"""

from __future__ import annotations

import importlib
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..experiments.base import ConfigError, parse_value
from ..runs import atomic_write_json, to_jsonable

_MODULES: list[str] = ["sim", "es", "devices", "memory", "roofline", "nne_generation"]


@dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str
    run: Callable[[dict[str, Any]], dict[str, Any]]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)


def registry() -> dict[str, Benchmark]:
    found = {}
    for module in _MODULES:
        benchmark = importlib.import_module(f"{__name__}.{module}").BENCHMARK
        found[benchmark.name] = benchmark
    return found


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


def run_benchmark(
    name: str,
    overrides: Mapping[str, str] | None = None,
    *,
    quick: bool = False,
    out: str | None = None,
) -> dict[str, Any]:
    benchmarks = registry()
    if name not in benchmarks:
        known = ", ".join(benchmarks) or "none yet"
        raise ConfigError(f"unknown benchmark '{name}' (known: {known})")
    benchmark = benchmarks[name]
    config = dict(benchmark.defaults)
    if quick:
        config.update(benchmark.quick)
    for key, raw in (overrides or {}).items():
        if key not in config:
            raise ConfigError(f"unknown setting '{key}' for benchmark {name}")
        config[key] = parse_value(key, raw, benchmark.defaults[key])
    result = {"benchmark": name, "config": config, "machine": machine(), **benchmark.run(config)}
    text = json.dumps(to_jsonable(result), indent=2)
    print(text)
    if out is not None:
        atomic_write_json(Path(out), result)
    return result
