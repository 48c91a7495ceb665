"""Derivatives from forward passes: the forward gradient (random jvps) and central
finite differences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optax

from .base import Knob, LossForms, Signal
from .knobs import ES_CHUNK, FD_EPS, SAMPLES, TANGENTS


@dataclass(frozen=True)
class ForwardGradient(Signal):
    """The forward gradient (Baydin et al. 2022): `tangents` random directions, each
    a jvp, their directional derivatives times the directions (unbiased)."""

    name: str = "forward_gradient"
    family: Literal["backprop", "forward"] = "forward"
    needs: str = "loss"
    lr: Literal["es", "bp"] | None = "bp"
    clip: bool = False
    cost: str = "2 x tangents (a jvp costs about 0.8 ES samples, measured)"
    memory: str = "flat"
    reference: str = "Baydin et al. 2022, Gradients without backpropagation"
    color: str | None = "goldenrod"
    knobs: tuple[Knob, ...] = (TANGENTS, SAMPLES, ES_CHUNK)

    def tangents(self, settings: Mapping[str, Any]) -> int:
        s = self.settings(settings)
        return int(s["tangents"] or s["samples"])

    def forward_passes(self, settings: Mapping[str, Any], n_params: int = 0) -> float:
        return float(2 * self.tangents(settings))

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        from ..estimators.forward_gradient import forward_gradient
        from ..learners import GradientLearner

        chunk = self.settings(settings)["es_chunk"] or None
        estimator = forward_gradient(self.form(forms), self.tangents(settings), chunk_size=chunk)
        return GradientLearner(estimator, optimizer)


@dataclass(frozen=True)
class FiniteDifference(Signal):
    """Central finite differences, one parameter at a time: 2 n + 1 forward passes."""

    name: str = "finite_difference"
    family: Literal["backprop", "forward"] = "forward"
    needs: str = "loss"
    lr: Literal["es", "bp"] | None = "bp"
    clip: bool = False
    cost: str = "2 x params + 1"
    memory: str = "flat"
    reference: str = "central differences"
    color: str | None = "tab:gray"
    knobs: tuple[Knob, ...] = (FD_EPS,)

    def forward_passes(self, settings: Mapping[str, Any], n_params: int = 0) -> float:
        return float(2 * n_params + 1)

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        from ..estimators.finite_diff import finite_difference
        from ..learners import GradientLearner

        estimator = finite_difference(self.form(forms), self.settings(settings)["fd_eps"])
        return GradientLearner(estimator, optimizer)


BUILTIN: tuple[Signal, ...] = (FiniteDifference(), ForwardGradient())
"""The signals of this module that bbpes registers (`bbpes.signals` finds every module's
`BUILTIN`)."""
