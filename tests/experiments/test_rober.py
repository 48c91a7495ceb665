from __future__ import annotations

import numpy as np
import pytest

from bbpes.experiments import ConfigError, get
from bbpes.framework.runner import run_experiment


@pytest.mark.parametrize(
    "overrides",
    [
        {"methods": "es,pnde"},
        {"methods": "bptt_checkpointed"},
        {"steps_es": "0"},
        {"clip": "-1"},
        {"max_steps": "0"},
        {"samples": "3"},
        {"t_min": "0"},
        {"solver": "tsit5"},
        {"sigma": "-1"},
        {"field": "log"},
        {"field": "normalised", "lr_es": "fast"},
        {"rank_shaping": "maybe"},
    ],
)
def test_bad_settings_are_refused(overrides):
    with pytest.raises(ConfigError):
        get("rober").config(overrides)


def test_unset_settings_take_the_field_preset_and_explicit_ones_win():
    plain = get("rober").config()
    assert (plain["field"], plain["sigma"], plain["lr_es"]) == ("plain", 1e-4, 1e-4)
    normalised = get("rober").config({"field": "normalised"})
    assert normalised["sigma"] == 0.1 and normalised["init_output_scale"] == 1.0
    assert normalised["rank_shaping"] is True and plain["rank_shaping"] is False
    assert (
        get("rober").config({"field": "normalised", "rank_shaping": "false"})["rank_shaping"]
        is False
    )
    mine = get("rober").config({"field": "normalised", "sigma": "0.05", "lr_bp": "1"})
    assert mine["sigma"] == 0.05 and mine["lr_bp"] == 1.0 and mine["lr_es"] == 5e-3


def test_normalised_field_scales_each_output_by_its_species_scale_over_the_span():
    from bbpes.tasks.rober import initial_field, make_task

    config = get("rober").config({"field": "normalised", "n_points": "8"})
    task = make_task(config)
    field = initial_field(config, task)
    np.testing.assert_allclose(field.output_scale, np.asarray(task.scale) / 1e5, rtol=1e-12)
    assert initial_field(get("rober").config({"n_points": "8"}), task).output_scale is None


def test_quick_runs_in_float64():
    config = get("rober").config(quick=True)
    assert config["x64"] is True and config["methods"] == ["es", "bptt"]


@pytest.mark.slow
def test_rober_runs_every_method_and_reports_species_errors(tmp_path):
    run, metrics = run_experiment(
        "rober",
        {
            "methods": "es,bptt,bptt_scaled",
            "steps_es": "6",
            "steps_bp": "6",
            "samples": "4",
            "n_points": "8",
            "t_max": "10.0",
            "eval_every": "3",
        },
        out=tmp_path / "run",
    )
    for method in ("es", "bptt", "bptt_scaled"):
        maes = [metrics[f"mae_{species}_{method}"] for species in ("y1", "y2", "y3")]
        # the plain loss is the mean absolute error over species and times: the mean of
        # the per-species errors of the same field
        assert metrics[f"final_loss_{method}"] == pytest.approx(np.mean(maes), rel=1e-9)
        assert metrics[f"steps_{method}"] == 6 or f"stopped_{method}" in metrics
    assert metrics["final_loss_es"] < metrics["initial_loss"]
    assert (run.path / "species.png").exists() and (run.path / "loss.png").exists()


@pytest.mark.slow
def test_es_on_the_normalised_field_beats_the_zero_field(tmp_path):
    """The full 1e-5..1e5 grid and the plain loss: ES fits past the field that leaves
    y at y(0) (which the plain field never got below in 2,000 iterations)."""
    _, metrics = run_experiment(
        "rober",
        {"field": "normalised", "methods": "es", "steps_es": "300", "eval_every": "100"},
        out=tmp_path / "run",
    )
    assert metrics["final_loss_es"] < 0.85 * metrics["null_field_loss"], metrics


def test_the_task_settings_resolved_are_the_experiments_defaults():
    from bbpes.settings import defaults_of
    from bbpes.tasks.rober import SETTINGS, resolve

    config = defaults_of(SETTINGS)
    resolve(config)
    experiment = get("rober").config()
    assert {k: experiment[k] for k in config} == config
