"""`dopamine-mnist` end to end on a tiny layer: every rule variant, Table 2."""

from __future__ import annotations

import json

import pytest

from bbpes.experiments import get
from bbpes.experiments.base import ConfigError
from bbpes.experiments.runner import run_experiment


def test_tiny_run_reports_every_variant_and_picks_the_best(mnist_dir, tmp_path):
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
    history = [json.loads(x) for x in (run.path / "history.jsonl").read_text().splitlines()]
    variants = [
        f"dnn_{rule}_{direction}_eps0.001"
        for rule in ("formula", "prose")
        for direction in ("increase", "decrease")
    ]
    for name in ["sgd", "signsgd", *variants]:
        evals = [r["accuracy"] for r in history if r["label"] == name and "accuracy" in r]
        assert metrics[f"test_accuracy_{name}"] == pytest.approx(evals[-1]), name
        if name.startswith("dnn_"):
            assert metrics[f"peak_test_accuracy_{name}"] == pytest.approx(max(evals)), name
    finals = {v: metrics[f"test_accuracy_{v}"] for v in variants}
    assert metrics["test_accuracy_dnn"] == max(finals.values())
    assert finals[metrics["dnn_best_variant"]] == max(finals.values())
    assert metrics["train_images"] == 100 and "5000-9999" in metrics["data"]
    table = (run.path / "table2.md").read_text()
    assert f"| SGD (Adam) | 90.34 | {100 * metrics['test_accuracy_sgd']:.2f} |" in table
    assert "formula_decrease_eps0.001" in table and (run.path / "accuracy.png").exists()


@pytest.mark.slow
def test_sgd_on_random_features_learns_mnist(mnist_dir, tmp_path):
    """--quick (2 epochs over the 5,000 training images, h = 1000): SGD and SignSGD on
    the fixed random ReLU features well above chance (0.1), the best dopamine variant
    above chance."""
    _, metrics = run_experiment(
        "dopamine-mnist", {"data_dir": str(mnist_dir)}, quick=True, out=tmp_path / "run"
    )
    assert metrics["test_accuracy_sgd"] > 0.7 and metrics["test_accuracy_signsgd"] > 0.5
    assert metrics["test_accuracy_dnn"] > 0.2, metrics


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="k_cap"):
        get("dopamine-mnist").config({"hidden": 10, "k_cap": 11})
    with pytest.raises(ConfigError, match="bad value 'rumour'"):
        get("dopamine-mnist").config({"dnn_rules": "formula,rumour"})
    with pytest.raises(ConfigError, match=r"test_per_digit must be in 0\.\.1135"):
        get("dopamine-mnist").config({"test_per_digit": 2000})
    with pytest.raises(ConfigError, match="more than the"):
        get("dopamine-mnist").config({"hidden": 10**9})
