from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes import signals
from bbpes.experiments import ConfigError, get
from bbpes.experiments.spiral import METHODS, UNSUPPORTED
from bbpes.framework.runner import run_experiment
from bbpes.learners import Ensemble
from bbpes.tasks.spiral_metrics import (
    iterations_to_target,
    running_median,
    seconds_at,
    split_history,
    summarise,
)
from bbpes.tasks.spiral_runs import make_task, member_learners, stacked_batches, stacked_fields


def test_iterations_to_target_reads_the_first_hit_and_the_sustained_one():
    steps = np.arange(0, 200, 10.0)
    mae = np.full(20, 0.5)
    mae[3] = 0.01  # one lucky evaluation
    mae[7] = np.nan  # a failed solve
    mae[12:] = 0.03  # below target from step 120 on
    curve = {"eval_step": steps, "mae": mae}
    first, sustained = iterations_to_target(curve, 0.04, window=5)
    assert first == 30.0
    assert sustained == 140.0  # the median of 5 is below target once 3 of them are
    assert np.isnan(iterations_to_target(curve, 0.001, window=5)).all()


def test_running_median_counts_failed_solves_as_worst():
    values = np.array([0.1, np.nan, np.nan, 0.1])
    assert running_median(values, 3)[2] == np.inf
    assert running_median(values, 1)[3] == 0.1


def test_seconds_at_leaves_out_the_compiling_first_step():
    curve = {
        "step": np.arange(1.0, 11.0),
        "seconds": np.array([5.0] + [5.0 + k for k in range(1, 10)]),
    }
    # steps 2..10 took 1 s each; the first is counted like them, not as 5 s
    assert seconds_at(curve, 10.0) == pytest.approx(10.0)
    assert np.isnan(seconds_at(curve, float("nan")))
    assert seconds_at(curve, 0.0) == 0.0  # met by the evaluation before training


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("spiral", {"method": "pnde"}),
        ("spiral", {"samples": "7"}),
        ("spiral", {"batch_time": "1000"}),
        ("spiral-scaling", {"samples_list": "10,15"}),
        ("spiral-scaling", {"sigmas": "0.1,-1"}),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(name, overrides):
    with pytest.raises(ConfigError):
        get(name).config(overrides)


def test_every_signal_with_a_loss_form_the_spiral_offers_is_a_method():
    offered = {n for n, s in signals.SIGNALS.items() if s.needs in ("loss", "ode_loss")}
    assert set(METHODS) == (offered | set(signals.EVOSAX_METHODS)) - set(UNSUPPORTED)
    assert {"es", "bptt", "fnde", "finite_difference", "weight_perturbation"} <= set(METHODS)
    assert "pnde" not in METHODS  # its form exists, but it cannot observe many times
    config = get("spiral").config({"method": ",".join(METHODS)})
    assert config["method"] == list(METHODS)


@pytest.mark.parametrize(
    "method, sigma", [("es", None), ("forward_gradient", None), ("evosax:SNES", 0.01)]
)
def test_a_step_of_the_ensemble_traces(method, sigma):
    """A sigma swept under vmap (ES), forward-mode autodiff through the ODE solve (the
    forward gradient), and an evosax strategy with a constant sigma trace (not compiled;
    every method runs in the slow test)."""
    config = get("spiral").config({k: v for k, v in TINY.items() if k != "method"})
    task, seeds = make_task(config), [0, 1]
    fields = stacked_fields(6, seeds, jax.random.key(0))
    batch = stacked_batches(task, seeds, jax.random.key(1))(0)
    hyper = {"sigma": jnp.array([0.1, 0.01]), "seed": jnp.asarray(seeds)}
    learner = Ensemble(member_learners(task, method, 4, 1e-3, sigma), hyper)
    state = learner.init(fields)
    new, metrics = jax.eval_shape(learner.step, state, jax.random.key(2), *batch)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert metrics["loss_1"].shape == () and metrics["rejected"].dtype == jnp.int32


def test_split_history_gives_each_member_its_curve_and_rejections():
    history = [
        {"step": 0, "mae": 1.0, "mae_0": 1.0, "mae_1": 2.0},
        {"step": 1, "loss": 0.5, "loss_0": 0.4, "loss_1": 0.6, "rejected_0": 0, "rejected_1": 0},
        {"step": 2, "loss": 0.4, "loss_0": 0.4, "loss_1": np.inf, "rejected_0": 0, "rejected_1": 1},
        {"step": 2, "mae": 0.5, "mae_0": 0.3, "mae_1": 0.7},
    ]
    history[1]["seconds"], history[2]["seconds"] = 1.0, 2.0
    curves = split_history(history, 2)
    np.testing.assert_array_equal(curves[1]["loss"], [0.6, np.inf])
    np.testing.assert_array_equal(curves[1]["rejected"], [0, 1])
    np.testing.assert_array_equal(curves[0]["mae"], [1.0, 0.3])
    assert summarise(curves, target=0.5, window=1)["rejected_steps"] == 1


