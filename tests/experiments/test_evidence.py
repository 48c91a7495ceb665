"""`bbpes run evidence` end to end with tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.cli import main
from bbpes.experiments import evidence
from bbpes.tasks import evidence_setup

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
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {r["label"] for r in history} == {"es-seed0", "es-seed1", "bptt-seed0", "bptt-seed1"}
    for method in ("es", "bptt"):
        runs = [[r for r in history if r["label"] == f"{method}-seed{k}"] for k in (0, 1)]
        finals = [[r["accuracy"] for r in run if "accuracy" in r][-1] for run in runs]
        # the figures are the seeds' mean and spread of what their trainings recorded
        assert metrics[f"test_accuracy_{method}"] == pytest.approx(np.mean(finals))
        assert metrics[f"test_accuracy_{method}_std"] == pytest.approx(np.std(finals))
        timed = [[r for r in run if "seconds" in r] for run in runs]
        per_step = [
            (t[-1]["seconds"] - t[0]["seconds"]) / (t[-1]["step"] - t[0]["step"]) for t in timed
        ]
        assert metrics[f"seconds_per_iteration_{method}"] == pytest.approx(np.mean(per_step))
        assert 0 <= metrics[f"active_fraction_{method}"] <= 1
    # BPTT keeps the trajectory of the trial's 80 steps; ES (4 samples) keeps none
    assert metrics["predicted_bytes_bptt"] > 2 * metrics["predicted_bytes_es"]
    # an ES iteration: (samples + 1) networks x batch x cells x steps per second of it
    work = (4 + 1) * 4 * 6 * 80
    assert metrics["neuron_steps_per_second"] == pytest.approx(
        work / metrics["seconds_per_iteration_es"]
    )
    assert metrics["trial_ms"] == 8.0 and metrics["neuron"] == "morris_lecar"
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
        ({"neuron": "squid"}, "bad value 'squid' for 'neuron'"),
        ({"method": "bptt_surrogate"}, "does not offer"),
        ({"n_cells": 0}, "n_cells must be >= 1"),
        ({"p_null": 1.0, "p_favoured": 0.0}, "p_null < 1"),
        ({"n_cells": 10**7}, "more than the"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["run", "evidence", "--out", str(out), *settings(**extra)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_optimizer_clips_before_adam_and_decays_the_rate():
    config = {**evidence.EXPERIMENT.defaults, "steps": 10, "lr": 0.1}
    grads = {"w": jnp.array([300.0, -400.0])}  # global norm 500
    params = {"w": jnp.zeros(2)}

    def first_updates(opt, g):
        updates, _ = opt.update(g, opt.init(params), params)
        return np.asarray(updates["w"])

    clipped = evidence_setup.optimizer({**config, "clip": 5.0}, "bptt")
    # Adam's first step is sign-like whatever the scale: read its first moment instead
    state = clipped.init(params)
    _, state = clipped.update(grads, state, params)
    mu = np.asarray(state[1][0].mu["w"])
    np.testing.assert_allclose(mu, 0.1 * np.array([3.0, -4.0]), rtol=1e-6)  # (1 - b1) * clipped
    plain = evidence_setup.optimizer(config, "bptt")
    np.testing.assert_allclose(first_updates(plain, grads), [-0.1, 0.1], rtol=1e-4)
    cosine = evidence_setup.optimizer({**config, "lr_schedule": "cosine"}, "bptt")
    state = cosine.init(params)
    for _ in range(11):  # the 11th update is made at count = steps: the rate is a tenth
        updates, state = cosine.update(grads, state, params)
    assert abs(float(updates["w"][0])) == pytest.approx(0.01, rel=1e-3)


@pytest.mark.parametrize(
    "method, rate, clipped",
    [("bptt", 0.1, True), ("bptt_noclip", 0.1, False), ("es", 0.3, False)],
)
def test_each_signal_gets_its_rate_and_only_the_clipped_ones_the_clip(method, rate, clipped):
    config = {**evidence.EXPERIMENT.defaults, "lr": 0.1, "lr_es": 0.3, "clip": 5.0}
    config["lr_schedule"] = "constant"
    grads = {"w": jnp.array([300.0, -400.0])}
    params = {"w": jnp.zeros(2)}
    opt = evidence_setup.optimizer(config, method)
    updates, state = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(np.abs(np.asarray(updates["w"])), [rate, rate], rtol=1e-4)
    adam = state[1][0] if clipped else state[0]
    expected = np.array([3.0, -4.0]) if clipped else np.array([300.0, -400.0])
    np.testing.assert_allclose(np.asarray(adam.mu["w"]), 0.1 * expected, rtol=1e-6)


def test_cli_splits_the_cpu_and_shards_the_es_population(tmp_path):
    """`bbpes run` splits the CPU into one device per core (here: 2, asked for) and
    evidence shards its ES population over them: the same training to float rounding
    as on one device."""
    argv = ["run", "evidence", *settings(method="es", seeds=1, steps=3)]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # conftest: 1 device
    split = subprocess.run(
        [sys.executable, "-m", "bbpes", *argv, "--out", str(tmp_path / "split")],
        env={**env, "BBPES_CPU_DEVICES": "2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert split.returncode == 0, split.stderr[-2000:]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0  # this process: 1 device

    def losses(name):
        lines = (tmp_path / name / "history.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, lines) if "loss" in r]

    metrics = {
        n: json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("split", "whole")
    }
    assert metrics["split"]["devices"] == "2 cpu" and metrics["whole"]["devices"] == "1 cpu"
    assert len(losses("split")) == 3
    np.testing.assert_allclose(losses("split"), losses("whole"), rtol=1e-4)
