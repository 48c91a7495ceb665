"""NEURON, imported once per process without its GUI (NEURON is an optional extra)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from ..errors import ConfigError

INSTALL = "pip install 'bbpes[neuron]'"


def installed() -> bool:
    """Whether NEURON and eFEL can be imported (without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("neuron", "efel"))


def hoc() -> Any:
    """NEURON's `h` with `stdrun.hoc` loaded; `ConfigError` if NEURON is not installed."""
    os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")  # no "no DISPLAY" warning
    try:
        from neuron import h
    except ImportError as error:
        raise ConfigError(f"NEURON is not installed ({error}): {INSTALL}") from None
    h.load_file("stdrun.hoc")
    return h
