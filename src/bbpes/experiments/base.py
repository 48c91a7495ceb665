"""Transitional: the old names of `bbpes.framework` for experiments not yet declaring
their settings as `bbpes.settings.Setting`s. Removed once every experiment does."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import signals
from ..framework import experiment as _experiment
from ..framework.checks import *  # noqa: F403
from ..framework.checks import MAX_LOOP, check_signals, methods_of, require  # noqa: F401
from ..framework.experiment import MAX_SEED  # noqa: F401
from ..settings import UNSET, Setting, parse_value  # noqa: F401

ConfigError = _experiment.ConfigError


def Experiment(
    name: str,
    summary: str,
    run: Callable,
    defaults: Mapping[str, Any],
    quick: Mapping[str, Any] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    check: Callable | None = None,
    resolve: Callable | None = None,
    help: Mapping[str, str] | None = None,
) -> _experiment.Experiment:
    quick, choices, help = quick or {}, choices or {}, help or {}
    settings = tuple(
        Setting(
            key,
            value,
            help.get(key, ""),
            choices=choices.get(key),
            quick=quick.get(key, UNSET),
        )
        for key, value in defaults.items()
    )
    return _experiment.Experiment(name, summary, run, settings, check=check, resolve=resolve)


def signal_settings(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`defaults` with the knobs of every signal (`bbpes.signals.knob_defaults`) it
    lacks; the experiment's own values win."""
    return {**signals.knob_defaults(), **defaults}


def signal_help(help: Mapping[str, str]) -> dict[str, str]:
    """`help` with a line for every signal knob it lacks."""
    return {**signals.knob_help(), **help}
