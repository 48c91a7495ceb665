"""`bbpes bench es` on a tiny network: all three steps run and the ratios are theirs."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from bbpes.bench import es as bench_es
from bbpes.bench import run_benchmark
from bbpes.bench.es import evosax_step, learner_step
from bbpes.estimators import es
from bbpes.learners import GradientLearner

TINY = {"n_cells": "8", "batch": "2", "samples": "4", "n_inputs": "5", "hold": "2", "repeat": "1"}
TINY_PAPER = {"n_cells": 6, "batch": 2, "samples": 6, "n_inputs": 5, "hold": 2.0}


def test_es_benchmark_reports_consistent_ratios():
    out = run_benchmark("es", TINY)
    assert out["evosax_over_ours"] == pytest.approx(
        out["evosax_open_es_step_seconds"] / out["es_step_seconds"]
    )
    assert out["evosax_over_ours_with_center"] == pytest.approx(
        out["evosax_open_es_step_seconds"] / out["es_with_center_step_seconds"]
    )
    assert out["center_cost"] == pytest.approx(
        out["es_with_center_step_seconds"] / out["es_step_seconds"] - 1
    )
    with_center = out["es_with_center_step_seconds"]
    assert out["bptt_over_es"] == pytest.approx(out["bptt_step_seconds"] / with_center)
    assert out["target_es_no_slower_than_evosax"] == (out["evosax_over_ours"] >= 1)
    assert not any(name.startswith("paper_") for name in out)


def test_the_paper_sizes_are_measured_in_the_same_command(monkeypatch):
    monkeypatch.setattr(bench_es, "PAPER_SIZES", TINY_PAPER)
    out = run_benchmark("es", {**TINY, "paper": "true"})
    assert out["paper_evosax_over_ours"] == pytest.approx(
        out["paper_evosax_open_es_step_seconds"] / out["paper_es_step_seconds"]
    )
    ratios = (out["evosax_over_ours"], out["paper_evosax_over_ours"])
    assert out["target_es_no_slower_than_evosax"] == (min(ratios) >= 1)
    # 6 members x 2 trials x 6 cells x 5 inputs x 20 steps of 0.1 ms, in a step's time
    steps = TINY_PAPER["samples"] * 2 * 6 * 5 * 20
    assert out["paper_es_neuron_steps_per_s"] == pytest.approx(steps / out["paper_es_step_seconds"])
    assert "paper_bptt_step_seconds" not in out


def test_without_evosax_the_benchmark_reports_ours_only(monkeypatch):
    monkeypatch.setitem(sys.modules, "evosax", None)  # `import evosax` now fails
    assert not bench_es.evosax_available()
    out = run_benchmark("es", TINY)
    assert "evosax" in out["note"] and out["es_step_seconds"] > 0 and out["bptt_over_es"] > 0
    assert out["es_with_center_step_seconds"] > 0
    assert not any("evosax_" in name or name.startswith("target") for name in out)


def test_every_benchmark_module_imports_without_evosax():
    code = (
        "import sys; sys.modules['evosax'] = None\n"
        "from bbpes.bench import registry\n"
        "print(sorted(registry()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "'es'" in result.stdout and "'sim'" in result.stdout


def test_both_es_steps_descend_the_same_loss():
    """The two timed steps do the same job: on a quadratic, one step of each from the
    same point lowers the loss."""

    def loss(p):
        return jax.numpy.sum((p["x"] - 1.0) ** 2)

    start = {"x": jax.numpy.zeros(6)}
    ours = learner_step(GradientLearner(es(loss, 0.1, 50), optax.sgd(0.1)), start)()
    theirs = evosax_step(loss, start, samples=50, sigma=0.1, lr=0.1)()
    assert float(loss(ours[0].params)) < float(loss(start))
    assert float(loss({"x": theirs.mean})) < float(loss(start))
    assert np.all(np.isfinite(theirs.mean))
