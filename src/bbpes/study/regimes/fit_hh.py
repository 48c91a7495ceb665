"""`fit_hh`: Neuroptimus test case 1, 3 conductances of an `hh` soma fitted to
features (ground truth)."""

from __future__ import annotations

from ..problem import Problem, Regime, sweeps
from ._fit import SIGNALS, fit_problem

ORDER = 9


def build(scale: str) -> Problem:
    return fit_problem("hh", scale)


REGIME = Regime(
    name="fit_hh",
    claim="fitting a cell to features: population methods are the field's habit (Neuroptimus test case 1)",
    metric="max_rel_error",
    higher_is_better=False,
    target=0.01,
    signals=sweeps(SIGNALS),
    build=build,
)
