"""Cell models (one file each) and spike readouts."""

from .base import AbstractCell as AbstractCell
from .base import State as State
from .base import n_steps as n_steps
from .base import simulate as simulate
from .morris_lecar import EXPLOSIVE as EXPLOSIVE
from .morris_lecar import NON_EXPLOSIVE as NON_EXPLOSIVE
from .morris_lecar import MorrisLecar as MorrisLecar
from .readout import hard_threshold as hard_threshold
from .readout import soft_threshold as soft_threshold
from .registry import CELLS as CELLS
from .registry import cell_by_name as cell_by_name
