"""`bbpes bench memory` on a tiny network: ES memory is flat in trial length, BPTT's
grows with it."""

from __future__ import annotations

from bbpes.bench import run_benchmark


def test_es_memory_is_flat_and_bptt_grows():
    out = run_benchmark(
        "memory",
        {
            "lengths_ms": "50,200",
            "method": "es,bptt",
            "n_cells": "8",
            "batch": "2",
            "samples": "4",
            "n_inputs": "5",
        },
    )
    assert out["peak_bytes_es_50ms"] == out["peak_bytes_es_200ms"]
    assert out["growth_es"] == 1.0 and out["target_es_flat"]
    assert out["growth_bptt"] > 2.0  # 4x the steps
