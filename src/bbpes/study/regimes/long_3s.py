"""`long_3s`: case C with inputs held 60 ms (3 s trials at paper scale)."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._evidence import evidence_problem

ORDER = 5


def build(scale: str) -> Problem:
    return evidence_problem("C", scale, hold=60.0)


REGIME = Regime(
    name="long_3s",
    claim="long trials (case C, inputs held 3x longer; 3 s at paper scale): BP runs out of memory, ES does not",
    metric="accuracy",
    higher_is_better=True,
    target=0.9,
    signals=sweeps(("es", "es_lowrank", "forward_gradient", "bptt", "bptt_checkpointed")),
    build=build,
)
