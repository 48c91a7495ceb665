"""`rober_plain`: ROBER's stiff neural ODE with the paper's plain field,
dy/dt = NN(y) (section 3.3.2)."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._rober import rober_problem

ORDER = 7


def build(scale: str) -> Problem:
    return rober_problem("plain", scale)


REGIME = Regime(
    name="rober_plain",
    claim="stiff neural ODE, plain field",
    metric="loss_ratio",
    higher_is_better=False,
    target=0.1,
    signals=sweeps(("es", "bptt")),
    build=build,
)
