"""What an experiment's `check` asks of several settings together, and of the learning
signals its `method` names: `require`, the memory a configuration needs, the signals a
task's loss forms serve (`check_signals`), the fixed steps of a simulation.

A single setting's range is its declaration's (`bbpes.settings.Setting`), not a check
here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import optax

from .. import signals
from ..errors import ConfigError
from ..imports import is_reference
from ..settings import MAX_INT32, Setting

MAX_LOOP = MAX_INT32
"""The most iterations one `lax.scan` or solver may be asked for (XLA counts in int32)."""


def require(condition: bool, message: str) -> None:
    """For `Experiment.check`: raise a `ConfigError` with `message` unless `condition`."""
    if not condition:
        raise ConfigError(message)


def require_mirrored_samples(config: Mapping[str, Any], key: str = "samples") -> None:
    """The ES sample count `config[key]`: mirrored pairs, so even and at least 2."""
    require(config[key] >= 2 and config[key] % 2 == 0, f"{key} must be even and >= 2")


def methods_of(config: Mapping[str, Any], key: str = "methods") -> list[str]:
    value = config[key]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def require_fits(n_bytes: float, what: str) -> None:
    """`n_bytes` (a lower bound on what a run must hold at once) must fit in the memory
    free now (`bbpes.devices.available_memory_bytes`): sizes far too large for this
    machine are refused before anything is allocated."""
    from ..devices import available_memory_bytes

    free = available_memory_bytes()
    require(
        n_bytes <= free,
        f"{what} need at least {n_bytes / 1e9:.3g} GB, more than the {free / 1e9:.3g} GB free",
    )


class SignalChoices(tuple):
    """The signal names a `method` setting lists (`bbpes show`), that also accepts a
    `package.module:OBJECT` reference to a user's own signal (loaded, and refused in one
    line if it is none, by the experiment's check)."""

    def __contains__(self, value: object) -> bool:
        return super().__contains__(value) or (isinstance(value, str) and is_reference(value))


def signal_choices() -> SignalChoices:
    """The values a `method` setting accepts: every signal of `bbpes.signals`, and a
    reference to one of the user's."""
    return SignalChoices(signals.names())


def signal_settings(
    defaults: Mapping[str, Any] | None = None, quick: Mapping[str, Any] | None = None
) -> tuple[Setting, ...]:
    """The settings of every signal knob (`bbpes.signals.knob_settings`: each knob's
    range, unit and help), with an experiment's own `defaults` and `quick` values."""
    from dataclasses import replace

    defaults, quick = dict(defaults or {}), dict(quick or {})
    out = []
    for knob in signals.knob_settings():
        changes = {}
        if knob.name in defaults:
            changes["default"] = defaults.pop(knob.name)
        if knob.name in quick:
            changes["quick"] = quick.pop(knob.name)
        out.append(replace(knob, **changes))
    unknown = sorted({*defaults, *quick})
    if unknown:
        raise ValueError(f"not signal knobs: {unknown}")
    return tuple(out)


def check_signals(
    config: Mapping[str, Any],
    key: str,
    forms: Iterable[str],
    task: str = "this task",
    unsupported: Mapping[str, str] | None = None,
    *,
    sample_bytes: float = 0.0,
) -> None:
    """The methods named in `config[key]` are signals whose learner builds from a task
    offering the loss forms `forms` (fields of `bbpes.signals.LossForms`) and these
    knobs, and are not `unsupported` (name -> why); the signal knobs are valid, and the
    population's losses and weights (`samples` of each) and the `es_chunk` perturbed
    evaluations held at once (`sample_bytes` each) fit in memory."""
    offered, refused = set(forms), dict(unsupported or {})
    check_signal_knobs(config)
    usable = [
        n for n in signal_choices() if signals.signal(n).needs in offered and n not in refused
    ]
    for method in methods_of(config, key):
        info = signals.signal(method)
        require(method not in refused, refused.get(method, ""))
        require(
            info.needs in offered,
            f"method {method!r} needs the task's {info.needs}, which {task} does not offer"
            f" (available: {', '.join(usable)})",
        )
        info.check(config)
        probe_learner(method, offered, config)
    at_once = min(config["es_chunk"] or config["samples"], config["samples"])
    require_fits(
        32.0 * config["samples"] + at_once * sample_bytes,
        f"an ES population of {config['samples']} ({at_once} evaluated at once)",
    )


def check_signal_knobs(config: Mapping[str, Any]) -> None:
    """Every signal knob that `config` has is in its range (each `bbpes.signals.Knob`
    says its own: `samples` even, `guided_alpha` in [0, 1], a count whose 0 means
    "chosen from the others" >= 0...)."""
    require_mirrored_samples(config)
    for s in signals.BUILTIN:
        s.check(config)
    if "tangents" in config:
        require_fits(32.0 * config["tangents"], f"{config['tangents']} forward-gradient tangents")


class _Form:
    """A stand-in for a loss form in `probe_learner`: any attribute is None (an
    `ODELoss` without observations), and calling it is an error."""

    def __getattr__(self, name):
        return None

    def __call__(self, *args, **kwargs):
        raise RuntimeError("a stand-in loss form was called")


def probe_learner(method: str, forms: Iterable[str], config: Mapping[str, Any]) -> None:
    """Build `method`'s learner from stand-ins of the loss forms `forms` and the knobs
    of `config`, as `check` must: what `make_learner` refuses (a form or a knob it
    needs) is a one-line `ConfigError` here, before anything runs. Errors that need the
    real forms are left for the run."""
    stand_ins = signals.LossForms(**{form: _Form() for form in forms})
    knobs = signal_knobs(config)
    try:
        signals.signal(method).learner(stand_ins, optax.identity(), {**knobs, "n_params": 1})
    except ConfigError as error:
        raise ConfigError(f"method {method!r}: {error}") from None
    except ValueError as error:  # a knob the estimator refuses (samples, tangents...)
        message = str(error).strip().splitlines()
        raise ConfigError(f"method {method!r}: {message[0] if message else error}") from None
    except Exception:
        pass  # building this learner needs the task's real loss forms: decided at run time


def require_steps(t_end: float, dt: float, what: str = "t_end") -> int:
    """The number of fixed steps of `dt` in `t_end` (`bbpes.neurons.n_steps`): a whole
    number, at least 1 and at most `MAX_LOOP`."""
    from ..neurons.base import n_steps

    try:
        steps = n_steps(t_end, dt)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    require(
        steps <= MAX_LOOP, f"{what}={t_end:g} is {steps:.3g} steps of dt={dt:g}, over {MAX_LOOP}"
    )
    return steps


def signal_optimizer(
    method: str,
    config: Mapping[str, Any],
    make: Callable[[Any], optax.GradientTransformation],
    *,
    lr: Mapping[str, str] | None = None,
    clip: str | None = "clip",
) -> optax.GradientTransformation:
    """`bbpes.signals.Signal.optimizer` of `method` on `config`."""
    return signals.signal(method).optimizer(config, make, lr=lr, clip=clip)


signal_knobs = signals.knobs_in
"""`bbpes.signals.knobs_in`: the signal knobs that `config` sets."""


signal_learner = signals.learner_for
"""`bbpes.signals.learner_for`: `method`'s learner with the knobs of an experiment's
`config` and `n_params` of `params`."""

n_params = signals.n_params
"""`bbpes.signals.n_params`: the trainable numbers of a pytree."""
