"""The framework that runs experiments: `Experiment` (its settings declared once, as
`bbpes.settings.Setting`s), the checks several settings need together (`checks`), the
registry (`registry`, `get`) and `run_experiment`, what `bbpes run` does.

Experiments themselves live in `bbpes.experiments`; nothing here imports one by name.
"""

from ..errors import ConfigError
from ..settings import UNSET, Setting
from .catalog import ENTRY_POINTS, get, registry
from .experiment import MAX_SEED, SEED, Experiment

__all__ = [
    "ENTRY_POINTS",
    "MAX_SEED",
    "SEED",
    "UNSET",
    "ConfigError",
    "Experiment",
    "Setting",
    "get",
    "registry",
]
