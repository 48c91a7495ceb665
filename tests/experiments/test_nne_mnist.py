"""`nne-mnist` end to end on a tiny network: files, metrics, Table 1, resume."""

from __future__ import annotations

import json

import pytest

from bbpes.errors import ConfigError
from bbpes.experiments import get
from bbpes.framework.runner import run_experiment

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


def history_of(run) -> list[dict]:
    return [json.loads(x) for x in (run.path / "history.jsonl").read_text().splitlines()]


def last_accuracy(history, label):
    return [r["accuracy"] for r in history if r["label"] == label and "accuracy" in r][-1]


def test_tiny_run_reports_what_its_trainings_recorded(mnist_dir, tmp_path):
    settings = {**TINY, "data_dir": str(mnist_dir)}
    run, metrics = run_experiment("nne-mnist", settings, out=tmp_path / "run")
    history = history_of(run)
    assert {r["label"] for r in history} == {"nne", "nne-genes30", "nne+signsgd", "sgd"}
    # each headline figure is its training's last evaluation, not another number
    for key, label in (
        ("test_accuracy_nne", "nne"),
        ("test_accuracy_nne_signsgd", "nne+signsgd"),
        ("test_accuracy_sgd", "sgd"),
        ("test_accuracy_nne_genes30", "nne-genes30"),
    ):
        assert metrics[key] == pytest.approx(last_accuracy(history, label)), key
    # the Fig. 3 point for the main run's genes is its record at sweep_generations
    at_sweep = [r for r in history if r["label"] == "nne" and r["step"] == 2 and "accuracy" in r]
    assert metrics["test_accuracy_nne_genes60"] == pytest.approx(at_sweep[-1]["accuracy"])
    steps = [r for r in history if r["label"] == "nne" and "seconds" in r]
    rate = (steps[-1]["step"] - steps[0]["step"]) / (steps[-1]["seconds"] - steps[0]["seconds"])
    assert metrics["generations"] == 4 and metrics["generations_per_second"] == pytest.approx(rate)
    assert "5000-9999" in metrics["data"] and metrics["train_images"] == 20
    # Table 1's "ours" column is ours
    table = (run.path / "table1.md").read_text()
    assert f"| NNE | 92.1 | {100 * metrics['test_accuracy_nne']:.1f} |" in table
    assert f"| SGD (Adam) | 96.0 | {100 * metrics['test_accuracy_sgd']:.1f} |" in table
    for name in ("accuracy.png", "alleles.png", "genes.png", "metrics.json", "config.json"):
        assert (run.path / name).exists(), name


@pytest.mark.slow
def test_the_quick_run_learns_well_above_chance(mnist_dir, tmp_path):
    """--quick (digits 0-4, 40 images per digit, 80 generations): NNE, NNE + SignSGD
    and SGD all at least twice chance (0.2) on held-out images."""
    _, metrics = run_experiment(
        "nne-mnist", {"data_dir": str(mnist_dir)}, quick=True, out=tmp_path / "run"
    )
    for key in ("test_accuracy_nne", "test_accuracy_nne_signsgd", "test_accuracy_sgd"):
        assert metrics[key] > 0.4, (key, metrics[key])


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
        ({"chunk": 0}, "chunk must be >= 1"),
        ({"image_block": 0}, "image_block must be >= 1"),
        ({"hidden_block": 13}, "hidden_block must be <= hidden"),
        ({"train_per_digit": 7000}, "train_per_digit must be <= 6742"),
        ({"train_per_digit": 0}, "train_per_digit must be >= 1"),
        ({"hidden": 10**9}, "more than the"),
    ],
)
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        get("nne-mnist").config({**TINY, **settings})


@pytest.mark.parametrize("method", ["es", "evosax:Open_ES"])
def test_the_es_methods_learn_the_dense_mlp_on_the_same_split(mnist_dir, tmp_path, method):
    """`method=es` / `evosax:Open_ES`: the dense MLP of the same sizes, 25 steps of 50
    images, well above chance (0.2) on the held-out images; the metrics are the run's."""
    settings = {
        **TINY,
        "data_dir": str(mnist_dir),
        "method": method,
        "train_per_digit": 20,
        "test_per_digit": 20,
        "hidden": 16,
        "population": 40,
        "chunk": 20,
        "batch_images": 50,
        "generations": 25,
        "eval_every": 25,
    }
    run, metrics = run_experiment("nne-mnist", settings, out=tmp_path / "run")
    history = history_of(run)
    assert {r["label"] for r in history} == {method}
    assert metrics["test_accuracy"] == pytest.approx(last_accuracy(history, method))
    assert metrics["test_accuracy"] > 0.5, metrics["test_accuracy"]
    assert metrics["steps"] == 25 and metrics["train_images"] == 100
    assert (run.path / "accuracy.png").exists()
