"""`bbpes bench es` on a tiny network: all three steps run and the ratios are theirs."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from bbpes.bench import run_benchmark
from bbpes.bench.es import evosax_step, learner_step
from bbpes.estimators import es
from bbpes.learners import GradientLearner

TINY = {"n_cells": "8", "batch": "2", "samples": "4", "n_inputs": "5", "hold": "2", "repeat": "1"}


def test_es_benchmark_reports_consistent_ratios():
    out = run_benchmark("es", TINY)
    assert out["evosax_over_ours"] == pytest.approx(
        out["evosax_open_es_step_seconds"] / out["es_step_seconds"]
    )
    assert out["bptt_over_es"] == pytest.approx(out["bptt_step_seconds"] / out["es_step_seconds"])
    assert out["target_es_no_slower_than_evosax"] == (out["evosax_over_ours"] >= 1)


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
