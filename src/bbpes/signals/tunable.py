"""`tunable_learner`: a signal's learner with its step sizes and `sigma` as data, so that
one compiled step serves a whole sweep of them (`bbpes.learners.tunable.Tunable`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import optax

from ..learners.tunable import Tunable
from .base import LossForms
from .registry import signal

HYPERPARAMETERS = ("lr", "lr_es", "sigma")
"""The settings a `Tunable` learner takes as data: the step sizes and the perturbation scale."""


def tunable_learner(
    method: str,
    forms: LossForms,
    optimizer: Callable[[Mapping[str, Any]], optax.GradientTransformation],
    settings: Mapping[str, Any],
) -> Tunable:
    """`signal(method).learner(forms, optimizer(s), s)` with the `HYPERPARAMETERS` of
    `settings` as data: `s` is `settings` with those replaced by scalar arrays (float32,
    or float64 under `jax.enable_x64`), so `optimizer(s)` must read its learning rate
    from `s`. Bad settings raise here (the learner is built once at its values)."""
    base = dict(settings)
    dtype = jnp.result_type(float)
    hyper = {k: jnp.asarray(base[k], dtype) for k in HYPERPARAMETERS if k in base}
    learning_signal = signal(method)

    def make(h: Mapping[str, Any]):
        s = {**base, **h}
        return learning_signal.learner(forms, optimizer(s), s)

    make(hyper)
    return Tunable(make, hyper)
