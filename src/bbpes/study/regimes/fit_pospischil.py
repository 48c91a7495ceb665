"""`fit_pospischil`: the Pospischil model's 7 parameters under 4 current steps
(ground truth)."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._fit import SIGNALS, fit_problem

ORDER = 10


def build(scale: str) -> Problem:
    return fit_problem("pospischil", scale)


REGIME = Regime(
    name="fit_pospischil",
    claim="fitting 7 parameters of the Pospischil model to features of 4 sweeps (ground truth)",
    metric="max_rel_error",
    higher_is_better=False,
    target=0.01,
    signals=sweeps(SIGNALS),
    build=build,
)
