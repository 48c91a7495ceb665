"""`bbpes bench devices`: the timing runs in this process, and (slow) across layouts."""

from __future__ import annotations

import pytest

from bbpes.bench import run_benchmark
from bbpes.bench.devices import measure

TINY = {"n_cells": 8, "batch": 2, "samples": 4, "n_inputs": 5, "hold": 2.0, "dt": 0.1}


def test_measure_times_both_steps_on_one_device():
    out = measure({**TINY, "seed": 0, "repeat": 1, "es_chunk": 2})
    assert out["devices"] == 1 and out["sharded"] is False
    assert out["es_step_seconds"] > 0 and out["bptt_step_seconds"] > 0
    assert out["es_over_bptt"] == out["es_step_seconds"] / out["bptt_step_seconds"]
    assert out["bptt_peak_bytes_in_use"] is None  # a CPU keeps no allocator statistics
    assert out["bptt_compiled_peak_bytes"] > 0 and out["backend"] == "cpu"


@pytest.mark.slow
def test_split_layout_runs_sharded_in_a_fresh_process():
    out = run_benchmark(
        "devices", {**{k: str(v) for k, v in TINY.items()}, "repeat": "1", "devices": "2"}
    )
    assert out["devices"] == 2 and out["population_sharded"] is True
    assert out["es_speedup"] == pytest.approx(
        out["es_step_seconds_one_device"] / out["es_step_seconds_split"]
    )
