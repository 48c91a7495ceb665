"""`run_experiment`: what `bbpes run` does, as a function.

**Settings files.** `config_file` is the `config.json` of an earlier run or a TOML file
with the same keys (any subset of them). The settings are applied in this order, each
over the one before: the experiment's defaults, its `quick` values (when `quick` is
asked for or the file records `"quick": true`), the file, `overrides` (`--set`), then
`seed` (`--seed`). So a whole `config.json` fixes every setting and `--quick` then only
marks the run quick, while a short TOML file with `--quick` changes a few settings of
the quick version. A file written for another experiment, an unknown key or a value of
the wrong type is a `ConfigError`.

**Failed runs leave nothing.** The run directory is made just before the run starts.
If the run then fails with a `ConfigError` (a data set that cannot be found, say), or
with any other error before it saved a checkpoint, everything this call created is
removed, so that the same command can be run again. A directory that existed before
(empty) is kept, and the files of a resumed run are never removed. A run that fails
after saving checkpoints keeps them (`--resume` continues it); an interrupt (Ctrl-C)
keeps everything.
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jax

from ..devices import describe
from ..errors import ConfigError
from ..progress import log
from ..runs import CHECKPOINTS, CONFIG, METRICS, RunDir, to_jsonable
from .catalog import get
from .experiment import Experiment


def default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def read_settings_file(path: str | Path, name: str) -> tuple[dict[str, Any], bool]:
    """The settings stored in `path` for experiment `name`, type-checked.

    **Arguments:**

    - `path`: a `config.json` written by an earlier run (JSON), or a TOML file (name
      ending in `.toml`) with the same flat keys; an `experiment` key, if present,
      must equal `name`.
    - `name`: the experiment the settings are for.

    **Returns:** `(settings, quick)`: the settings as overrides for
    `Experiment.config` (parsed and checked by their declarations, strings as `--set`
    values are) and the file's `quick` flag (False when absent).

    Raises `ConfigError` (one line, naming the file) for a missing or unreadable file,
    another experiment, an unknown key or a value of the wrong type.
    """
    path = Path(path)
    experiment = get(name)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read --config {path}: {error.strerror or error}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ConfigError(f"--config {path} is not valid {kind}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold one object of settings")
    settings = dict(data)
    stored = settings.pop("experiment", name)
    if stored != name:
        raise ConfigError(f"--config {path} holds settings of '{stored}', not '{name}'")
    quick = settings.pop("quick", False)
    if not isinstance(quick, bool):
        raise ConfigError(f"--config {path}: 'quick' must be true or false, got {quick!r}")
    for key, value in settings.items():
        try:
            settings[key] = experiment.setting(key).parse(value)
        except ConfigError as error:
            raise ConfigError(f"--config {path}: {error}") from None
    return settings, quick


def resolve_config(
    experiment: Experiment,
    overrides: Mapping[str, Any] | None = None,
    *,
    quick: bool = False,
    seed: int | None = None,
    config_file: str | Path | None = None,
) -> dict[str, Any]:
    """The run's full configuration: defaults, quick values, `config_file`, `overrides`,
    `seed`, in that order (see the module docstring). Raises `ConfigError`."""
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged, file_quick = read_settings_file(config_file, experiment.name)
        quick = quick or file_quick
    merged.update(overrides or {})
    return experiment.config(merged, quick=quick, seed=seed)


def prepare(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    quick: bool = False,
    seed: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    config_file: str | Path | None = None,
) -> tuple[dict[str, Any], RunDir]:
    """Validate everything and pick the output directory; writes nothing.
    Raises `ConfigError` for any user mistake."""
    experiment = get(name)
    config = resolve_config(experiment, overrides, quick=quick, seed=seed, config_file=config_file)
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
        asked = overrides or seed is not None or quick or config_file is not None
        if asked and to_jsonable(config) != stored:
            raise ConfigError(
                f"settings differ from the run stored in {out}; resume it without "
                "--set/--quick/--seed/--config"
            )
        return stored, run
    run = RunDir(out if out is not None else default_out(name))
    if run.path.exists() and not run.path.is_dir():
        raise ConfigError(f"{run.path} is a file, not a directory; choose another --out")
    if run.path.exists() and (run.holds_run() or any(run.path.iterdir())):
        raise ConfigError(
            f"{run.path} already holds results; pass --resume to continue that run or choose another --out"
        )
    return config, run


def _make_dir(path: Path) -> Path | None:
    """Make `path` (and its parents); return the topmost directory made, None if
    `path` existed already."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return missing[-1] if missing else None


def _discard(run: RunDir, created: Path | None) -> None:
    """Remove what a failed run wrote: the directory and the parents it made, or, for a
    directory that existed (empty, as `prepare` checked), only its contents."""
    if created is None:
        for child in run.path.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        return
    shutil.rmtree(run.path, ignore_errors=True)
    for parent in run.path.parents:  # only empty ones: another run may share `runs/`
        if parent == created.parent:
            break
        try:
            parent.rmdir()
        except OSError:
            break


def run_experiment(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    quick: bool = False,
    seed: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    config_file: str | Path | None = None,
    on_start: Callable[[RunDir], None] | None = None,
) -> tuple[RunDir, dict[str, Any]]:
    """Run experiment `name` and write config.json, history.jsonl, metrics.json and
    its figures into `out`.

    **Arguments:**

    - `name`: a registered experiment (`bbpes list`).
    - `overrides`: settings by key (strings are parsed as `--set` values are).
    - `quick`, `seed`: `--quick`, `--seed`.
    - `out`: the run directory (default `runs/NAME-TIMESTAMP`); it must not hold a run,
      except with `resume`, which continues the run stored there.
    - `config_file`: settings from an earlier run's config.json or a TOML file (see the
      module docstring for how they combine with the others).
    - `on_start(run_dir)`: called once the directory is made, before the run starts.

    **Returns:** the run directory and the metrics (also in metrics.json), which
    include `wall_seconds`, `device_kind`, `device_count` and `backend`.

    Raises `ConfigError` for a user mistake; nothing is left behind then (see the
    module docstring).
    """
    config, run = prepare(
        name,
        overrides,
        quick=quick,
        seed=seed,
        out=out,
        resume=resume,
        config_file=config_file,
    )
    experiment = get(name)
    created = None if resume else _make_dir(run.path)
    try:
        if not resume:
            run.write_json(CONFIG, {"experiment": name, **config})
        if on_start is not None:
            on_start(run)
        t0 = time.perf_counter()
        with jax.enable_x64(bool(config.get("x64", False))):
            metrics = experiment.run(dict(config, resume=resume), run)
        metrics = {
            **metrics,
            "wall_seconds": time.perf_counter() - t0,
            # ES populations are sharded over the devices: float rounding depends on it
            "devices": f"{jax.device_count()} {jax.default_backend()}",
            **describe(),
        }
        run.write_json(METRICS, metrics)
    except Exception as error:
        if resume:
            raise
        if not isinstance(error, ConfigError) and run.file(CHECKPOINTS).exists():
            log(f"bbpes: the run stopped with an error; continue it with --resume --out {run.path}")
        else:
            _discard(run, created)
        raise
    return run, metrics
