"""Every learning signal, as an object that owns what it knows (`Signal`).

A signal is a small immutable object (`bbpes.signals.base.Signal`): its family, the
loss form it needs, which step size it takes and whether the clip applies, its knobs,
its cost in forward-pass equivalents (`forward_passes`) and memory law, its plot colour,
and `learner(forms, optimizer, settings)`. The registry maps each name to its object:
bbpes's own (`BUILTIN`), evosax's strategies (`evosax:NAME`), and those of installed
packages (entry-point group `bbpes.signals`, an object or a module:attribute
reference per name); a `package.module:OBJECT` reference names a signal without
registering it. Every experiment's `method`, `bbpes show`, the study and the plots ask
the object.

The cost of an iteration is counted in forward-pass equivalents (one forward
simulation of the batch = 1), a hardware-neutral unit; backprop's ratio to one forward
pass is measured (`bbpes.bench`), not assumed.
"""

from __future__ import annotations

import importlib
import pkgutil

from .backprop import ADJOINT_SIGNALS, BPTT, Adjoint
from .base import Knob, LossForms, Signal, ode_forms
from .evosax import EVOSAX_SIGNALS, Evosax
from .evosax import PREFIX as EVOSAX_PREFIX
from .forward_mode import FiniteDifference, ForwardGradient
from .perturbation import ES, GuidedES, WeightPerturbation
from .registry import (
    available,
    color,
    knob_defaults,
    knob_help,
    knob_settings,
    knobs_in,
    learner_for,
    make_learner,
    n_params,
    names,
    register,
    signal,
    unsupported,
)
from .tunable import HYPERPARAMETERS, tunable_learner


def _builtin() -> tuple[Signal, ...]:
    """Every module's `BUILTIN` signals, modules in name order: a new signal is its own
    file (a `Signal` subclass or instance listed in the module's `BUILTIN`) and its
    test, with no line to add here."""
    found: list[Signal] = []
    for info in pkgutil.iter_modules(__path__):
        found += getattr(importlib.import_module(f"{__name__}.{info.name}"), "BUILTIN", ())
    return tuple(found)


BUILTIN: tuple[Signal, ...] = _builtin()
"""bbpes's own signals, in the order `bbpes show` lists them."""

for _s in (*BUILTIN, *EVOSAX_SIGNALS):
    register(_s, builtin=True)

SIGNALS: dict[str, Signal] = {s.name: s for s in BUILTIN}
"""bbpes's own signals by name (evosax's and installed packages' are in `names()`)."""

EVOSAX_METHODS = tuple(s.name for s in EVOSAX_SIGNALS)
"""The evosax strategies offered by name (`bbpes.learners.evosax_names.STRATEGIES`)."""

__all__ = [
    "ADJOINT_SIGNALS",
    "BPTT",
    "BUILTIN",
    "ES",
    "EVOSAX_METHODS",
    "EVOSAX_PREFIX",
    "HYPERPARAMETERS",
    "SIGNALS",
    "Adjoint",
    "Evosax",
    "FiniteDifference",
    "ForwardGradient",
    "GuidedES",
    "Knob",
    "LossForms",
    "Signal",
    "WeightPerturbation",
    "available",
    "color",
    "knob_defaults",
    "knob_help",
    "knob_settings",
    "knobs_in",
    "learner_for",
    "make_learner",
    "n_params",
    "names",
    "ode_forms",
    "register",
    "signal",
    "tunable_learner",
    "unsupported",
]
