"""Cell models by name, as `--set neuron=NAME` selects them."""

from __future__ import annotations

from .base import AbstractCell
from .fitzhugh_nagumo import FITZHUGH_NAGUMO
from .hodgkin_huxley import HODGKIN_HUXLEY
from .lif import LEAKY_INTEGRATE_AND_FIRE
from .morris_lecar import EXPLOSIVE, NON_EXPLOSIVE

CELLS: dict[str, AbstractCell] = {
    "morris_lecar": NON_EXPLOSIVE,
    "morris_lecar_explosive": EXPLOSIVE,
    "hodgkin_huxley": HODGKIN_HUXLEY,
    "fitzhugh_nagumo": FITZHUGH_NAGUMO,
    "lif": LEAKY_INTEGRATE_AND_FIRE,
}

DRIVE: dict[str, float] = {
    "morris_lecar": 100.0,  # µA/cm²: 12 spikes in 1 s
    # No constant current makes the explosive cell fire tonically (60-400 µA/cm² tried):
    # 200 is a current that gives its one onset spike.
    "morris_lecar_explosive": 200.0,  # µA/cm²
    "hodgkin_huxley": 10.0,  # µA/cm²: 69 spikes in 1 s (tonic above 6.23)
    "fitzhugh_nagumo": 0.5,  # dimensionless: 26 spikes in 1 s (tonic for 0.324-1.468)
    "lif": 1.8,  # µA/cm²: 50 spikes in 1 s (fires above 1.5)
}
"""Per cell name, a constant current (in that cell's units) at which it fires tonically
at a moderate rate, from rest: the scale of the input currents a network should use."""


def cell_by_name(name: str) -> AbstractCell:
    if name not in CELLS:
        raise ValueError(f"unknown neuron {name!r}; known: {', '.join(CELLS)}")
    return CELLS[name]
