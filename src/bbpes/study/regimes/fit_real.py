"""`fit_real`: the Pospischil model fitted to cell B6 (5 sweeps, BluePyEfe's test
data): no truth, the metric is the hard loss (validation = test)."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._fit import SIGNALS, fit_problem

ORDER = 11


def build(scale: str) -> Problem:
    return fit_problem("real", scale)


REGIME = Regime(
    name="fit_real",
    claim="fitting the Pospischil model to a real cell (B6, 5 sweeps): eFEL z-score loss",
    metric="loss",
    higher_is_better=False,
    target=1.0,
    signals=sweeps(SIGNALS),
    build=build,
)
