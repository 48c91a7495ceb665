"""The learner of every named signal (`bbpes.signals` is the registry: what each signal
is and costs; this module builds the learner that runs it): `make_learner(method,
forms, optimizer, settings)`, and `tunable_learner`, the same with the step sizes and
sigma as data so that one compiled step serves a whole sweep."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from .errors import ConfigError
from .learners.base import AbstractLearner
from .learners.tunable import Tunable
from .signals import EVOSAX_METHODS, SIGNAL_DEFAULTS, LossForms, signal

HYPERPARAMETERS = ("lr", "lr_es", "sigma")
"""The settings a `Tunable` learner takes as data: the step sizes and the perturbation scale."""


def tunable_learner(
    method: str,
    forms: LossForms,
    optimizer: Callable[[Mapping[str, Any]], optax.GradientTransformation],
    settings: Mapping[str, Any],
) -> Tunable:
    """`make_learner(method, forms, optimizer(s), s)` with the `HYPERPARAMETERS` of
    `settings` as data: `s` is `settings` with those replaced by scalar arrays (float32,
    or float64 under `jax.enable_x64`), so `optimizer(s)` must read its learning rate
    from `s`. Bad settings raise here (the learner is built once at its values)."""
    base = dict(settings)
    dtype = jnp.result_type(float)
    hyper = {k: jnp.asarray(base[k], dtype) for k in HYPERPARAMETERS if k in base}

    def make(h: Mapping[str, Any]) -> AbstractLearner:
        s = {**base, **h}
        return make_learner(method, forms, optimizer(s), s)

    make(hyper)
    return Tunable(make, hyper)


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
    from .estimators.forward_gradient import forward_gradient
    from .learners import GradientLearner

    info = signal(method)
    if method in EVOSAX_METHODS:
        return _evosax(method, forms, optimizer, dict(SIGNAL_DEFAULTS, **settings))
    loss = getattr(forms, info.needs)
    if loss is None:
        raise ConfigError(f"method {method!r} is not available for this task")
    s = dict(SIGNAL_DEFAULTS, **settings)
    s["tangents"] = s["tangents"] or s["samples"]
    chunk = s["es_chunk"] or None
    es_options = {
        "chunk_size": chunk,
        "mesh": s.get("mesh"),
        "rank_shaping": bool(s["rank_shaping"]),
    }
    estimators = {
        "es": lambda: es(loss, s["sigma"], s["samples"], **es_options),
        "es_lowrank": lambda: es(
            loss,
            s["sigma"],
            s["samples"],
            rank=int(s["es_rank"]) or 1,
            structured=bool(s["es_structured"]),
            **es_options,
        ),
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
    if method == "forward_gradient":
        return GradientLearner(
            forward_gradient(loss, int(s["tangents"]), chunk_size=chunk), optimizer
        )
    if method == "bptt_surrogate":
        return GradientLearner(bptt(loss), optimizer)
    if method == "guided_es":
        return _guided_es(forms, optimizer, s, chunk)
    if method in estimators:
        return GradientLearner(estimators[method](), optimizer)
    raise ConfigError(f"method {method!r} is not available for this task")


def _evosax(method: str, forms: LossForms, optimizer, s: Mapping[str, Any]):
    """An evosax strategy with population `samples` and initial search scale `sigma`
    (per weight); strategies that step by a gradient take `optimizer`; evosax's
    GuidedES is guided by truncated (or surrogate-spike) BPTT when the task has it."""
    from .estimators import bptt
    from .learners.evosax import evosax_learner

    if forms.loss is None:
        raise ConfigError(f"method {method!r} needs the task's loss")
    guide = forms.truncated_loss or forms.surrogate_loss
    surrogate = bptt(guide) if method == "evosax:GuidedES" and guide is not None else None
    return evosax_learner(
        method,
        forms.loss,
        population_size=int(s["samples"]),
        std_init=_number(s["sigma"]),
        optimizer=optimizer,
        surrogate=surrogate,
        chunk_size=s["es_chunk"] or None,
    )


def _guided_es(forms: LossForms, optimizer, s: Mapping[str, Any], chunk: int | None):
    """Guided ES with truncated BPTT (or, without it, surrogate-spike BPTT) as the
    surrogate gradient; `sigma` is per weight like ES's, so the paper's whole-perturbation
    scale is sigma sqrt(n_params)."""
    from .estimators import bptt
    from .learners.guided_es import GuidedES

    surrogate = forms.truncated_loss or forms.surrogate_loss
    if surrogate is None:
        raise ConfigError("guided_es needs a truncated or surrogate-spike loss from the task")
    if not s.get("n_params"):
        raise ConfigError("guided_es needs the number of parameters (settings n_params)")
    return GuidedES(
        forms.loss,
        bptt(surrogate),
        optimizer,
        sigma=_number(s["sigma"]) * float(s["n_params"]) ** 0.5,
        samples=int(s["samples"]),
        alpha=float(s["guided_alpha"]),
        k=int(s["guided_k"]),
        chunk_size=chunk,
    )


def _number(x: Any) -> Any:
    """`x` as a Python float, or as it is when it is an array (a `Tunable`'s hyperparameter)."""
    return x if isinstance(x, jax.Array) else float(x)
