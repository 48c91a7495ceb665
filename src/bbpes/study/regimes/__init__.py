"""bbpes's own regimes of the signals study (`bbpes run signals`): each module of this
package that defines `REGIME` (a `bbpes.study.Regime`) and `ORDER` (its place in the
study's table, a number) is one regime, found, not listed: adding a regime is its own
file. Modules whose name starts with `_` hold what several regimes share (the evidence,
ROBER and fitting problems); an installed package adds problems through the entry-point
group `bbpes.problems` instead (`bbpes.study.plugins`).

Scales: `tiny` (the test suite: seconds), `quick` (about 10 minutes a regime),
`reduced` (the default: 25-40 minutes a regime on 2 loaded cores, measured; the whole
grid is an afternoon), `paper` (the paper's sizes: a GPU or a long run). Each problem
module says its sizes per scale; `BUDGETS` gives the training seconds per run.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..problem import Regime

BUDGETS = {
    "tiny": 1.0,
    "quick": 6.0,
    "reduced": 15.0,
    "paper": 1800.0,
}
"""Training seconds per run (one tuning value or one seed) at each scale."""

SCALES = tuple(BUDGETS)
"""The scales every regime builds at."""


@functools.cache
def _found() -> tuple[Regime, ...]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        regime = getattr(module, "REGIME", None)
        if isinstance(regime, Regime):
            found.append((getattr(module, "ORDER", 1000), regime.name, regime))
    return tuple(regime for *_, regime in sorted(found, key=lambda item: item[:2]))


def regimes() -> dict[str, Regime]:
    """Every regime of the study, by name, in the study's order (`ORDER`, then name)."""
    return {regime.name: regime for regime in _found()}


def names() -> tuple[str, ...]:
    """The regimes' names, in the study's order."""
    return tuple(regimes())
