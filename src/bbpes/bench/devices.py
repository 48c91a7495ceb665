"""`bbpes bench devices`: one ES step and one BPTT step on the evidence network with
the CPU left whole (one JAX device) and split into one device per core (the ES
population sharded over them, as `bbpes run` does by default).

JAX fixes its device count when it starts, so each layout is timed in a fresh
process (`python -m bbpes.bench.devices CONFIG`), one after the other in this command.
Ratios above 1 mean the split CPU is faster.

`python -m bbpes.bench.devices CONFIG_JSON [OUT_FILE]` times the layout it starts with
(the device check `benchmarks/gpu.sh` uses it on one GPU) and also reports BPTT's peak
memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from . import Benchmark
from .network import PAPER_SIZES, QUICK_SIZES
from .timing import Timer, load_average, time_call, time_interleaved

_FLAG = "--xla_force_host_platform_device_count"


def measure(config: dict[str, Any], *, timer: Timer = time_interleaved) -> dict[str, Any]:
    """Seconds of one BPTT step and one ES step (population sharded when there are
    several devices; `es_chunk` samples at once, 0: all), in this process, each timed
    by `timer` in turn.

    BPTT runs first, so the accelerator's peak memory read right after it
    (`bptt_peak_bytes_in_use`, from `jax.Device.memory_stats()`; None on a CPU) is
    BPTT's; `bptt_compiled_peak_bytes` is XLA's buffer assignment of its gradient
    (`bbpes.memory.compiled_peak_bytes`), on any device."""
    import jax
    import optax

    from ..devices import describe, peak_bytes_in_use
    from ..estimators import bptt, es
    from ..learners import GradientLearner
    from ..memory import compiled_peak_bytes
    from ..parallel import population_mesh_for
    from .es import learner_step
    from .network import evidence_config, problem

    ev = evidence_config(config)
    with jax.enable_x64(False):
        task, network, weights, tokens, labels, _ = problem(config)
        loss = partial(task.loss, network)
        adam = optax.adam(ev["lr_es"])
        gradient = bptt(loss)
        bptt_time = time_call(
            learner_step(GradientLearner(gradient, adam), weights, tokens, labels),
            config["repeat"],
            timer=timer,
        )
        bptt_peak = peak_bytes_in_use()
        bptt_compiled = compiled_peak_bytes(gradient, weights, jax.random.key(0), tokens, labels)
        mesh = population_mesh_for(config["samples"])
        chunk = config["es_chunk"] or None
        signal = es(loss, ev["sigma"], config["samples"], chunk_size=chunk, mesh=mesh)
        es_time = time_call(
            learner_step(GradientLearner(signal, adam), weights, tokens, labels),
            config["repeat"],
            timer=timer,
        )
    return {
        **describe(),
        "devices": jax.device_count(),
        "sharded": mesh is not None,
        "es_step_seconds": es_time.best,
        "bptt_step_seconds": bptt_time.best,
        "es_over_bptt": es_time.best / bptt_time.best,
        "es_first_call_seconds": es_time.first,
        "bptt_first_call_seconds": bptt_time.first,
        "bptt_peak_bytes_in_use": bptt_peak,
        "bptt_compiled_peak_bytes": bptt_compiled,
    }


def in_fresh_process(config: dict[str, Any], devices: int) -> dict[str, Any]:
    """`measure(config)` in a new Python whose CPU is split into `devices` devices."""
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if _FLAG not in f)
    env = {**os.environ, "XLA_FLAGS": f"{flags} {_FLAG}={devices}".strip()}
    result = subprocess.run(
        [sys.executable, "-m", __name__, json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"timing with {devices} device(s) failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(
    config: dict[str, Any],
    *,
    measure_with: Callable[[dict[str, Any], int], dict[str, Any]] = in_fresh_process,
) -> dict[str, Any]:
    """Both layouts measured by `measure_with(config, devices)` (a fresh process each),
    one device first; `devices` 0 splits the CPU into one device per core."""
    split = config["devices"] or os.cpu_count() or 1
    whole = measure_with(config, 1)
    parts = measure_with(config, split)
    return {
        "load_average": load_average(),
        "devices": parts["devices"],
        "population_sharded": parts["sharded"],
        "es_step_seconds_one_device": whole["es_step_seconds"],
        "es_step_seconds_split": parts["es_step_seconds"],
        "bptt_step_seconds_one_device": whole["bptt_step_seconds"],
        "bptt_step_seconds_split": parts["bptt_step_seconds"],
        "es_speedup": whole["es_step_seconds"] / parts["es_step_seconds"],
        "bptt_speedup": whole["bptt_step_seconds"] / parts["bptt_step_seconds"],
    }


BENCHMARK = Benchmark(
    name="devices",
    summary="ES and BPTT steps with the CPU as one JAX device vs one device per core",
    run=run,
    defaults={**PAPER_SIZES, "dt": 0.1, "seed": 0, "repeat": 3, "es_chunk": 10, "devices": 0},
    quick={**QUICK_SIZES, "n_cells": 32},
)

if __name__ == "__main__":  # python -m bbpes.bench.devices CONFIG_JSON [OUT_FILE]
    measured = measure(json.loads(sys.argv[1]))
    if len(sys.argv) > 2:
        from ..runs import atomic_write_json

        atomic_write_json(Path(sys.argv[2]), {"config": json.loads(sys.argv[1]), **measured})
    print(json.dumps(measured))
