"""Every learning signal by name: what it is, what it costs, and the learner that runs it.

An experiment offers its task's loss in the forms it has (`LossForms`) and asks
`make_learner(method, forms, optimizer, settings)` for the learner of any signal; so a
new signal added here is at once selectable by every experiment's `method` setting,
listed by `bbpes show`, checkpointed and resumed by the one training loop.

The cost of an iteration is counted in forward-pass equivalents (one forward
simulation of the batch = 1), a hardware-neutral unit (`forward_passes`); a study can
re-weigh it for another machine. Backprop's ratio to one forward pass is measured, not
assumed (`bbpes.bench`), so it is not part of this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optax

from .errors import ConfigError


@dataclass(frozen=True)
class Signal:
    """One learning signal.

    - `family`: `"backprop"` (exact reverse-mode derivatives through the simulation) or
      `"forward"` (forward passes only: losses, or forward-mode derivatives).
    - `needs`: the loss form it uses (a field of `LossForms`).
    - `lr`: which of the experiment's learning rates it takes: `"es"` (`lr_es`) for
      losses-only estimates, `"bp"` (`lr`) for exact or unbiased gradient estimates,
      None when the strategy sets its own step (evosax's distribution updates).
    - `clip`: whether the experiment's gradient clip applies to it.
    - `cost`: forward-pass equivalents per iteration, as a formula of the settings.
    - `memory`: how its memory grows with the trial length T.
    - `reference`: where it comes from.
    """

    name: str
    family: Literal["backprop", "forward"]
    needs: str
    lr: Literal["es", "bp"] | None
    clip: bool
    cost: str
    memory: str
    reference: str


SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal(
            "es",
            "forward",
            "loss",
            "es",
            False,
            "samples + 1",
            "flat",
            "Salimans et al. 2017; BBPES paper Alg. 1",
        ),
        Signal(
            "bptt",
            "backprop",
            "loss",
            "bp",
            True,
            "measured (about 2-4)",
            "linear in T",
            "reverse-mode autodiff through lax.scan",
        ),
        Signal(
            "bptt_noclip",
            "backprop",
            "loss",
            "bp",
            False,
            "measured (about 2-4)",
            "linear in T",
            "BPTT with no gradient clipping (the paper's BP)",
        ),
        Signal(
            "bptt_checkpointed",
            "backprop",
            "checkpointed_loss",
            "bp",
            True,
            "measured (about 3-5)",
            "sqrt(T)",
            "Griewank & Walther 2000 (jax.checkpoint)",
        ),
        Signal(
            "pnde",
            "backprop",
            "ode_loss",
            "bp",
            True,
            "measured",
            "linear in solver steps",
            "diffrax RecursiveCheckpointAdjoint",
        ),
        Signal(
            "fnde",
            "backprop",
            "ode_loss",
            "bp",
            True,
            "measured",
            "flat",
            "Chen et al. 2018 (backsolve adjoint)",
        ),
        Signal(
            "finite_difference",
            "forward",
            "loss",
            "bp",
            False,
            "2 x params + 1",
            "flat",
            "central differences",
        ),
        Signal(
            "weight_perturbation",
            "forward",
            "loss",
            "es",
            False,
            "samples + 1",
            "flat",
            "Widrow & Lehr 1990; Jabri & Flower 1992",
        ),
    )
}
"""The signals every experiment can name in `method`, in the order `bbpes show` lists them."""

EVOSAX_PREFIX = "evosax:"


@dataclass(frozen=True)
class LossForms:
    """A task's loss in the forms it can offer; a signal that needs a form the task
    lacks is refused with a one-line error.

    - `loss(params, *batch) -> scalar`: the simulation with its own stepper.
    - `checkpointed_loss`: the same, looping with `checkpointed_scan`.
    - `ode_loss`: the same model as a `bbpes.ode.ODELoss` (pnde, fnde).
    - `surrogate_loss`: the same with the hard spike threshold differentiated through a
      surrogate derivative (`bbpes.neurons.readout.surrogate_threshold`).
    - `truncated_loss`: the same with gradients kept for the last steps of the trial
      only (a bounded-memory surrogate gradient for guided ES).
    """

    loss: Callable[..., Any] | None = None
    checkpointed_loss: Callable[..., Any] | None = None
    ode_loss: Any = None
    surrogate_loss: Callable[..., Any] | None = None
    truncated_loss: Callable[..., Any] | None = None


def signal(method: str) -> Signal:
    """The `Signal` named `method` (an `evosax:NAME` strategy included)."""
    if method in SIGNALS:
        return SIGNALS[method]
    if method.startswith(EVOSAX_PREFIX):
        return Signal(
            method, "forward", "loss", None, False, "population_size", "flat", "evosax (Lange 2022)"
        )
    raise ConfigError(f"unknown method {method!r}; known: {', '.join(names())}")


def names() -> tuple[str, ...]:
    """Every method name an experiment accepts."""
    return tuple(SIGNALS)


def available(forms: LossForms) -> tuple[str, ...]:
    """The method names whose loss form `forms` offers."""
    return tuple(n for n, s in SIGNALS.items() if getattr(forms, s.needs) is not None)


def make_learner(
    method: str,
    forms: LossForms,
    optimizer: optax.GradientTransformation,
    settings: Mapping[str, Any],
):
    """The learner (`bbpes.learners.AbstractLearner`) that trains with `method`.

    `settings` holds the signal's knobs (the keys of `SIGNAL_DEFAULTS`, plus `mesh`
    for a sharded ES population); `optimizer` is applied to gradient estimates.
    """
    from .estimators import bptt, es, fnde, pnde
    from .estimators.finite_diff import finite_difference, weight_perturbation
    from .learners import GradientLearner

    info = signal(method)
    loss = getattr(forms, info.needs)
    if loss is None:
        raise ConfigError(f"method {method!r} is not available for this task")
    s = dict(SIGNAL_DEFAULTS, **settings)
    chunk = s["es_chunk"] or None
    estimators = {
        "es": lambda: es(loss, s["sigma"], s["samples"], chunk_size=chunk, mesh=s.get("mesh")),
        "bptt": lambda: bptt(loss),
        "bptt_noclip": lambda: bptt(loss),
        "bptt_checkpointed": lambda: bptt(loss),
        "pnde": lambda: pnde(loss),
        "fnde": lambda: fnde(loss),
        "finite_difference": lambda: finite_difference(loss, s["fd_eps"]),
        "weight_perturbation": lambda: weight_perturbation(
            loss, s["sigma"], s["samples"], chunk_size=chunk
        ),
    }
    if method in estimators:
        return GradientLearner(estimators[method](), optimizer)
    raise ConfigError(f"method {method!r} is not available for this task")


SIGNAL_DEFAULTS: dict[str, Any] = {
    "sigma": 0.02,
    "samples": 100,
    "es_chunk": 0,
    "fd_eps": 1e-3,
}
"""The knobs of the signals, with defaults; an experiment overrides them in its settings."""

SIGNAL_HELP: dict[str, str] = {
    "sigma": "ES perturbation std (guided ES, low-rank ES, weight perturbation too)",
    "samples": "ES population per iteration (mirrored pairs)",
    "es_chunk": "ES samples evaluated at once (0: all)",
    "fd_eps": "finite-difference step",
}


def forward_passes(method: str, settings: Mapping[str, Any], n_params: int = 0) -> float | None:
    """Forward-pass equivalents of one iteration of `method` (None for backprop, whose
    ratio is measured)."""
    s = dict(SIGNAL_DEFAULTS, **settings)
    if method in ("es", "weight_perturbation"):
        return float(s["samples"] + 1)
    if method == "finite_difference":
        return float(2 * n_params + 1)
    return None
