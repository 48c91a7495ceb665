"""Error types shared by every layer (tasks, experiments, the command line)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user mistake in the configuration or the input: reported in one line, exit code 2."""
