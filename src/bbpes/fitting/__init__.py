"""Fitting single cells to current-clamp recordings: protocols, the simulator, bounded parameters."""

from .parameters import FitParameter as FitParameter
from .parameters import ParameterSpace as ParameterSpace
from .protocol import CurrentClamp as CurrentClamp
from .protocol import simulate as simulate
from .protocol import simulate_float64 as simulate_float64
from .protocol import simulate_population as simulate_population
