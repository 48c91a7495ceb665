"""`bbpes bench devices`: the step timings of one process from given seconds, the two
layouts' ratios from hand-made measurements, and (slow) a real run across layouts."""

from __future__ import annotations

import os

import pytest

from bbpes.bench import devices as bench_devices
from bbpes.bench import run_benchmark

TINY = {"n_cells": 8, "batch": 2, "samples": 4, "n_inputs": 5, "hold": 2.0, "dt": 0.1}


def test_measure_times_bptt_then_es_on_one_device(fake_timer):
    timer = fake_timer({"call": 2.0}, {"call": 6.0})  # BPTT is timed first, then ES
    out = bench_devices.measure({**TINY, "seed": 0, "repeat": 2, "es_chunk": 2}, timer=timer)
    assert timer.asked == [(["call"], 2), (["call"], 2)]
    assert (out["bptt_step_seconds"], out["es_step_seconds"]) == (2.0, 6.0)
    assert (out["bptt_first_call_seconds"], out["es_first_call_seconds"]) == (20.0, 60.0)
    assert out["es_over_bptt"] == 3.0  # ES took three times as long
    assert out["devices"] == 1 and out["sharded"] is False  # one device: nothing to shard
    assert out["bptt_peak_bytes_in_use"] is None  # a CPU keeps no allocator statistics
    assert out["bptt_compiled_peak_bytes"] > 0 and out["backend"] == "cpu"


def test_the_speedups_are_one_device_over_the_split_layout(monkeypatch):
    measured = {
        1: {"devices": 1, "sharded": False, "es_step_seconds": 4.0, "bptt_step_seconds": 1.0},
        6: {"devices": 6, "sharded": True, "es_step_seconds": 1.0, "bptt_step_seconds": 2.0},
        3: {"devices": 3, "sharded": True, "es_step_seconds": 2.0, "bptt_step_seconds": 1.0},
    }
    asked = []

    def measure_with(config, devices):
        asked.append(devices)
        return measured[devices]

    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    out = bench_devices.run({**TINY, "devices": 0}, measure_with=measure_with)
    assert asked == [1, 6]  # devices=0: one device per core
    assert out["es_speedup"] == 4.0 and out["bptt_speedup"] == 0.5  # split: ES faster
    assert out["es_step_seconds_one_device"] == 4.0 and out["es_step_seconds_split"] == 1.0
    assert out["devices"] == 6 and out["population_sharded"] is True
    out = bench_devices.run({**TINY, "devices": 3}, measure_with=measure_with)
    assert asked[2:] == [1, 3] and out["es_speedup"] == 2.0 and out["bptt_speedup"] == 1.0


@pytest.mark.slow
def test_split_layout_runs_sharded_in_a_fresh_process():
    out = run_benchmark(
        "devices", {**{k: str(v) for k, v in TINY.items()}, "repeat": "1", "devices": "2"}
    )
    assert out["devices"] == 2 and out["population_sharded"] is True
    assert out["es_step_seconds_one_device"] > 0 and out["es_step_seconds_split"] > 0
