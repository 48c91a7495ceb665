"""A user's own problem in the signals study: a `package.module:function` reference, or
an installed package's entry point in the group `bbpes.problems`.

The function returns a `Regime` (a claim, a metric and its direction, a target, the
signals that compete with their sweeps, and `build(scale) -> Problem`), or
`(problem, signals)`: a ready `Problem` and the signal names to compete (a sequence, or
name -> `Sweep`), for which the regime is named after the function, its metric is
called `metric`, lower is better and there is no target (signals are ranked by the
metric at the budget). It is called with the study's scale (`tiny`, `quick`, ...) when
it takes one argument, with none otherwise."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..imports import entry_point_objects, load_reference
from ..signals import signal
from .problem import Problem, Regime, Sweep

ENTRY_POINTS = "bbpes.problems"


def _call(function: Callable[..., Any], scale: str, where: str) -> Any:
    try:
        takes = len(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        takes = 1
    try:
        return function(scale) if takes >= 1 else function()
    except ConfigError:
        raise
    except Exception as error:  # the user's function failed: say where, in one line
        first = str(error).strip().splitlines()[:1]
        raise ConfigError(
            f"problem {where}: {type(error).__name__}: {first[0] if first else ''}"
        ) from None


def sweeps_of(signals: Sequence[str] | Mapping[str, Sweep]) -> dict[str, Sweep]:
    """name -> `Sweep`: a sequence of names gets each signal's own tuned knob
    (`Signal.tuned`); every name must be a signal (or a reference to one)."""
    if isinstance(signals, Mapping):
        out = dict(signals)
    else:
        out = {name: Sweep(signal(name).tuned) for name in signals}
    for name, sweep in out.items():
        signal(name)  # a one-line ConfigError for an unknown one
        if not isinstance(sweep, Sweep):
            raise ConfigError(f"signal {name!r}: its sweep {sweep!r} is not a bbpes Sweep")
    if not out:
        raise ConfigError("the problem names no signal to compete")
    return out


def as_regime(value: Any, name: str, scale: str, where: str) -> Regime:
    """The `Regime` of what a problem function returned (see the module's doc)."""
    if callable(value) and not isinstance(value, (Regime, Problem)):
        value = _call(value, scale, where)
    if isinstance(value, Regime):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Problem):
        problem, signals = value
        return Regime(
            name=name,
            claim=f"your problem ({where})",
            metric="metric",
            higher_is_better=False,
            target=-math.inf,
            signals=sweeps_of(signals),
            build=lambda _scale: problem,
        )
    raise ConfigError(
        f"problem {where} gave {type(value).__name__}: expected a bbpes Regime or "
        "(Problem, signals)"
    )


def load_problem(reference: str, scale: str) -> Regime:
    """The regime of the problem function `reference` (`package.module:function`)."""
    function = load_reference(reference, "problem")
    name = reference.rpartition(":")[2].rpartition(".")[2]
    return as_regime(function, name, scale, reference)


@functools.cache
def _installed() -> dict[str, Any]:
    return entry_point_objects(
        ENTRY_POINTS, lambda v: callable(v) or isinstance(v, Regime), "problem"
    )


def installed_problems() -> tuple[str, ...]:
    """The names of the problems installed packages offer (entry-point group
    `bbpes.problems`)."""
    return tuple(_installed())


def installed_regime(name: str, scale: str) -> Regime:
    """The regime of the installed problem `name` (its regime is named `name`)."""
    value = _installed()[name]
    regime = as_regime(value, name, scale, f"{name} (entry point)")
    return regime if regime.name == name else dataclasses.replace(regime, name=name)


def with_signals(regime: Regime, extra: Sequence[str]) -> Regime:
    """`regime` with the signals `extra` (names or `package.module:OBJECT` references:
    a user's own) competing too, each swept on its own tuned knob."""
    if not extra:
        return regime
    added = {m: s for m, s in sweeps_of(list(extra)).items() if m not in regime.signals}
    return dataclasses.replace(regime, signals={**regime.signals, **added}) if added else regime


def check_problem(reference: str) -> None:
    """A one-line `ConfigError` unless `reference` names a function (or a `Regime`)."""
    value = load_reference(reference, "problem")
    if not (callable(value) or isinstance(value, Regime)):
        raise ConfigError(f"problem {reference!r} is {type(value).__name__}, not a function")
