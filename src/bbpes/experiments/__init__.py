"""The experiments: one module per figure or table, each defining `EXPERIMENT` (its
settings, `run` and figures). `bbpes.framework` finds them (`registry`, `get`) and runs
them (`bbpes.framework.runner.run_experiment`); an installed package adds its own
through the entry-point group `bbpes.experiments`.
"""

from ..framework import ConfigError, Experiment, get, registry

__all__ = ["ConfigError", "Experiment", "get", "registry"]
