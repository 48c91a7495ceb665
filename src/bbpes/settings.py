"""A setting, declared once: `Setting`.

Every setting of an experiment (and every knob of a learning signal) is one `Setting`:
its name, default, help line, unit, range, allowed choices, what 0 means where 0 is
allowed as "chosen from the others", and its `--quick` value. Parsing a `--set` value,
checking it, the line `bbpes show` prints and the one-line error all come from it;
`bbpes.framework.Experiment` reads nothing else about a setting.

The type of a setting is the type of its default (bool, int, float, str, or a list of
one of them); a setting whose default is None (filled in from the others when the run
is resolved) names its type in `kind`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import ConfigError


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""The `quick` of a setting that `--quick` leaves at its default."""

MAX_INT32 = 2**31 - 1
"""The largest count a setting may ask of XLA (loop lengths and solver step budgets are
int32) and the largest seed (`jax.random.key` keeps 32 bits, and seeds are combined
with run and step numbers)."""


@dataclass(frozen=True)
class Setting:
    """One setting, declared once.

    - `name`, `default`, `help` (one line), `unit` ("" for a count or a pure number).
    - The range of a number (of each item of a list of numbers): `low` and `high`
      (inclusive), `positive` (> 0), `even`; `zero`: what 0 means where 0 is allowed
      although the range excludes it ("every test image"), shown in the help and the
      error. A number that may take any value (a current, a potential) says so with
      `any_value=True`: the settings walk refuses a number with no range declared.
    - `choices`: the values allowed (of each item, for a list); any container.
    - `quick`: the value under `--quick` (`UNSET`: the default).
    - `kind`: the type, where `default` is None.
    """

    name: str
    default: Any
    help: str = ""
    unit: str = ""
    low: float | None = None
    high: float | None = None
    positive: bool = False
    even: bool = False
    zero: str = ""
    any_value: bool = False
    choices: Container[Any] | None = None
    quick: Any = UNSET
    kind: type | None = None

    @property
    def prototype(self) -> Any:
        """A value of the setting's type (its default, or `kind()`)."""
        if self.default is None and self.kind is not None:
            return [] if self.kind is list else self.kind()
        return self.default

    @property
    def numeric(self) -> bool:
        """Whether the setting is a number or a list of numbers (bools are not)."""
        value = self.prototype
        item = value[0] if isinstance(value, (list, tuple)) and value else value
        return isinstance(item, (int, float)) and not isinstance(item, bool)

    @property
    def ranged(self) -> bool:
        """Whether the declaration says which numbers are allowed."""
        bounds = (self.low, self.high, self.choices)
        return self.positive or self.any_value or any(b is not None for b in bounds)

    def parse(self, raw: Any) -> Any:
        """`raw` (a `--set` string or a Python value) as a value of this setting's type,
        checked (`check`). Raises `ConfigError`."""
        if raw is None and self.default is None:
            return None
        value = parse_value(self.name, raw, self.prototype)
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """A one-line `ConfigError` when `value` is outside the declared range or
        choices (each item of a list is checked)."""
        if value is None and self.default is None:
            return
        for item in value if isinstance(value, (list, tuple)) else [value]:
            self._check_item(item)

    def _check_item(self, value: Any) -> None:
        name = self.name
        if self.choices is not None and value not in self.choices:
            shown = ", ".join(map(str, self.choices)) if isinstance(self.choices, Iterable) else ""
            raise ConfigError(f"bad value {value!r} for '{name}' (choose from {shown})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if value == 0 and self.zero:
            return
        hint = f" (0: {self.zero})" if self.zero else ""
        if self.positive and not value > 0:
            raise ConfigError(f"{name} must be > 0{hint}, got {value}")
        if self.low is not None and value < self.low:
            raise ConfigError(f"{name} must be >= {self.low:g}{hint}, got {value}")
        if self.high is not None and value > self.high:
            raise ConfigError(f"{name} must be <= {self.high:g}, got {value}")
        if self.even and value % 2:
            raise ConfigError(f"{name} must be even (mirrored pairs), got {value}")

    def allows(self, value: Any) -> bool:
        """Whether `check` accepts `value`."""
        try:
            self.check(value)
        except ConfigError:
            return False
        return True

    def describe(self) -> str:
        """The help line `bbpes show` prints: help, unit, range, what 0 means."""
        text = self.help + (f" [{self.unit}]" if self.unit else "")
        bounds = self.range_text()
        text += f" ({bounds})" if bounds else ""
        return text + (f" (0: {self.zero})" if self.zero else "")

    def range_text(self) -> str:
        """The declared range in words ("> 0", ">= 1", "0..1", "even >= 2"), "" for none."""
        if self.positive and self.high is not None:
            text = f"> 0, <= {self.high:g}"
        elif self.positive:
            text = "> 0"
        elif self.low is not None and self.high is not None:
            text = f"{self.low:g}..{self.high:g}"
        elif self.low is not None:
            text = f">= {self.low:g}"
        elif self.high is not None:
            text = f"<= {self.high:g}"
        else:
            text = ""
        return f"even {text}".strip() if self.even else text


def by_name(settings: Iterable[Setting]) -> dict[str, Setting]:
    """`{name: setting}`; a name declared twice keeps its last declaration (an
    experiment's own value of a signal knob, declared after the knobs)."""
    return {s.name: s for s in settings}


def with_values(setting: Setting, **changes: Any) -> Setting:
    """`setting` with some fields replaced (an experiment's own default of a shared
    declaration, say)."""
    return replace(setting, **changes)


def defaults_of(settings: Iterable[Setting]) -> dict[str, Any]:
    return {s.name: s.default for s in settings}


def quick_of(settings: Iterable[Setting]) -> dict[str, Any]:
    return {s.name: s.quick for s in settings if s.quick is not UNSET}


# -- parsing one value ---------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(key: str, raw: Any, default: Any) -> Any:
    """`raw` as a value of the type of `default` (bool, int, float, str, list): a string
    is parsed (a list from comma-separated items), a number of the right kind is taken
    as it is (an int where a float is expected becomes a float, a whole float where an
    int is expected an int). Floats must be finite. Raises `ConfigError`."""
    kind = type(default).__name__ if default is not None else "value"
    if isinstance(default, (list, tuple)):
        kind = f"comma-separated {type(default[0]).__name__ if default else 'str'}s"
    bad = ConfigError(f"bad value {raw!r} for '{key}' (expected {kind})")
    if not isinstance(raw, str):
        return _coerce(key, raw, default, bad)
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
            return _finite(float(text))
        if isinstance(default, (list, tuple)):
            items = [t.strip() for t in text.split(",") if t.strip()]
            item = default[0] if default else ""
            return [parse_value(key, t, item) for t in items]
        if default is None:  # a JSON literal (number, bool, null, list, object), else the text
            literal = text[:1] in "-0123456789[{" or text in ("null", "true", "false")
            return json.loads(text) if literal else text
        return text
    except (ValueError, json.JSONDecodeError):
        raise bad from None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(value)
    return value


def _coerce(key: str, raw: Any, default: Any, bad: ConfigError) -> Any:
    """A value that is not a string, checked against the type of `default`."""
    if default is None:
        return raw
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        raise bad
    if isinstance(raw, bool):
        raise bad
    if isinstance(default, int):
        if isinstance(raw, int) or (isinstance(raw, float) and _is_whole(raw)):
            return int(raw)
        raise bad
    if isinstance(default, float):
        if isinstance(raw, (int, float)):
            try:
                return _finite(float(raw))
            except ValueError:
                raise bad from None
        raise bad
    if isinstance(default, (list, tuple)):
        if not isinstance(raw, (list, tuple)):
            raw = [raw]
        item = default[0] if default else ""
        return [parse_value(key, x, item) for x in raw]
    if isinstance(default, str):
        if isinstance(raw, os.PathLike):
            return os.fspath(raw)
        if isinstance(raw, str):
            return raw
        raise bad
    if isinstance(default, Mapping):
        if isinstance(raw, Mapping):
            return dict(raw)
        raise bad
    return raw


def _is_whole(value: float) -> bool:
    return math.isfinite(value) and value == int(value)
