"""The signals by name: `signal(name)` is the object, `names()` every name an
experiment's `method` accepts. bbpes's own signals and evosax's are `register`ed when
`bbpes.signals` is imported; installed packages add theirs through the entry-point
group `bbpes.signals` (read once, on first use); a `package.module:OBJECT` reference
is a signal too, loaded when named."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import optax

from ..errors import ConfigError
from ..imports import entry_point_objects, is_reference, load_reference
from .base import Knob, LossForms, Signal

ENTRY_POINTS = "bbpes.signals"

_REGISTERED: dict[str, Signal] = {}
_BUILTIN_NAMES: set[str] = set()


def register(signal_: Signal, *, builtin: bool = False) -> Signal:
    """Add `signal_` under its name for this process (a name taken is an error)."""
    if not isinstance(signal_, Signal):
        raise ConfigError(f"{signal_!r} is not a bbpes.signals.Signal")
    if signal_.name in _REGISTERED:
        raise ConfigError(f"signal name {signal_.name!r} is taken")
    _REGISTERED[signal_.name] = signal_
    if builtin:
        _BUILTIN_NAMES.add(signal_.name)
    return signal_


@functools.cache
def _plugins() -> dict[str, Signal]:
    """The signals of installed packages (entry-point group `bbpes.signals`): each
    under its own `name`; one that takes a built-in name is skipped with a warning."""
    found = entry_point_objects(ENTRY_POINTS, lambda v: isinstance(v, Signal), "signal")
    out = {}
    for entry_name, value in found.items():
        if value.name in _BUILTIN_NAMES:
            import warnings

            warnings.warn(
                f"bbpes: skipping signal plugin {entry_name!r}: {value.name!r} is built in",
                stacklevel=2,
            )
            continue
        out[value.name] = value
    return out


def _all() -> dict[str, Signal]:
    return {**_REGISTERED, **{k: v for k, v in _plugins().items() if k not in _REGISTERED}}


def names() -> tuple[str, ...]:
    """Every signal name an experiment's `method` accepts (a `package.module:OBJECT`
    reference besides)."""
    return tuple(_all())


def signal(name: str) -> Signal:
    """The signal named `name` (registered, installed, or a `package.module:OBJECT`
    reference to a `Signal`); a one-line `ConfigError` for an unknown one."""
    known = _all()
    if name in known:
        return known[name]
    if is_reference(name):
        value = load_reference(name, "signal")
        if not isinstance(value, Signal):
            raise ConfigError(f"signal {name!r} is {type(value).__name__}, not a bbpes Signal")
        return value
    raise ConfigError(f"unknown method {name!r}; known: {', '.join(known)}")


def color(name: str) -> str | None:
    """The plot colour of the signal `name`; None (matplotlib's cycle) for a name that
    is no signal (a variant an experiment adds, such as rober's `bptt_scaled`)."""
    known = _all()
    return known[name].color if name in known else None


def make_learner(
    method: str,
    forms: LossForms,
    optimizer: optax.GradientTransformation,
    settings: Mapping[str, Any],
):
    """`signal(method).learner(forms, optimizer, settings)`."""
    return signal(method).learner(forms, optimizer, settings)


def learner_for(
    method: str,
    forms: LossForms,
    optimizer: optax.GradientTransformation,
    config: Mapping[str, Any],
    params: Any = None,
    **extra: Any,
):
    """`method`'s learner from an experiment's `config`: the signal's `learner` with
    the signal knobs `config` sets, the number of trainable numbers in `params`
    (`n_params`, which guided ES scales its search by) and `extra` (e.g. `mesh`)."""
    knobs = knobs_in(config)
    if params is not None:
        knobs["n_params"] = n_params(params)
    return signal(method).learner(forms, optimizer, {**knobs, **extra})


def n_params(params: Any) -> int:
    """The number of trainable numbers (inexact array entries) in the pytree `params`."""
    import equinox as eqx
    import jax

    return int(sum(x.size for x in jax.tree.leaves(eqx.filter(params, eqx.is_inexact_array))))


def _offered(forms: LossForms | Iterable[str]) -> set[str]:
    if isinstance(forms, LossForms):
        return {k for k, v in vars(forms).items() if v is not None}
    return set(forms)


def available(forms: LossForms | Iterable[str]) -> tuple[str, ...]:
    """The names of the signals whose loss form `forms` (a `LossForms`, or the names of
    its fields) offers, with one of their `guide` forms where they need one."""
    offered = _offered(forms)
    return tuple(
        s.name
        for s in _all().values()
        if s.needs in offered and (not s.guide or offered & set(s.guide))
    )


def unsupported(forms: LossForms | Iterable[str], *, observed: bool = False) -> dict[str, str]:
    """The signals whose loss form `forms` offers but that cannot train this task, each
    with why: those lacking a `guide` form, and, for a loss `observed` at many times
    along the solution, those that cannot take one (`Signal.observations`)."""
    offered, out = _offered(forms), {}
    for s in _all().values():
        if s.needs not in offered:
            continue
        if s.guide and not offered & set(s.guide):
            out[s.name] = (
                f"{s.name} needs a {' or '.join(s.guide)} for its guiding gradient, which this "
                "task has no form of"
            )
        elif observed and not s.observations:
            out[s.name] = (
                f"{s.name} cannot take a loss observed at many times (an observation cost); use fnde"
            )
    return out


def knob_defaults(signals: Iterable[Signal] | None = None) -> dict[str, Any]:
    """Every knob of `signals` (default: all registered) with its default: the
    settings an experiment with a `method` setting carries (the first declaration of a
    name gives its default; all declarations of a name share it)."""
    out: dict[str, Any] = {}
    for s in _all().values() if signals is None else signals:
        for knob in s.knobs:
            out.setdefault(knob.name, knob.default)
    return out


def _readers(signals: Iterable[Signal] | None) -> dict[str, tuple[Knob, str]]:
    """Per knob name: its first declaration, and the signals that read it (evosax's
    strategies as one `evosax:*`)."""
    first: dict[str, Knob] = {}
    readers: dict[str, list[str]] = {}
    for s in _all().values() if signals is None else signals:
        for knob in s.knobs:
            first.setdefault(knob.name, knob)
            readers.setdefault(knob.name, []).append(s.name)
    out = {}
    for name, knob in first.items():
        who = [n for n in readers[name] if not n.startswith("evosax:")]
        if any(n.startswith("evosax:") for n in readers[name]):
            who.append("evosax:*")
        out[name] = (knob, ", ".join(who))
    return out


def knob_help(signals: Iterable[Signal] | None = None) -> dict[str, str]:
    """A help line per knob name: the first declaration's, then which signals read it
    (`bbpes show SIGNAL` gives each signal's own meaning)."""
    return {n: f"{k.describe()}; read by {who}" for n, (k, who) in _readers(signals).items()}


def knob_settings(signals: Iterable[Signal] | None = None) -> tuple[Knob, ...]:
    """One setting per knob name of `signals` (default: all registered): the first
    declaration's default and range, its help followed by the signals that read it."""
    return tuple(
        replace(k, help=f"{k.help}; read by {who}") for k, who in _readers(signals).values()
    )


def knobs_in(config: Mapping[str, Any]) -> dict[str, Any]:
    """The signal knobs (`knob_defaults`) that an experiment's `config` sets."""
    known = knob_defaults()
    return {k: v for k, v in config.items() if k in known}
