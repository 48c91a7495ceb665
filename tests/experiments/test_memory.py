"""`bbpes run memory` end to end with tiny settings."""

from __future__ import annotations

import json

from bbpes.cli import main


def test_memory_is_flat_for_es_and_grows_for_bptt(tmp_path):
    out = tmp_path / "memory"
    argv = [
        *("--set", "lengths_ms=8,80", "--set", "n_inputs=4", "--set", "window=2"),
        *("--set", "n_cells=4", "--set", "batch=2", "--set", "samples=4"),
        *("--set", "method=es,bptt"),
    ]
    assert main(["run", "memory", "--quick", "--out", str(out), *argv]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["growth_es"] < 1.05
    assert metrics["growth_bptt"] > 5
    assert metrics["peak_bytes_es_80ms"] == metrics["peak_bytes_es_8ms"]
    assert (out / "memory.png").exists()
