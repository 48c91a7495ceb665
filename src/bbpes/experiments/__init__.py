"""The registry of experiments: `bbpes list` shows them, `bbpes run NAME` runs one.

Each experiment module defines `EXPERIMENT`; add new modules to `_MODULES`.
"""

from __future__ import annotations

import importlib

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
    "dopamine_mnist",
    "nne_linear",
    "evidence",
    "memory",
    "study",
]


def registry() -> dict[str, Experiment]:
    """Every experiment by name (modules are imported on first use)."""
    found: dict[str, Experiment] = {}
    for module in _MODULES:
        experiment = importlib.import_module(f"{__name__}.{module}").EXPERIMENT
        found[experiment.name] = experiment
    return found


def get(name: str) -> Experiment:
    experiments = registry()
    if name not in experiments:
        raise ConfigError(f"unknown experiment '{name}' (see `bbpes list`)")
    return experiments[name]
