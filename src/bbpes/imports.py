"""Objects named by reference (`package.module:attribute`), and the entry points of
installed packages, loaded with one-line errors: how a user's own signal, problem,
cell or experiment reaches bbpes without editing it."""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from collections.abc import Callable
from typing import Any

from .errors import ConfigError


def is_reference(text: str) -> bool:
    """Whether `text` has the shape `package.module:attribute`."""
    module, sep, attribute = text.partition(":")
    return bool(sep and module and attribute) and all(
        part.isidentifier() for part in (*module.split("."), *attribute.split("."))
    )


def load_reference(reference: str, what: str) -> Any:
    """The object `reference` (`package.module:attribute`, the attribute possibly
    dotted) names; a `ConfigError` in one line (naming `what` it should be) when the
    reference is malformed, the module does not import or lacks the attribute."""
    if not is_reference(reference):
        raise ConfigError(
            f"{what} {reference!r} is not a reference of the form package.module:attribute"
        )
    module_name, _, attribute = reference.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"{what} {reference!r}: cannot import {module_name!r} ({error})"
        ) from None
    except Exception as error:  # the user's module failed while importing
        first = str(error).strip().splitlines()[:1]
        raise ConfigError(
            f"{what} {reference!r}: importing {module_name!r} failed: "
            f"{type(error).__name__}: {first[0] if first else ''}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ConfigError(f"{what} {reference!r}: {module_name!r} has no {attribute!r}")
        value = getattr(value, part)
    return value


def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of `group` (one place, so that tests can stand in)."""
    return list(importlib.metadata.entry_points(group=group))


def entry_point_objects(group: str, accept: Callable[[Any], bool], what: str) -> dict[str, Any]:
    """The objects of the installed entry points of `group`, by entry-point name, those
    that `accept` takes; one that fails to load or is refused is skipped with a warning
    (a broken plugin does not take every command down with it)."""
    found = {}
    for entry in entry_points(group):
        try:
            value = entry.load()
        except Exception as error:  # a plugin's import error is the plugin's
            warnings.warn(f"bbpes: skipping {what} plugin {entry.value!r}: {error!r}", stacklevel=2)
            continue
        if not accept(value):
            warnings.warn(
                f"bbpes: skipping {what} plugin {entry.value!r}: not a {what}", stacklevel=2
            )
            continue
        found[entry.name] = value
    return found
