"""Estimates from losses alone, by perturbing the weights: Gaussian-smoothing ES (dense
or low-rank), weight perturbation, and guided ES (a search guided by a surrogate
gradient)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jax
import optax

from ..errors import ConfigError
from .base import Knob, LossForms, Signal
from .knobs import (
    ES_CHUNK,
    ES_RANK,
    ES_STRUCTURED,
    GUIDED_ALPHA,
    GUIDED_K,
    RANK_SHAPING,
    SAMPLES,
    SIGMA,
    TRUNCATE_SLOTS,
)


def number(x: Any) -> Any:
    """`x` as a Python float, or as it is when it is an array (a `Tunable`'s
    hyperparameter, traced)."""
    return x if isinstance(x, jax.Array) else float(x)


@dataclass(frozen=True)
class ES(Signal):
    """Gaussian-smoothing ES (`bbpes.estimators.es`): `samples` mirrored perturbations
    of std `sigma` per weight, the centre scored too; with `lowrank`, each matrix is
    perturbed by sigma A B^T / sqrt(es_rank) (EGGROLL), kept factored in the model
    where `es_structured`."""

    name: str = "es"
    family: Literal["backprop", "forward"] = "forward"
    needs: str = "loss"
    lr: Literal["es", "bp"] | None = "es"
    clip: bool = False
    cost: str = "samples + 1"
    memory: str = "flat"
    reference: str = "Salimans et al. 2017; BBPES paper Alg. 1"
    color: str | None = "tab:red"
    knobs: tuple[Knob, ...] = (SIGMA, SAMPLES, ES_CHUNK, RANK_SHAPING)
    lowrank: bool = False

    def forward_passes(self, settings: Mapping[str, Any], n_params: int = 0) -> float:
        return float(self.settings(settings)["samples"] + 1)

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        from ..estimators import es
        from ..learners import GradientLearner

        s = self.settings(settings)
        options = {
            "chunk_size": s["es_chunk"] or None,
            "mesh": s.get("mesh"),
            "rank_shaping": bool(s["rank_shaping"]),
        }
        if self.lowrank:
            options |= {"rank": int(s["es_rank"]) or 1, "structured": bool(s["es_structured"])}
        estimator = es(self.form(forms), s["sigma"], s["samples"], **options)
        return GradientLearner(estimator, optimizer)


@dataclass(frozen=True)
class WeightPerturbation(ES):
    """Weight perturbation (Widrow & Lehr 1990; Jabri & Flower 1992): ES's needs, cost
    and step, its own estimator (`bbpes.estimators.finite_diff.weight_perturbation`)."""

    name: str = "weight_perturbation"
    reference: str = "Widrow & Lehr 1990; Jabri & Flower 1992"
    color: str | None = "tab:purple"
    knobs: tuple[Knob, ...] = (SIGMA, SAMPLES, ES_CHUNK)

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        from ..estimators.finite_diff import weight_perturbation
        from ..learners import GradientLearner

        s = self.settings(settings)
        estimator = weight_perturbation(
            self.form(forms), s["sigma"], s["samples"], chunk_size=s["es_chunk"] or None
        )
        return GradientLearner(estimator, optimizer)


GUIDED_SIGMA = Knob(
    "sigma",
    0.02,
    "perturbation std per weight (the whole perturbation's scale is sigma sqrt(n_params))",
    "parameter units",
    positive=True,
)


@dataclass(frozen=True)
class GuidedES(Signal):
    """Guided ES (Maheswaranathan et al. 2019): ES searching partly in the subspace of
    the last `guided_k` surrogate gradients (truncated BPTT, or surrogate-spike BPTT
    where the task has no truncated loss); `sigma` is per weight like ES's."""

    name: str = "guided_es"
    family: Literal["backprop", "forward"] = "forward"
    needs: str = "loss"
    lr: Literal["es", "bp"] | None = "es"
    clip: bool = False
    cost: str = "samples + 1 + the surrogate's (truncated BPTT: about 5 on evidence quick)"
    memory: str = "flat (the surrogate's: bounded by the truncation)"
    reference: str = "Maheswaranathan et al. 2019, Guided ES (arXiv 1806.10230)"
    guide: tuple[str, ...] = ("truncated_loss", "surrogate_loss")
    color: str | None = "tab:orange"
    knobs: tuple[Knob, ...] = (
        GUIDED_SIGMA,
        SAMPLES,
        ES_CHUNK,
        GUIDED_ALPHA,
        GUIDED_K,
        TRUNCATE_SLOTS,
    )

    def forward_passes(self, settings: Mapping[str, Any], n_params: int = 0) -> float:
        return float(self.settings(settings)["samples"] + 1)

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        from ..estimators import bptt
        from ..learners.guided_es import GuidedES as Learner

        s = self.settings(settings)
        loss = self.form(forms)
        surrogate = forms.truncated_loss or forms.surrogate_loss
        if surrogate is None:
            raise ConfigError("guided_es needs a truncated or surrogate-spike loss from the task")
        if not s.get("n_params"):
            raise ConfigError("guided_es needs the number of parameters (settings n_params)")
        return Learner(
            loss,
            bptt(surrogate),
            optimizer,
            sigma=number(s["sigma"]) * float(s["n_params"]) ** 0.5,
            samples=int(s["samples"]),
            alpha=float(s["guided_alpha"]),
            k=int(s["guided_k"]),
            chunk_size=s["es_chunk"] or None,
        )


ES_SIGNALS = (
    ES(),
    ES(
        name="es_lowrank",
        cost="samples + 1 (cheaper per member where the model keeps the factors)",
        reference="EGGROLL, Sarkar et al. 2025 (arXiv 2511.16652)",
        color="tab:red",
        knobs=(SIGMA, SAMPLES, ES_CHUNK, RANK_SHAPING, ES_RANK, ES_STRUCTURED),
        lowrank=True,
    ),
)

BUILTIN: tuple[Signal, ...] = (*ES_SIGNALS, GuidedES(), WeightPerturbation())
"""The signals of this module that bbpes registers (`bbpes.signals` finds every module's
`BUILTIN`)."""
