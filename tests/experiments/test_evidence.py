"""`bbpes run evidence` end to end with tiny settings."""

from __future__ import annotations

import json

import pytest

from bbpes.cli import main

TINY = {
    "n_cells": 6,
    "batch": 4,
    "samples": 4,
    "steps": 2,
    "seeds": 2,
    "n_inputs": 4,
    "hold": 2,
    "window": 2,
    "test_trials": 16,
    "eval_every": 1,
    "pca_trials": 6,
    "rate_trials": 4,
}


def settings(**extra) -> list[str]:
    return [arg for k, v in {**TINY, **extra}.items() for arg in ("--set", f"{k}={v}")]


def test_evidence_trains_es_and_bptt_side_by_side(tmp_path):
    out = tmp_path / "evidence"
    assert main(["run", "evidence", "--quick", "--out", str(out), *settings()]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for method in ("es", "bptt"):
        assert 0.0 <= metrics[f"test_accuracy_{method}"] <= 1.0
        assert f"iterations_to_90_{method}" in metrics
        assert metrics[f"seconds_per_iteration_{method}"] > 0
        assert metrics[f"predicted_bytes_{method}"] > 0
        assert metrics[f"spike_rate_hz_{method}"] >= 0
    assert metrics["neuron_steps_per_second"] > 0
    assert metrics["trial_ms"] == 8.0 and metrics["neuron"] == "morris_lecar"
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {r["label"] for r in history} == {"es-seed0", "es-seed1", "bptt-seed0", "bptt-seed1"}
    assert {p.name for p in out.glob("*.png")} == {"accuracy.png", "pca.png"}


def test_a_method_that_would_not_fit_is_reported_with_its_need(tmp_path):
    out = tmp_path / "evidence"
    argv = settings(method="bptt", memory_limit_gb=1e-9, case="C", hold=0)
    assert main(["run", "evidence", "--out", str(out), *argv]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "needs" in metrics["skipped_bptt"]
    assert metrics["predicted_bytes_bptt"] > 1e6
    assert "test_accuracy_bptt" not in metrics


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"case": "D"}, "bad value 'D' for 'case'"),
        ({"method": "es,magic"}, "bad value 'magic'"),
        ({"samples": 5}, "samples must be even"),
        ({"hold": 0.25}, "whole number of steps"),
        ({"neuron": "squid"}, "unknown neuron"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["run", "evidence", "--out", str(out), *settings(**extra)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
