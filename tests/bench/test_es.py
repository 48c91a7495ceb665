"""`bbpes bench es` on a tiny network: the ratios and rates it derives from given
seconds, the direction of its ratio against a known slower step, and its run without
evosax."""

from __future__ import annotations

import subprocess
import sys
import time

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
TINY_CONFIG = {k: float(v) if k == "hold" else int(v) for k, v in TINY.items()}
TINY_PAPER = {"n_cells": 6, "batch": 2, "samples": 6, "n_inputs": 5, "hold": 2.0}


def test_ratios_and_rates_come_from_the_measured_seconds(fake_timer):
    seconds = {"es": 2.0, "es_with_center": 2.2, "evosax_open_es": 4.0, "bptt": 11.0}
    timer = fake_timer(seconds)
    out = bench_es.run(bench_es.BENCHMARK.defaults | TINY_CONFIG, timer=timer)
    assert timer.asked == [(list(seconds), 1)]  # all four steps timed together, once
    assert out["es_step_seconds"] == out["es_step_seconds_median"] == 2.0
    assert out["evosax_over_ours"] == 2.0  # evosax took twice as long: ours is faster
    assert out["evosax_over_ours_with_center"] == pytest.approx(4.0 / 2.2)
    assert out["center_cost"] == pytest.approx(0.1)  # the centre added a tenth
    assert out["bptt_over_es"] == pytest.approx(5.0)  # against the step ES trains with
    # 4 members x 2 trials x 8 cells x 5 inputs x 20 steps of 0.1 ms, in 2 s
    assert out["es_neuron_steps_per_s"] == 4 * 2 * 8 * 100 / 2.0
    assert out["target_es_no_slower_than_evosax"] is True
    assert not any(name.startswith("paper_") for name in out)


def test_a_slower_evosax_gives_a_ratio_above_one(monkeypatch):
    """The real timer against a stand-in for evosax's generation known to be slower:
    it sleeps 50 ms, far longer than the tiny ES step."""

    def sleeping_generation(*args, **kwargs):
        return lambda: time.sleep(0.05)

    monkeypatch.setattr(bench_es, "evosax_step", sleeping_generation)
    out = run_benchmark("es", TINY)
    assert out["evosax_open_es_step_seconds"] >= 0.05
    assert out["evosax_over_ours"] > 1 and out["target_es_no_slower_than_evosax"] is True


def test_the_paper_sizes_are_measured_in_the_same_command(monkeypatch, fake_timer):
    monkeypatch.setattr(bench_es, "PAPER_SIZES", TINY_PAPER)
    quick = {"es": 1.0, "es_with_center": 1.1, "evosax_open_es": 3.0, "bptt": 4.0}
    paper = {"es": 2.0, "es_with_center": 2.1, "evosax_open_es": 1.0}  # slower here
    timer = fake_timer(quick, paper)
    config = bench_es.BENCHMARK.defaults | TINY_CONFIG | {"paper": True, "paper_repeat": 2}
    out = bench_es.run(config, timer=timer)
    assert timer.asked == [(list(quick), 1), (list(paper), 2)]  # no BPTT at paper sizes
    assert (out["evosax_over_ours"], out["paper_evosax_over_ours"]) == (3.0, 0.5)
    assert out["target_es_no_slower_than_evosax"] is False  # slower at one of the sizes
    # 6 members x 2 trials x 6 cells x 5 inputs x 20 steps of 0.1 ms, in 2 s
    assert out["paper_es_neuron_steps_per_s"] == 6 * 2 * 6 * 5 * 20 / 2.0
    assert "paper_bptt_step_seconds" not in out and "paper_bptt_over_es" not in out


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
