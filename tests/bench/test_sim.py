"""`bbpes bench sim`: our throughput always; Brian2's only where it is installed (slow)."""

from __future__ import annotations

import pytest

from bbpes.bench import run_benchmark, sim

TINY = {"n_cells": "8", "batch": "2", "samples": "3", "n_inputs": "5", "hold": "2", "repeat": "1"}


def test_without_brian2_only_ours_is_measured(monkeypatch):
    monkeypatch.setattr(sim, "brian2_installed", lambda: False)
    out = run_benchmark("sim", TINY)
    assert out["ours_neuron_steps_per_s"] > 0
    assert out["ours_neuron_steps_per_s"] == pytest.approx(3 * 2 * 8 * 100 / out["ours_seconds"])
    assert "not installed" in out["brian2"] and "ours_over_brian2" not in out


@pytest.mark.slow
def test_brian2_is_measured_when_installed():
    """Needs the brian2 extra (its own virtualenv, numpy < 2.4)."""
    settings = {**TINY, "brian2_copies": "2", "brian2_duration_ms": "10"}
    out = run_benchmark("sim", {**settings, "brian2_targets": "cpp_standalone,cython"})
    for target in ("cpp_standalone", "cython"):
        assert out[f"brian2_{target}"]["neuron_steps_per_s"] > 0, out[f"brian2_{target}"]
    best = out["brian2_neuron_steps_per_s"]
    assert out["ours_over_brian2"] == pytest.approx(out["ours_neuron_steps_per_s"] / best)
