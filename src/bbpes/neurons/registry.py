"""Cell models by name, as `--set neuron=NAME` selects them, each with its drive current.

The package's own cells are listed here; an installed package adds its own through the
entry-point group `bbpes.cells` (see docs/neurons.md), each entry naming a
`RegisteredCell` (or a bare `AbstractCell`, which then has no drive):

    [project.entry-points."bbpes.cells"]
    my_cell = "my_package.cells:MY_CELL"        # MY_CELL = RegisteredCell(MyCell(), drive=5.0)

Plugins are loaded on first use, once per process; `register` adds a cell in-process.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..imports import entry_point_objects
from .base import AbstractCell
from .fitzhugh_nagumo import FITZHUGH_NAGUMO
from .hodgkin_huxley import HODGKIN_HUXLEY
from .izhikevich import IZHIKEVICH
from .lif import LEAKY_INTEGRATE_AND_FIRE
from .morris_lecar import EXPLOSIVE, NON_EXPLOSIVE

ENTRY_POINTS = "bbpes.cells"
"""The entry-point group through which installed packages add cells."""


@dataclass(frozen=True)
class RegisteredCell:
    """A cell under its name, with its drive: a constant current, in the cell's own
    current unit, at which it fires tonically at a moderate rate from rest (the scale
    a network should give its input currents). `drive = None`: not known, and an
    experiment that needs it says so instead of guessing."""

    cell: AbstractCell
    drive: float | None = None


_BUILTIN: dict[str, RegisteredCell] = {
    "morris_lecar": RegisteredCell(NON_EXPLOSIVE, 100.0),  # µA/cm²: 12 spikes in 1 s
    # No constant current makes the explosive cell fire tonically (60-400 µA/cm² tried):
    # 200 is a current that gives its one onset spike.
    "morris_lecar_explosive": RegisteredCell(EXPLOSIVE, 200.0),  # µA/cm²
    "hodgkin_huxley": RegisteredCell(HODGKIN_HUXLEY, 10.0),  # µA/cm²: 69 spikes in 1 s
    "fitzhugh_nagumo": RegisteredCell(FITZHUGH_NAGUMO, 0.5),  # dimensionless: 26 in 1 s
    "lif": RegisteredCell(LEAKY_INTEGRATE_AND_FIRE, 1.8),  # µA/cm²: 50 in 1 s
    "izhikevich": RegisteredCell(IZHIKEVICH, 10.0),  # µA/cm² (mV/ms): 23 in 1 s
}
_REGISTERED: dict[str, RegisteredCell] = {}


def register(name: str, cell: AbstractCell, drive: float | None = None) -> None:
    """Add `cell` under `name` for this process (a name already taken is an error)."""
    if name in cells():
        raise ConfigError(f"neuron name {name!r} is taken")
    if not isinstance(cell, AbstractCell):
        raise ConfigError(f"neuron {name!r}: {cell!r} is not an AbstractCell")
    _REGISTERED[name] = RegisteredCell(cell, None if drive is None else float(drive))


def _is_cell(value: object) -> bool:
    cell = value.cell if isinstance(value, RegisteredCell) else value
    return isinstance(cell, AbstractCell)


@functools.cache
def _plugins() -> dict[str, RegisteredCell]:
    """The cells of the installed `bbpes.cells` entry points (`bbpes.imports`: one that
    fails to load or is not a `RegisteredCell` or `AbstractCell` is skipped with a
    warning); one that takes a built-in name is skipped with a warning too."""
    found = {}
    loaded = entry_point_objects(ENTRY_POINTS, _is_cell, "RegisteredCell or AbstractCell")
    for name, value in loaded.items():
        if name in _BUILTIN:
            warnings.warn(
                f"bbpes: skipping neuron plugin {name!r}: the name is built in", stacklevel=2
            )
            continue
        found[name] = value if isinstance(value, RegisteredCell) else RegisteredCell(value)
    return found


def cells() -> dict[str, RegisteredCell]:
    """Every cell by name: built in, then from plugins, then `register`ed."""
    return {**_BUILTIN, **_plugins(), **_REGISTERED}


def cell_by_name(name: str) -> AbstractCell:
    """The cell named `name`; `ConfigError` (a `ValueError`) for an unknown name."""
    known = cells()
    if name not in known:
        raise ConfigError(f"unknown neuron {name!r}; known: {', '.join(known)}")
    return known[name].cell


def drive_current(name: str) -> float:
    """The drive current of the cell named `name`; `ConfigError` when it has none."""
    cell_by_name(name)
    value = cells()[name].drive
    if value is None:
        raise ConfigError(
            f"neuron {name!r} has no drive current: register it as "
            f"RegisteredCell(cell, drive=CURRENT), a current at which it fires tonically"
        )
    return value


class _Cells(Mapping):
    """`CELLS[name]`: the cell (a live view of `cells()`)."""

    def __getitem__(self, name: str) -> AbstractCell:
        if name not in cells():
            raise KeyError(name)
        return cells()[name].cell

    def __iter__(self) -> Iterator[str]:
        return iter(cells())

    def __len__(self) -> int:
        return len(cells())


class _Drives(Mapping):
    """`DRIVE[name]`: the drive current of every cell that has one. For a known cell
    without one it raises `ConfigError` (not `KeyError`), so that `DRIVE.get(name,
    default)` cannot quietly hand out another cell's current."""

    def __getitem__(self, name: str) -> float:
        if name not in cells():
            raise KeyError(name)
        return drive_current(name)

    def __contains__(self, name: object) -> bool:
        entry = cells().get(name) if isinstance(name, str) else None
        return entry is not None and entry.drive is not None

    def __iter__(self) -> Iterator[str]:
        return iter(n for n, entry in cells().items() if entry.drive is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


CELLS: Mapping[str, AbstractCell] = _Cells()
"""Every cell by name (built-in, plugins, registered)."""

DRIVE: Mapping[str, float] = _Drives()
"""Per cell name, a constant current (in that cell's units) at which it fires tonically
at a moderate rate, from rest: the scale of the input currents a network should use."""
