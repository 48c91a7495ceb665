"""`bbpes run memory` end to end with tiny settings."""

from __future__ import annotations

import json

from bbpes.cli import main


def test_memory_is_flat_for_es_and_grows_for_bptt(tmp_path):
    out = tmp_path / "memory"
    argv = [
        *("--set", "lengths_ms=8,80", "--set", "n_inputs=4", "--set", "window=2"),
        *("--set", "n_cells=4", "--set", "batch=2", "--set", "samples=4"),
        *("--set", "method=es,bptt,bptt_checkpointed"),
    ]
    assert main(["run", "memory", "--quick", "--out", str(out), *argv]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["growth_es"] < 1.05
    assert metrics["growth_bptt"] > 5
    # ES keeps nothing of the cells per step: 720 more steps add less than one float32
    # per cell and trial (4 x 2) per step
    added = metrics["peak_bytes_es_80ms"] - metrics["peak_bytes_es_8ms"]
    assert added < 720 * 4 * (4 * 2)
    # checkpointing: about sqrt(10) = 3.2 for 10x the steps, well below BPTT's growth
    assert 1.5 < metrics["growth_bptt_checkpointed"] < 0.6 * metrics["growth_bptt"]
    assert metrics["peak_bytes_bptt_checkpointed_80ms"] < metrics["peak_bytes_bptt_80ms"]
    assert (out / "memory.png").exists()


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    for extra in ("method=bptt_surrogate", "lengths_ms=8,4", "n_inputs=0", "lengths_ms=1e12"):
        out = tmp_path / "bad"
        assert main(["run", "memory", "--out", str(out), "--set", extra]) == 2, extra
        assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()
