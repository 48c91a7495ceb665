"""`dopamine-mnist` end to end on a tiny layer: every rule variant, Table 2."""

from __future__ import annotations

import pytest

from bbpes.experiments import get
from bbpes.experiments.base import ConfigError
from bbpes.experiments.runner import run_experiment


def test_tiny_run_reports_every_variant_beside_table2(mnist_dir, tmp_path):
    settings = {
        "data_dir": str(mnist_dir),
        "train_per_digit": 10,
        "test_per_digit": 5,
        "hidden": 1000,
        "epochs": 1,
        "batch_size": 20,
        "dnn_batch": 50,
        "dnn_epsilon1": [1e-3],
    }
    run, metrics = run_experiment("dopamine-mnist", settings, out=tmp_path / "run")
    variants = [
        f"dnn_{rule}_{direction}_eps0.001"
        for rule in ("formula", "prose")
        for direction in ("increase", "decrease")
    ]
    for key in ["sgd", "signsgd", "dnn", *variants]:
        assert 0.0 <= metrics[f"test_accuracy_{key}"] <= 1.0, key
    assert metrics["dnn_best_variant"] in variants
    assert metrics["paper_test_accuracy_dnn"] == 0.8484
    assert metrics["train_images"] == 100 and "5000-9999" in metrics["data"]
    table = (run.path / "table2.md").read_text()
    assert "| SGD (Adam) | 90.34 |" in table and "formula_decrease_eps0.001" in table
    assert (run.path / "accuracy.png").exists()


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="k_cap"):
        get("dopamine-mnist").config({"hidden": 10, "k_cap": 11})
    with pytest.raises(ConfigError, match="bad value 'rumour'"):
        get("dopamine-mnist").config({"dnn_rules": "formula,rumour"})
