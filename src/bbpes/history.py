"""Reading training histories (the records `bbpes.train.train` returns): the last
value, the first step to reach a level, the time per step."""

from __future__ import annotations

import math

__all__ = ["first_at_least", "last", "nonfinite_steps", "seconds_per_iteration", "steps_per_second"]


def last(history: list[dict], key: str = "accuracy") -> float:
    """The last non-None `key` in `history` (NaN if there is none)."""
    values = [r[key] for r in history if r.get(key) is not None]
    return float(values[-1]) if values else float("nan")


def first_at_least(history: list[dict], threshold: float, key: str = "accuracy") -> int | None:
    """The first step whose `key` is >= `threshold` (None if none is)."""
    for record in history:
        if record.get(key) is not None and record[key] >= threshold:
            return int(record["step"])
    return None


def seconds_per_iteration(history: list[dict]) -> float | None:
    """Mean wall time of a step after the first (which includes compilation); None with
    fewer than two timed steps."""
    timed = [r for r in history if "seconds" in r]
    if len(timed) < 2 or timed[-1]["step"] == timed[0]["step"]:
        return None
    return (timed[-1]["seconds"] - timed[0]["seconds"]) / (timed[-1]["step"] - timed[0]["step"])


def steps_per_second(history: list[dict]) -> float:
    """1 / `seconds_per_iteration` (NaN where that is undefined or not positive)."""
    seconds = seconds_per_iteration(history)
    return 1.0 / seconds if seconds and seconds > 0 else math.nan


def nonfinite_steps(history: list[dict]) -> int:
    """How many steps the training loop rejected as non-finite."""
    return sum(bool(r.get("nonfinite")) for r in history)
