"""Exact reverse-mode derivatives through the simulation: backpropagation through time
on any loss form (`BPTT`), and the adjoints of a neural ODE (`Adjoint`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optax

from .base import LossForms, Signal
from .knobs import SURROGATE_SLOPE


@dataclass(frozen=True)
class BPTT(Signal):
    """Reverse-mode autodiff through the simulation's loop, on the loss form `needs`
    (`loss`: `lax.scan`; `checkpointed_loss`: `checkpointed_scan`, memory sqrt(T);
    `surrogate_loss`: the spike threshold differentiated through a surrogate), with
    the experiment's gradient clip where `clip`. Its cost against one forward pass is
    measured (`bbpes bench`), not assumed."""

    name: str = "bptt"
    family: Literal["backprop", "forward"] = "backprop"
    needs: str = "loss"
    lr: Literal["es", "bp"] | None = "bp"
    clip: bool = True
    cost: str = "measured (about 2-4)"
    memory: str = "linear in T"
    reference: str = "reverse-mode autodiff through lax.scan"

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        from ..estimators import bptt
        from ..learners import GradientLearner

        return GradientLearner(bptt(self.form(forms)), optimizer)


@dataclass(frozen=True)
class Adjoint(Signal):
    """The gradient of a neural ODE's loss (`needs` = `ode_loss`, a `bbpes.ode.ODELoss`)
    by diffrax: `kind` `"pnde"` backpropagates through the solver
    (`RecursiveCheckpointAdjoint`), `"fnde"` solves the adjoint ODE backwards
    (`BacksolveAdjoint`, flat memory)."""

    name: str = "fnde"
    family: Literal["backprop", "forward"] = "backprop"
    needs: str = "ode_loss"
    lr: Literal["es", "bp"] | None = "bp"
    clip: bool = True
    cost: str = "measured"
    memory: str = "flat"
    reference: str = "Chen et al. 2018 (backsolve adjoint)"
    kind: Literal["pnde", "fnde"] = "fnde"

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        from ..estimators import fnde, pnde
        from ..learners import GradientLearner

        estimator = pnde if self.kind == "pnde" else fnde
        return GradientLearner(estimator(self.form(forms)), optimizer)


BPTT_SIGNALS = (
    BPTT(color="tab:blue"),
    BPTT(
        name="bptt_noclip",
        clip=False,
        reference="BPTT with no gradient clipping (the paper's BP)",
        color="tab:brown",
    ),
    BPTT(
        name="bptt_checkpointed",
        needs="checkpointed_loss",
        cost="measured (about 3-5)",
        memory="sqrt(T)",
        reference="Griewank & Walther 2000 (jax.checkpoint)",
        color="tab:cyan",
    ),
)
ADJOINT_SIGNALS = (
    Adjoint(
        name="pnde",
        kind="pnde",
        memory="linear in solver steps",
        reference="diffrax RecursiveCheckpointAdjoint",
        observations=False,
        color="tab:green",
    ),
    Adjoint(name="fnde", kind="fnde", color="tab:olive"),
)
SURROGATE = BPTT(
    name="bptt_surrogate",
    needs="surrogate_loss",
    cost="as bptt",
    reference="surrogate gradients for spikes (Zenke & Ganguli 2018; Neftci et al. 2019)",
    color="tab:pink",
    knobs=(SURROGATE_SLOPE,),
)

BUILTIN: tuple[Signal, ...] = (*BPTT_SIGNALS, SURROGATE, *ADJOINT_SIGNALS)
"""The signals of this module that bbpes registers (`bbpes.signals` finds every module's
`BUILTIN`)."""
