"""The registry of experiments: `bbpes list` shows them, `bbpes run NAME` runs one.

Each experiment module defines `EXPERIMENT`; add new modules to `_MODULES`. An installed
package adds experiments through the entry-point group `bbpes.experiments`, each entry
naming an `Experiment` (see docs/neurons.md, "Bring your own model"):

    [project.entry-points."bbpes.experiments"]
    my_experiment = "my_package.experiment:EXPERIMENT"
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import warnings

from .base import ConfigError as ConfigError
from .base import Experiment as Experiment

_MODULES = [
    "turn_off",
    "reversibility",
    "adjoint_drift",
    "turn_off_brian2",
    "neuroevolution_gd",
    "spiral",
    "spiral_scaling",
    "rober",
    "nne_mnist",
    "nne_vs_es",
    "dopamine_mnist",
    "nne_linear",
    "evidence",
    "memory",
    "study",
    "fit",
    "fit_neuron",
]


ENTRY_POINTS = "bbpes.experiments"
"""The entry-point group through which installed packages add experiments."""


def registry() -> dict[str, Experiment]:
    """Every experiment by name: the built-in ones (modules are imported on first use),
    then those of installed plugins."""
    found: dict[str, Experiment] = {}
    for module in _MODULES:
        experiment = importlib.import_module(f"{__name__}.{module}").EXPERIMENT
        found[experiment.name] = experiment
    for name, experiment in _plugins().items():
        if name in found:
            warnings.warn(
                f"bbpes: skipping plugin experiment {name!r}: the name is built in", stacklevel=2
            )
        else:
            found[name] = experiment
    return found


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINTS))


@functools.cache
def _plugins() -> dict[str, Experiment]:
    """The experiments of the installed `bbpes.experiments` entry points, by their own
    `name`. One that fails to load or is not an `Experiment` is skipped with a warning,
    so that one broken plugin does not take `bbpes list` down with it."""
    found = {}
    for entry in _entry_points():
        try:
            experiment = entry.load()
        except Exception as error:  # a plugin's import error is the plugin's
            warnings.warn(
                f"bbpes: skipping plugin experiment {entry.value!r}: {error!r}", stacklevel=2
            )
            continue
        if isinstance(experiment, Experiment):
            found[experiment.name] = experiment
        else:
            warnings.warn(
                f"bbpes: skipping plugin experiment {entry.value!r}: not an Experiment",
                stacklevel=2,
            )
    return found


def get(name: str) -> Experiment:
    experiments = registry()
    if name not in experiments:
        raise ConfigError(f"unknown experiment '{name}' (see `bbpes list`)")
    return experiments[name]
