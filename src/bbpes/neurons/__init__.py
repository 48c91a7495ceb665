"""Cell models (one file each) and spike readouts."""

from .base import AbstractCell as AbstractCell
from .base import State as State
from .base import n_steps as n_steps
from .base import simulate as simulate
from .fitzhugh_nagumo import FITZHUGH_NAGUMO as FITZHUGH_NAGUMO
from .fitzhugh_nagumo import FitzHughNagumo as FitzHughNagumo
from .hodgkin_huxley import HODGKIN_HUXLEY as HODGKIN_HUXLEY
from .hodgkin_huxley import HodgkinHuxley as HodgkinHuxley
from .izhikevich import IZHIKEVICH as IZHIKEVICH
from .izhikevich import Izhikevich as Izhikevich
from .lif import LEAKY_INTEGRATE_AND_FIRE as LEAKY_INTEGRATE_AND_FIRE
from .lif import LIF as LIF
from .lif import spike_times as spike_times
from .morris_lecar import EXPLOSIVE as EXPLOSIVE
from .morris_lecar import NON_EXPLOSIVE as NON_EXPLOSIVE
from .morris_lecar import MorrisLecar as MorrisLecar
from .readout import hard_threshold as hard_threshold
from .readout import soft_threshold as soft_threshold
from .registry import CELLS as CELLS
from .registry import DRIVE as DRIVE
from .registry import RegisteredCell as RegisteredCell
from .registry import cell_by_name as cell_by_name
from .registry import cells as cells
from .registry import drive_current as drive_current
from .registry import register as register
