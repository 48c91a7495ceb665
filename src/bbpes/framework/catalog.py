"""The registry of experiments: `bbpes list` shows them, `bbpes run NAME` runs one.

The built-in experiments are the modules of `bbpes.experiments` that define
`EXPERIMENT` (found, not listed: adding one is its own file). An installed package adds
experiments through the entry-point group `bbpes.experiments`, each entry naming an
`Experiment` (see docs/neurons.md, "Bring your own model"):

    [project.entry-points."bbpes.experiments"]
    my_experiment = "my_package.experiment:EXPERIMENT"
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import warnings

from ..errors import ConfigError
from ..imports import entry_point_objects
from .experiment import Experiment

PACKAGE = "bbpes.experiments"
"""The package whose modules hold the built-in experiments."""

ENTRY_POINTS = "bbpes.experiments"
"""The entry-point group through which installed packages add experiments."""


@functools.cache
def builtin() -> dict[str, Experiment]:
    """The `EXPERIMENT` of every module of `bbpes.experiments`, by name (sorted)."""
    package = importlib.import_module(PACKAGE)
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        experiment = getattr(importlib.import_module(f"{PACKAGE}.{info.name}"), "EXPERIMENT", None)
        if isinstance(experiment, Experiment):
            found[experiment.name] = experiment
    return dict(sorted(found.items()))


@functools.cache
def plugins() -> dict[str, Experiment]:
    """The experiments of the installed `bbpes.experiments` entry points, by their own
    `name` (a broken one is skipped with a warning: `bbpes.imports`), loaded once."""
    loaded = entry_point_objects(ENTRY_POINTS, lambda v: isinstance(v, Experiment), "experiment")
    return {e.name: e for e in loaded.values()}


def registry() -> dict[str, Experiment]:
    """Every experiment by name: the built-in ones, then those of installed plugins (a
    plugin that takes a built-in name is skipped with a warning)."""
    found = dict(builtin())
    for name, experiment in plugins().items():
        if name in found:
            warnings.warn(
                f"bbpes: skipping plugin experiment {name!r}: the name is built in", stacklevel=2
            )
        else:
            found[name] = experiment
    return found


def get(name: str) -> Experiment:
    """The experiment `name`; a one-line `ConfigError` for an unknown one."""
    experiments = registry()
    if name not in experiments:
        raise ConfigError(f"unknown experiment '{name}' (see `bbpes list`)")
    return experiments[name]
