"""`Experiment`: a registered experiment, its settings declared once.

An experiment is a plain function `run(config, run_dir) -> metrics` plus its settings:
a tuple of `bbpes.settings.Setting`, each with its default, `--quick` value, range,
choices, unit and help. Parsing `--set KEY=VALUE`, range and choice checks, `bbpes
show` and the error messages all come from those declarations; `resolve` fills in
settings left to depend on others (a preset per model, say), so that `config.json`
records the values used; `check` rejects bad combinations of several settings. Nothing
is written before the whole configuration is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..settings import MAX_INT32, Setting, by_name, defaults_of, parse_value, quick_of

MAX_SEED = MAX_INT32
"""The largest seed: `jax.random.key` keeps 32 bits of a seed, and seeds are combined
with run and step numbers."""

SEED = Setting("seed", 0, "random seed", low=0, high=MAX_SEED)
"""The setting every experiment has."""


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    - `name`, `summary` (one line, `bbpes list`), `run(config, run_dir) -> metrics`.
    - `settings`: its `Setting`s (a name declared twice keeps the later declaration:
      an experiment's own default of a shared one); `seed` is added when absent.
    - `resolve(config)`: fills settings left None in place; `check(config)`: a
      `ConfigError` for a bad combination of settings.
    """

    name: str
    summary: str
    run: Callable[[dict[str, Any], Any], dict[str, Any]]
    settings: tuple[Setting, ...] = ()
    check: Callable[[dict[str, Any]], None] | None = None
    resolve: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        table = by_name(self.settings)
        table.setdefault("seed", SEED)
        object.__setattr__(self, "settings", tuple(table.values()))

    @property
    def table(self) -> dict[str, Setting]:
        """`{name: setting}`."""
        return by_name(self.settings)

    @property
    def defaults(self) -> dict[str, Any]:
        return defaults_of(self.settings)

    @property
    def quick(self) -> dict[str, Any]:
        """The values `--quick` changes."""
        return quick_of(self.settings)

    @property
    def help(self) -> dict[str, str]:
        """One line per setting: `Setting.describe`."""
        return {s.name: s.describe() for s in self.settings}

    def setting(self, key: str) -> Setting:
        """The declaration of `key`; a one-line `ConfigError` naming the known ones."""
        table = self.table
        if key not in table:
            known = ", ".join(sorted(table))
            raise ConfigError(f"unknown setting '{key}' for {self.name} (known: {known})")
        return table[key]

    def config(
        self,
        overrides: Mapping[str, str | Any] | None = None,
        *,
        quick: bool = False,
        seed: int | None = None,
        checked: bool = True,
    ) -> dict[str, Any]:
        """The resolved configuration: defaults, then `quick`, then `overrides` (strings
        are parsed by the setting's type), then `seed`, each value checked against its
        declaration; then `resolve`, then `check` (skipped with `checked=False`: what
        `bbpes show` prints where this machine could not run it). Raises `ConfigError`."""
        table = self.table
        config = self.defaults
        if quick:
            config.update(self.quick)
        for key, raw in (overrides or {}).items():
            config[key] = self.setting(key).parse(raw)
        if seed is not None:
            config["seed"] = SEED.parse(parse_value("seed", seed, 0))
        unresolved = [key for key, value in config.items() if value is None]
        for key, value in config.items():
            table[key].check(value)
        config["quick"] = quick
        if self.resolve is not None:
            self.resolve(config)
        for key in unresolved:
            table[key].check(config[key])
        if self.check is not None and checked:
            self.check(config)
        return config
