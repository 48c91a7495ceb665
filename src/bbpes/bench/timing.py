"""Wall-clock timing of compiled JAX work, as the benchmarks report it."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def time_call(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1) -> dict[str, float]:
    """Seconds per call of `fn()` (blocked until its results are ready): `warmup` calls
    first (compilation), then `repeat` timed ones. Returns `best`, `median` and
    `first` (the first warm-up call, compilation included)."""
    t0 = time.perf_counter()
    for _ in range(max(warmup, 0)):
        jax.block_until_ready(fn())
    first = time.perf_counter() - t0 if warmup else float("nan")
    times = []
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return {"best": min(times), "median": statistics.median(times), "first": first}


def load_average() -> float:
    """The 1-minute load average when the measurement ran (machines are shared)."""
    return os.getloadavg()[0]
