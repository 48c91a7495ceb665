"""`case_b`: case B of the ES paper (section 3.2.2), explosive Morris-Lecar cells and
300 ms trials: the paper's central claim, ES more robust than backpropagation."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._evidence import FORWARD, evidence_problem

ORDER = 2


def build(scale: str) -> Problem:
    return evidence_problem("B", scale)


REGIME = Regime(
    name="case_b",
    claim="explosive cells: ES is more robust than BP (section 3.2.2)",
    metric="accuracy",
    higher_is_better=True,
    target=0.9,
    signals=sweeps((*FORWARD, "bptt", "bptt_noclip", "pnde")),
    build=build,
)
