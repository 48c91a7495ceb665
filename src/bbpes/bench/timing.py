"""Wall-clock timing of compiled JAX work, as the benchmarks report it.

Every benchmark times its calls with `time_interleaved` (or `time_call`, one call), and
takes it as a `timer` keyword, so that a test can hand it known seconds; the clocks
are keywords too (`clock`: wall seconds, `cpu_clock`: CPU seconds of this process).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jax

Clock = Callable[[], float]
"""A reading in seconds (`time.perf_counter`, `time.process_time`)."""


@dataclass(frozen=True)
class Timing:
    """Seconds of one zero-argument call: `first` (the warm-up call, compilation
    included), `wall` and `cpu` (each timed call's wall and CPU seconds), and `result`
    (what the warm-up call returned)."""

    first: float
    wall: tuple[float, ...]
    cpu: tuple[float, ...]
    result: Any = None

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.wall)

    @property
    def cpu_best(self) -> float:
        return min(self.cpu)

    @property
    def cpu_mean(self) -> float:
        return statistics.fmean(self.cpu)


class Timer(Protocol):
    """What the benchmarks time with: `time_interleaved` or a stand-in."""

    def __call__(
        self, calls: Mapping[str, Callable[[], Any]], repeat: int
    ) -> dict[str, Timing]: ...


def time_interleaved(
    calls: Mapping[str, Callable[[], Any]],
    repeat: int,
    *,
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
) -> dict[str, Timing]:
    """Seconds per call of each `calls[name]()` (blocked until its results are ready):
    one warm-up call each (compilation), then `repeat` (at least 1) rounds that call
    every one in turn, so that a change of the machine's load falls on all alike."""
    first, results = {}, {}
    for name, call in calls.items():
        t0 = clock()
        results[name] = jax.block_until_ready(call())
        first[name] = clock() - t0
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(repeat, 1)):
        for name, call in calls.items():
            c0, t0 = cpu_clock(), clock()
            jax.block_until_ready(call())
            wall[name].append(clock() - t0)
            cpu[name].append(cpu_clock() - c0)
    return {
        name: Timing(first[name], tuple(wall[name]), tuple(cpu[name]), results[name])
        for name in calls
    }


def time_call(fn: Callable[[], Any], repeat: int = 3, *, timer: Timer = time_interleaved) -> Timing:
    """`timer` of the one call `fn()`: a warm-up call, then `repeat` timed ones."""
    return timer({"call": fn}, repeat)["call"]


def load_average() -> float:
    """The 1-minute load average when the measurement ran (machines are shared)."""
    return os.getloadavg()[0]