def test_quick_settings_are_valid():
    for name in ("spiral", "spiral-scaling"):
        config = get(name).config(quick=True)
        assert config["quick"] is True


TINY = {
    "hidden": "6",
    "runs": "2",
    "steps": "12",
    "samples": "4",
    "n_points": "60",
    "t_end": "3.0",
    "batch_size": "4",
    "batch_time": "4",
    "eval_every": "3",
    "window": "2",
    "target": "10.0",
}


@pytest.mark.slow
def test_spiral_runs_and_writes_its_metrics_and_figures(tmp_path):
    run, metrics = run_experiment(
        "spiral", {**TINY, "method": "es,bptt,fnde"}, out=tmp_path / "run"
    )
    for method in ("es", "bptt", "fnde"):
        assert metrics[f"final_mae_{method}"] > 0
        assert metrics[f"runs_reached_target_{method}"] == 2  # target 10 is always met,
        assert metrics[f"iterations_to_target_{method}"] == 0  # already at step 0
        assert metrics[f"seconds_to_target_{method}"] == 0
    assert (run.path / "curves.png").exists() and (run.path / "trajectories.png").exists()
    lines = (run.path / "history.jsonl").read_text().splitlines()
    labels = {json.loads(line)["label"] for line in lines}
    assert labels == {"es", "bptt", "fnde"}
    # same seed, same numbers
    _, again = run_experiment("spiral", {**TINY, "method": "es,bptt,fnde"}, out=tmp_path / "again")
    assert again["final_mae_es"] == metrics["final_mae_es"]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_the_tiny_spiral(tmp_path, method):
    tiny = {**TINY, "steps": "3", "eval_every": "3"}
    _, metrics = run_experiment("spiral", {**tiny, "method": method}, out=tmp_path / method)
    assert np.isfinite(metrics[f"final_loss_{method}"])
    assert metrics[f"rejected_steps_{method}"] == 0


def test_stacked_batches_depend_on_the_seed_and_the_step_only():
    config = get("spiral").config({k: v for k, v in TINY.items() if k != "method"})
    task = make_task(config)
    batch = stacked_batches(task, [0, 0, 3], jax.random.key(1))
    (y0s, targets), (again, _) = batch(4), batch(4)
    assert y0s.shape == (3, 4, 2) and targets.shape == (3, 4, 4, 2)
    np.testing.assert_array_equal(y0s, again)
    np.testing.assert_array_equal(y0s[0], y0s[1])  # one seed, one minibatch
    assert not np.array_equal(y0s[0], y0s[2]) and not np.array_equal(y0s, batch(5)[0])


@pytest.mark.slow
def test_spiral_scaling_runs_and_times_the_best_sigma(tmp_path):
    tiny = {k: v for k, v in TINY.items() if k not in ("samples",)}
    run, metrics = run_experiment(
        "spiral-scaling",
        {**tiny, "runs": "1", "samples_list": "4,8", "sigmas": "0.1,0.01"},
        out=tmp_path / "run",
    )
    for s in (4, 8):
        assert metrics[f"best_sigma_es_s{s}"] in (0.1, 0.01)
        # target 10 is met by the evaluation before training
        assert metrics[f"iterations_to_target_es_s{s}"] == 0
        assert metrics[f"seconds_to_target_es_s{s}"] == 0
        assert f"iterations_to_target_es_s{s}_sigma0.01" in metrics
    assert metrics["seconds_to_target_bptt"] == 0
    assert (run.path / "scaling.png").exists()


@pytest.mark.slow
def test_cosine_schedule_changes_the_training_and_is_refused_when_unknown(tmp_path):
    tiny = {**TINY, "method": "bptt", "runs": "1", "lr": "0.05"}
    _, constant = run_experiment("spiral", tiny, out=tmp_path / "constant")
    _, cosine = run_experiment("spiral", {**tiny, "lr_schedule": "cosine"}, out=tmp_path / "cos")
    assert np.isfinite(cosine["final_loss_bptt"])
    assert cosine["final_loss_bptt"] != constant["final_loss_bptt"]
    with pytest.raises(ConfigError, match="lr_schedule"):
        get("spiral").config({"lr_schedule": "linear"})
