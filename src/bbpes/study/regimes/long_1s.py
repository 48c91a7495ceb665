"""`long_1s`: case C of the ES paper, inputs held 20 ms (1 s trials at paper scale):
backpropagation's memory grows with the trial, ES's does not."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._evidence import evidence_problem

ORDER = 4


def build(scale: str) -> Problem:
    return evidence_problem("C", scale)


REGIME = Regime(
    name="long_1s",
    claim="long trials (case C; 1 s at paper scale): BP runs out of memory, ES does not",
    metric="accuracy",
    higher_is_better=True,
    target=0.9,
    signals=sweeps(("es", "es_lowrank", "forward_gradient", "bptt", "bptt_checkpointed")),
    build=build,
)
