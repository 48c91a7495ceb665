"""Cell models by name, as `--set neuron=NAME` selects them."""

from __future__ import annotations

from .base import AbstractCell
from .morris_lecar import EXPLOSIVE, NON_EXPLOSIVE

CELLS: dict[str, AbstractCell] = {
    "morris_lecar": NON_EXPLOSIVE,
    "morris_lecar_explosive": EXPLOSIVE,
}


def cell_by_name(name: str) -> AbstractCell:
    if name not in CELLS:
        raise ValueError(f"unknown neuron {name!r}; known: {', '.join(CELLS)}")
    return CELLS[name]
