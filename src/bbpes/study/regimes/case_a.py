"""`case_a`: case A of the ES paper (section 3.2), non-explosive Morris-Lecar cells
and 300 ms trials: the control, where backpropagation is expected to be fine."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._evidence import FORWARD, evidence_problem

ORDER = 1


def build(scale: str) -> Problem:
    return evidence_problem("A", scale)


REGIME = Regime(
    name="case_a",
    claim="control: non-explosive cells, BP is expected to be fine",
    metric="accuracy",
    higher_is_better=True,
    target=0.9,
    signals=sweeps(
        (
            *FORWARD,
            "evosax:SNES",
            "evosax:Open_ES",
            "bptt",
            "bptt_noclip",
            "bptt_checkpointed",
        )
    ),
    build=build,
)
