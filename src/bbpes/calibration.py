"""A wall budget as step counts, measured one way for every caller (the study's grid,
`bbpes.study.grid.calibrate_together`, and `nne-vs-es`).

Each learner's iteration of the training loop (`bbpes.train.loop_body`: the batch, the
compiled step, its metrics) is timed in interleaved rounds, every learner once a round
(a burst of back-to-back steps lasting at least `MIN_ROUND_SECONDS`, one step where a
step is longer), so that a change of the machine's load during the calibration falls
on all of them alike; each learner's seconds per step is the fastest of its rounds
(the least disturbed by other load on a shared machine). A budget of B seconds is then
`budget_steps(B, step_seconds)` steps, so that a run is deterministic and exactly
resumable, and every learner gets the same seconds on this machine at this load.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from .train import CompiledStep, loop_body

Call = tuple[CompiledStep, Callable[[int], Any], Callable[[], Any] | None]
"""`(compiled, step(r), forward() or None)`: what `interleaved_calibration` times of one
learner."""


def block(tree: Any) -> Any:
    """`tree` once every array in it is computed."""
    return jax.tree.map(
        lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree
    )


def loop_step(
    compiled: CompiledStep, params: Any, key: jax.Array, batch: Callable[[int], Any] | None
) -> Callable[[int], Any]:
    """`r -> ` iteration `r` of the training loop (`loop_body`) with the executable
    `compiled`, from the state `compiled.learner.init(params)`: the step as `train`
    runs it, the data `batch(r)` and the metrics' transfer included."""
    state = compiled.learner.init(params)
    return lambda r: loop_body(compiled, state, key, r, batch)


MIN_ROUND_SECONDS = 0.1
"""The shortest burst a round times of one learner, seconds. A single cheap step
timed right after another learner's step ran slower than the same step in a training
loop (`nne-vs-es --quick`, 2-core CPU: NNE's 10-15 ms after ES's 200 ms step, 9.4 ms a
step in training), the other step having taken the caches; a burst of back-to-back
steps (about ten of those) is timed as training runs them. A step longer than this is
timed alone."""


def burst_seconds(
    call: Callable[[int], Any], first: int, clock: Callable[[], float], min_seconds: float
) -> tuple[float, int]:
    """`(seconds per call, calls)` of `call(first)`, `call(first + 1)`, ... run back to
    back, each waited for, until `min_seconds` have passed (at least one call)."""
    t0, n = clock(), 0
    while True:
        block(call(first + n))
        n += 1
        elapsed = clock() - t0
        if elapsed >= min_seconds:
            return elapsed / n, n


def interleaved_calibration(
    calls: Mapping[str, Call],
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
    min_seconds: float = MIN_ROUND_SECONDS,
) -> dict[str, dict[str, float | None]]:
    """`calls[name] = (compiled, step(r), forward())`: each called once to warm up, then
    `repeats` rounds that time every name's step and forward in turn, each as a burst
    of back-to-back calls lasting at least `min_seconds` (`burst_seconds`; the steps
    numbered r = 1, 2, ... across the rounds). Returns per name the fastest round's
    `step_seconds` and `forward_seconds` (None where `forward` is None), with the
    `compile_seconds` and `peak_bytes` of `compiled`."""
    for _, step, forward in calls.values():
        block(step(0))
        if forward is not None:
            block(forward())
    steps: dict[str, list[float]] = {name: [] for name in calls}
    forwards: dict[str, list[float]] = {name: [] for name in calls}
    done = dict.fromkeys(calls, 1)  # the next step number of each name
    for _ in range(repeats):
        for name, (_, step, forward) in calls.items():
            seconds, n = burst_seconds(step, done[name], clock, min_seconds)
            steps[name].append(seconds)
            done[name] += n
            if forward is not None:
                seconds, _ = burst_seconds(lambda r, f=forward: f(), 0, clock, min_seconds)
                forwards[name].append(seconds)
    return {
        name: {
            "step_seconds": float(np.min(steps[name])),
            "forward_seconds": float(np.min(forwards[name])) if forwards[name] else None,
            "compile_seconds": compiled.compile_seconds,
            "peak_bytes": compiled.peak_bytes,
        }
        for name, (compiled, _, _) in calls.items()
    }


def budget_steps(budget: float, step_seconds: float) -> int:
    """The steps of `step_seconds` each that fit in `budget` seconds: `floor(budget /
    step_seconds)`, at least 1."""
    return max(1, math.floor(budget / step_seconds))
