"""Experiments: one module per figure or table, registered by name.

An experiment is a plain function `run(config, run_dir) -> metrics` plus its settings.
Every setting has a default whose type fixes how `--set KEY=VALUE` is parsed; `quick`
holds the overrides of `--quick`; `choices` lists allowed values; `resolve` fills in
settings left to depend on others (a preset per model, say), so that `config.json`
records the values used; `check` rejects bad combinations. Nothing is written before
the whole configuration is valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..runs import RunDir


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    run: Callable[[dict[str, Any], RunDir], dict[str, Any]]
    defaults: Mapping[str, Any]
    quick: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None
    resolve: Callable[[dict[str, Any]], None] | None = None  # fills settings in place
    help: Mapping[str, str] = field(default_factory=dict)  # one line per setting

    def config(
        self,
        overrides: Mapping[str, str | Any] | None = None,
        *,
        quick: bool = False,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """The resolved configuration: defaults, then `quick`, then `overrides` (strings
        are parsed by the type of the default), then `seed`, then `resolve`. Raises
        `ConfigError`."""
        config = dict(self.defaults)
        config.setdefault("seed", 0)
        if quick:
            config.update(self.quick)
        config["quick"] = quick
        for key, raw in (overrides or {}).items():
            if key not in config or key == "quick":
                known = ", ".join(sorted(k for k in config if k != "quick"))
                raise ConfigError(f"unknown setting '{key}' for {self.name} (known: {known})")
            config[key] = parse_value(key, raw, self.defaults.get(key, config[key]))
        if seed is not None:
            config["seed"] = int(seed)
        for key, allowed in self.choices.items():
            values = config[key] if isinstance(config[key], (list, tuple)) else [config[key]]
            for value in values:
                if value not in allowed:
                    raise ConfigError(
                        f"bad value {value!r} for '{key}' (choose from {', '.join(map(str, allowed))})"
                    )
        if self.resolve is not None:
            self.resolve(config)
        if self.check is not None:
            self.check(config)
        return config


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(key: str, raw: Any, default: Any) -> Any:
    """Parse the string `raw` to the type of `default` (bool, int, float, str, list)."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        if isinstance(default, bool):
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            value = float(text)
            if value != value:
                raise ValueError
            return value
        if isinstance(default, (list, tuple)):
            items = [t.strip() for t in text.split(",") if t.strip()]
            kind = type(default[0]) if default else str
            return [parse_value(key, t, kind()) if kind is not str else t for t in items]
        if default is None:  # a JSON literal (number, bool, null, list, object), else the text
            literal = text[:1] in "-0123456789[{" or text in ("null", "true", "false")
            return json.loads(text) if literal else text
        return text
    except (ValueError, json.JSONDecodeError):
        kind = type(default).__name__ if default is not None else "value"
        raise ConfigError(f"bad value {raw!r} for '{key}' (expected {kind})") from None


def require(condition: bool, message: str) -> None:
    """For `Experiment.check`: raise a `ConfigError` with `message` unless `condition`."""
    if not condition:
        raise ConfigError(message)


def require_mirrored_samples(config: Mapping[str, Any], key: str = "samples") -> None:
    """The ES sample count `config[key]`: mirrored pairs, so even and at least 2."""
    require(config[key] >= 2 and config[key] % 2 == 0, f"{key} must be even and >= 2")


def methods_of(config: Mapping[str, Any], key: str = "methods") -> list[str]:
    value = config[key]
    return list(value) if isinstance(value, (list, tuple)) else [value]
