"""`nne-mnist` end to end on a tiny network: files, metrics, Table 1, resume."""

from __future__ import annotations

import json

import pytest

from bbpes.experiments import get
from bbpes.experiments.base import ConfigError
from bbpes.experiments.runner import run_experiment

TINY = {
    "classes": 5,
    "train_per_digit": 4,
    "test_per_digit": 10,
    "image_block": 10,
    "hidden": 12,
    "hidden_block": 4,
    "genes": 60,
    "population": 8,
    "chunk": 4,
    "generations": 4,
    "eval_every": 2,
    "eval_samples": 1,
    "genes_sweep": [30, 60],
    "sweep_generations": 2,
    "signsgd_steps": 3,
    "sgd_steps": 3,
    "batch_size": 5,
}


def test_tiny_run_writes_table_figures_and_metrics(mnist_dir, tmp_path):
    settings = {**TINY, "data_dir": str(mnist_dir)}
    run, metrics = run_experiment("nne-mnist", settings, out=tmp_path / "run")
    for key in (
        "test_accuracy_nne",
        "test_accuracy_nne_signsgd",
        "test_accuracy_sgd",
        "test_accuracy_nne_genes30",
        "test_accuracy_nne_genes60",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["generations"] == 4 and metrics["generations_per_second"] > 0
    assert metrics["paper_test_accuracy_nne"] == 0.921
    assert "5000-9999" in metrics["data"] and metrics["train_images"] == 20
    table = (run.path / "table1.md").read_text()
    assert "| NNE | 92.1 |" in table and "5000-9999" in table
    for name in ("accuracy.png", "alleles.png", "genes.png", "metrics.json", "config.json"):
        assert (run.path / name).exists(), name
    labels = {json.loads(x)["label"] for x in (run.path / "history.jsonl").read_text().splitlines()}
    assert labels == {"nne", "nne-genes30", "nne+signsgd", "sgd"}  # genes60 reuses "nne"


@pytest.mark.slow
def test_a_finished_run_resumes_to_the_same_numbers(mnist_dir, tmp_path):
    settings = {**TINY, "data_dir": str(mnist_dir)}
    _, metrics = run_experiment("nne-mnist", settings, out=tmp_path / "run")
    _, again = run_experiment("nne-mnist", out=tmp_path / "run", resume=True)
    for key in ("test_accuracy_nne", "test_accuracy_nne_signsgd", "test_accuracy_sgd"):
        assert again[key] == metrics[key], key


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"population": 10, "chunk": 4}, "must divide population"),
        ({"train_per_digit": 7, "image_block": 10}, "must divide the 35 training images"),
        ({"classes": "3"}, "bad value 3 for 'classes'"),
        ({"data_dir": "/no/such/dir"}, "does not exist"),
    ],
)
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        get("nne-mnist").config({**TINY, **settings})
