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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from .errors import ConfigError
from .learners.evosax_names import STRATEGIES


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
    - `observations`: whether it takes a loss observed at many times along the solution
      (an observation cost); pnde cannot.
    - `guide`: loss forms of which it needs one besides `needs` (guided ES: a truncated
      or surrogate-spike loss, for its guiding gradient).
    """

    name: str
    family: Literal["backprop", "forward"]
    needs: str
    lr: Literal["es", "bp"] | None
    clip: bool
    cost: str
    memory: str
    reference: str
    observations: bool = True
    guide: tuple[str, ...] = ()


_ES = Signal(
    "es",
    "forward",
    "loss",
    "es",
    False,
    "samples + 1",
    "flat",
    "Salimans et al. 2017; BBPES paper Alg. 1",
)
"""Gaussian-smoothing ES. Weight perturbation needs, costs and steps as ES does: its
record is this one under its own name and reference."""

SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        _ES,
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
            observations=False,
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
            "es_lowrank",
            "forward",
            "loss",
            "es",
            False,
            "samples + 1 (cheaper per member where the model keeps the factors)",
            "flat",
            "EGGROLL, Sarkar et al. 2025 (arXiv 2511.16652)",
        ),
        Signal(
            "forward_gradient",
            "forward",
            "loss",
            "bp",
            False,
            "2 x tangents (a jvp costs about 0.8 ES samples, measured)",
            "flat",
            "Baydin et al. 2022, Gradients without backpropagation",
        ),
        Signal(
            "guided_es",
            "forward",
            "loss",
            "es",
            False,
            "samples + 1 + the surrogate's (truncated BPTT: about 5 on evidence quick)",
            "flat (the surrogate's: bounded by the truncation)",
            "Maheswaranathan et al. 2019, Guided ES (arXiv 1806.10230)",
            guide=("truncated_loss", "surrogate_loss"),
        ),
        Signal(
            "bptt_surrogate",
            "backprop",
            "surrogate_loss",
            "bp",
            True,
            "as bptt",
            "linear in T",
            "surrogate gradients for spikes (Zenke & Ganguli 2018; Neftci et al. 2019)",
        ),
        replace(
            _ES, name="weight_perturbation", reference="Widrow & Lehr 1990; Jabri & Flower 1992"
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
    if method in EVOSAX_METHODS:
        return Signal(
            method,
            "forward",
            "loss",
            None,
            False,
            "samples (the population)",
            "flat (CMA_ES, xNES: a params x params state)",
            "evosax (Lange 2023); the strategy's own paper",
        )
    raise ConfigError(f"unknown method {method!r}; known: {', '.join(names())}")


EVOSAX_METHODS = tuple(EVOSAX_PREFIX + n for n in STRATEGIES)
"""The evosax strategies offered by name (`bbpes.learners.evosax.STRATEGIES`)."""


def names() -> tuple[str, ...]:
    """Every method name an experiment accepts."""
    return (*SIGNALS, *EVOSAX_METHODS)


def _offered(forms: LossForms | Iterable[str]) -> set[str]:
    if isinstance(forms, LossForms):
        return {k for k, v in vars(forms).items() if v is not None}
    return set(forms)


def available(forms: LossForms | Iterable[str]) -> tuple[str, ...]:
    """The method names whose loss form `forms` (a `LossForms`, or the names of its
    fields) offers, and one of their `guide` forms where they need one."""
    offered = _offered(forms)
    return tuple(
        n
        for n in names()
        if signal(n).needs in offered and (not signal(n).guide or offered & set(signal(n).guide))
    )


def unsupported(forms: LossForms | Iterable[str], *, observed: bool = False) -> dict[str, str]:
    """The signals whose loss form `forms` offers but that cannot train this task, each
    with why: those lacking a `guide` form, and, for a loss `observed` at many times
    along the solution, those that cannot take one (`Signal.observations`)."""
    offered, out = _offered(forms), {}
    for n in names():
        info = signal(n)
        if info.needs not in offered:
            continue
        if info.guide and not offered & set(info.guide):
            out[n] = (
                f"{n} needs a {' or '.join(info.guide)} for its guiding gradient, which this task has no form of"
            )
        elif observed and not info.observations:
            out[n] = (
                f"{n} cannot take a loss observed at many times (an observation cost); use fnde"
            )
    return out


SIGNAL_DEFAULTS: dict[str, Any] = {
    "sigma": 0.02,
    "samples": 100,
    "es_chunk": 0,
    "fd_eps": 1e-3,
    "tangents": 0,
    "guided_alpha": 0.5,
    "guided_k": 1,
    "truncate_slots": 0,
    "surrogate_slope": 1 / 3,
    "rank_shaping": False,
    "es_rank": 1,
    "es_structured": False,
}
"""The knobs of the signals, with defaults; an experiment overrides them in its settings."""

SIGNAL_HELP: dict[str, str] = {
    "sigma": "ES perturbation std (guided ES, low-rank ES, weight perturbation too)",
    "samples": "ES population per iteration (mirrored pairs)",
    "es_chunk": "ES samples evaluated at once (0: all)",
    "fd_eps": "finite-difference step",
    "tangents": "forward-gradient tangents per iteration (0: as many as ES samples)",
    "guided_alpha": "guided ES: weight of the isotropic part of the search (1: plain ES)",
    "guided_k": "guided ES: surrogate gradients kept as the guiding subspace",
    "truncate_slots": "truncated BPTT (guided ES's surrogate): input slots differentiated (0: a fifth)",
    "surrogate_slope": "surrogate-spike derivative slope, 1/mV (fast sigmoid)",
    "rank_shaping": "ES weighs perturbations by centered ranks of their losses",
    "es_rank": "es_lowrank: rank r of each matrix perturbation sigma A B^T / sqrt(r)",
    "es_structured": "es_lowrank: the model keeps each perturbed matrix factored (one shared product)",
}


def forward_passes(method: str, settings: Mapping[str, Any], n_params: int = 0) -> float | None:
    """Forward-pass equivalents of one iteration of `method` (None for backprop, whose
    ratio is measured)."""
    s = dict(SIGNAL_DEFAULTS, **settings)
    if method in ("es", "es_lowrank", "weight_perturbation"):
        return float(s["samples"] + 1)
    if method == "forward_gradient":
        return float(2 * (s["tangents"] or s["samples"]))
    if method in EVOSAX_METHODS:
        return float(s["samples"])
    if method == "finite_difference":
        return float(2 * n_params + 1)
    return None


_BUILDERS = ("HYPERPARAMETERS", "make_learner", "tunable_learner")


def __getattr__(name: str) -> Any:
    """`make_learner`, `tunable_learner` and `HYPERPARAMETERS` live in
    `bbpes.signal_learners` (the builders; this module is the registry) and are found
    here too, imported on first use so that neither module imports the other at load."""
    if name in _BUILDERS:
        from . import signal_learners

        return getattr(signal_learners, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
