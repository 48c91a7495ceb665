"""`rober_normalised`: ROBER's stiff neural ODE with Kim et al.'s normalised field."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._rober import rober_problem

ORDER = 8


def build(scale: str) -> Problem:
    return rober_problem("normalised", scale)


REGIME = Regime(
    name="rober_normalised",
    claim="stiff neural ODE, normalised field",
    metric="loss_ratio",
    higher_is_better=False,
    target=0.1,
    signals=sweeps(("es", "bptt")),
    build=build,
)
