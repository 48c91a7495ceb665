from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.estimators import es
from bbpes.experiments import ConfigError, get
from bbpes.experiments.runner import run_experiment
from bbpes.experiments.spiral import Ensemble, iterations_to_target, running_median, seconds_at
from bbpes.learners import GradientLearner


def bumpy(params, target):
    """Not bumpy, so the mirrored ES estimate depends on sigma."""
    return jnp.sum((params - target) ** 2) + jnp.sum(jnp.cos(3.0 * params))


def test_ensemble_members_equal_separate_runs_with_their_own_sigma():
    """One vmapped step over a traced sigma gives what each sigma gives on its own."""
    sigmas, seeds = jnp.array([0.3, 0.03, 0.003]), jnp.array([0, 0, 5])

    def make(h):
        return GradientLearner(es(bumpy, h["sigma"], 6), optax.adam(0.1))

    ensemble = Ensemble(make, {"sigma": sigmas, "seed": seeds})
    params = jnp.stack([jnp.ones(4), jnp.ones(4), -jnp.ones(4)])
    target = jnp.arange(4.0)
    key = jax.random.key(7)
    state = ensemble.init(params)
    step = eqx.filter_jit(ensemble.step)
    for i in range(5):
        state, metrics = step(state, jax.random.fold_in(key, i), jnp.stack([target] * 3))
    assert set(metrics) >= {"loss", "loss_0", "loss_2", "grad_norm_1"}
    for m in range(3):
        alone = make({"sigma": sigmas[m]})
        s = alone.init(params[m])
        alone_step = eqx.filter_jit(alone.step)
        for i in range(5):
            s, _ = alone_step(s, jax.random.fold_in(jax.random.fold_in(key, i), seeds[m]), target)
        np.testing.assert_allclose(ensemble.params(state)[m], alone.params(s), rtol=1e-6)
    # the sweep really differs between sigmas
    assert not np.allclose(ensemble.params(state)[0], ensemble.params(state)[1])


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
