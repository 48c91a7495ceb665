"""evosax's strategies as signals (Lange 2023): `Evosax("CMA_ES")` is the signal
`evosax:CMA_ES`, its population `samples`, its initial search scale `sigma`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optax

from ..errors import ConfigError
from ..learners.evosax_names import STRATEGIES
from .base import Knob, LossForms, Signal
from .knobs import ES_CHUNK
from .perturbation import number

PREFIX = "evosax:"

STD_INIT = Knob(
    "sigma",
    0.02,
    "initial search std per weight (evosax's std_init)",
    "parameter units",
    positive=True,
)
POPULATION = Knob("samples", 100, "population size per generation", low=2)


@dataclass(frozen=True)
class Evosax(Signal):
    """The evosax strategy `strategy` (one of `bbpes.learners.evosax_names.STRATEGIES`)
    on the task's loss: its population `samples`, its initial std `sigma` per weight;
    the plain-gradient strategies (Open_ES, PGPE, ...) step with the experiment's
    optimizer, the others (SNES, xNES, CMA-ES, SimpleGA) with their own update.
    evosax's GuidedES is guided by truncated (or surrogate-spike) BPTT where the task
    has it."""

    name: str = ""
    family: Literal["backprop", "forward"] = "forward"
    needs: str = "loss"
    lr: Literal["es", "bp"] | None = None
    clip: bool = False
    cost: str = "samples (the population)"
    memory: str = "flat (CMA_ES, xNES: a params x params state)"
    reference: str = "evosax (Lange 2023); the strategy's own paper"
    knobs: tuple[Knob, ...] = (STD_INIT, POPULATION, ES_CHUNK)
    strategy: str = "Open_ES"

    def __post_init__(self):
        if not self.name:
            object.__setattr__(self, "name", PREFIX + self.strategy)

    def forward_passes(self, settings: Mapping[str, Any], n_params: int = 0) -> float:
        return float(self.settings(settings)["samples"])

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        from ..estimators import bptt
        from ..learners.evosax import evosax_learner

        if forms.loss is None:
            raise ConfigError(f"method {self.name!r} needs the task's loss")
        s = self.settings(settings)
        guide = forms.truncated_loss or forms.surrogate_loss
        guided = self.strategy == "GuidedES" and guide is not None
        return evosax_learner(
            self.name,
            forms.loss,
            population_size=int(s["samples"]),
            std_init=number(s["sigma"]),
            optimizer=optimizer,
            surrogate=bptt(guide) if guided else None,
            chunk_size=s["es_chunk"] or None,
        )


EVOSAX_SIGNALS = tuple(Evosax(strategy=name) for name in STRATEGIES)
