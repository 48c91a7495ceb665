"""`run_experiment`: what `bbpes run` does, as a function."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jax

from ..runs import CONFIG, METRICS, RunDir, to_jsonable
from . import get
from .base import ConfigError


def default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def prepare(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    quick: bool = False,
    seed: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
) -> tuple[dict[str, Any], RunDir]:
    """Validate everything and pick the output directory; writes nothing.
    Raises `ConfigError` for any user mistake."""
    experiment = get(name)
    config = experiment.config(overrides, quick=quick, seed=seed)
    if resume:
        if out is None:
            raise ConfigError("--resume needs --out DIR, the run to continue")
        run = RunDir(out)
        if not run.holds_run():
            raise ConfigError(f"nothing to resume in {out}: it holds no {CONFIG}")
        stored = run.read_config()
        if stored.get("experiment") != name:
            raise ConfigError(f"{out} holds a run of '{stored.get('experiment')}', not '{name}'")
        stored.pop("experiment", None)
        if (overrides or seed is not None or quick) and to_jsonable(config) != stored:
            raise ConfigError(
                f"settings differ from the run stored in {out}; resume it without --set/--quick/--seed"
            )
        return stored, run
    run = RunDir(out if out is not None else default_out(name))
    if run.path.exists() and (run.holds_run() or any(run.path.iterdir())):
        raise ConfigError(
            f"{run.path} already holds results; pass --resume to continue that run or choose another --out"
        )
    return config, run


def run_experiment(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    quick: bool = False,
    seed: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
) -> tuple[RunDir, dict[str, Any]]:
    """Run experiment `name` and write config.json, history.jsonl, metrics.json and
    its figures into `out`. Returns the run directory and the metrics."""
    config, run = prepare(name, overrides, quick=quick, seed=seed, out=out, resume=resume)
    experiment = get(name)
    run.path.mkdir(parents=True, exist_ok=True)
    if not resume:
        run.write_json(CONFIG, {"experiment": name, **config})
    t0 = time.perf_counter()
    with jax.enable_x64(bool(config.get("x64", False))):
        metrics = experiment.run(dict(config, resume=resume), run)
    metrics = {
        **metrics,
        "wall_seconds": time.perf_counter() - t0,
        # ES populations are sharded over the devices: float rounding depends on it
        "devices": f"{jax.device_count()} {jax.default_backend()}",
    }
    run.write_json(METRICS, metrics)
    return run, metrics
