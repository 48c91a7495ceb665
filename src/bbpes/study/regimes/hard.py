"""`hard`: case A with a hard-threshold spike output: backpropagation gets no
gradient through it (`bptt_surrogate` and `guided_es` train through a surrogate
network)."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._evidence import evidence_problem

ORDER = 3


def build(scale: str) -> Problem:
    return evidence_problem("A", scale, transmitter="hard")


REGIME = Regime(
    name="hard",
    claim="hard-threshold spike output: no gradient for BP",
    metric="accuracy",
    higher_is_better=True,
    target=0.9,
    signals=sweeps(
        (
            "es",
            "es_lowrank",
            "guided_es",
            "evosax:SNES",
            "evosax:Open_ES",
            "bptt_surrogate",
            "bptt",
        )
    ),
    build=build,
)
