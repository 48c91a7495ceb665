"""`dopamine-mnist` end to end on a tiny layer: every rule variant, Table 2, the
variants and baselines chosen by settings, and a killed run resumed to the numbers of
an uninterrupted one."""

from __future__ import annotations

import json

import pytest

from bbpes.errors import ConfigError
from bbpes.experiments import dopamine_mnist, get
from bbpes.framework.runner import run_experiment


def read_history(run_dir):
    return [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]


def tiny(mnist_dir, **more):
    return {
        "data_dir": str(mnist_dir),
        "train_per_digit": 10,
        "test_per_digit": 5,
        "hidden": 1000,
        "epochs": 1,
        "batch_size": 20,
        "dnn_batch": 50,
        "dnn_epsilon1": [1e-3],
        **more,
    }


def test_tiny_run_reports_every_variant_and_picks_the_best(mnist_dir, tmp_path):
    run, metrics = run_experiment("dopamine-mnist", tiny(mnist_dir), out=tmp_path / "run")
    history = read_history(run.path)
    variants = [
        f"dnn_{rule}_{direction}_eps0.001"
        for rule in ("formula", "prose")
        for direction in ("increase", "decrease")
    ]
    labels = {r["label"] for r in history}
    assert labels == {"sgd", "signsgd", *variants}
    for name in ["sgd", "signsgd", *variants]:
        evals = [r["accuracy"] for r in history if r["label"] == name and "accuracy" in r]
        assert len(evals) == 2, name  # before training and after the one epoch
        assert metrics[f"test_accuracy_{name}"] == pytest.approx(evals[-1]), name
        steps = [r for r in history if r["label"] == name and "seconds" in r]
        assert metrics[f"train_seconds_{name}"] == pytest.approx(steps[-1]["seconds"])
        if name.startswith("dnn_"):
            assert metrics[f"peak_test_accuracy_{name}"] == pytest.approx(max(evals)), name
    finals = {v: metrics[f"test_accuracy_{v}"] for v in variants}
    assert metrics["test_accuracy_dnn"] == max(finals.values())
    assert finals[metrics["dnn_best_variant"]] == max(finals.values())
    assert metrics["train_images"] == 100 and "5000-9999" in metrics["data"]
    table = (run.path / "table2.md").read_text()
    ours = f"{100 * metrics['test_accuracy_sgd']:.2f}"
    assert f"| SGD (Adam) | 90.34 | {ours} |" in table
    assert "formula_decrease_eps0.001" in table and (run.path / "accuracy.png").exists()


def test_variants_and_baselines_are_chosen_by_settings(mnist_dir, tmp_path):
    """`dnn_variants` replaces the product of rules, directions and steps; `baselines`
    drops SGD or SignSGD; the table leaves out what did not run."""
    settings = tiny(
        mnist_dir,
        baselines=["signsgd"],
        dnn_variants=["sign:increase:0.5:logit", "formula:decrease:1e-5"],
    )
    run, metrics = run_experiment("dopamine-mnist", settings, out=tmp_path / "run")
    labels = {r["label"] for r in read_history(run.path)}
    assert labels == {"signsgd", "dnn_sign_increase_eps0.5_logit", "dnn_formula_decrease_eps1e-05"}
    assert "test_accuracy_sgd" not in metrics
    table = (run.path / "table2.md").read_text()
    assert "SGD (Adam)" not in table and "| SignSGD | 86.84 |" in table
    assert "sign_increase_eps0.5_logit" in table


def test_a_killed_run_resumes_to_the_uninterrupted_numbers(mnist_dir, tmp_path, monkeypatch):
    """The run dies in its second dopamine variant, past that variant's checkpoint at
    step 50 (10 steps an epoch, 8 epochs); `resume` keeps what was done and ends with
    the metrics and histories of a run that was never interrupted."""
    settings = tiny(
        mnist_dir,
        epochs=8,
        dnn_batch=10,
        baselines=["sgd"],
        dnn_variants=["sign:increase:1e-3", "reward_modulated:increase:1e-3"],
    )
    real_train = dopamine_mnist.train
    victim = "dnn_reward_modulated_increase_eps0.001"

    def dies_at_step_65(*args, batch, label, **kwargs):
        def dying(i):
            if label == victim and i == 65:
                raise RuntimeError("killed")
            return batch(i)

        return real_train(*args, batch=dying, label=label, **kwargs)

    killed, whole = tmp_path / "killed", tmp_path / "whole"
    monkeypatch.setattr(dopamine_mnist, "train", dies_at_step_65)
    with pytest.raises(RuntimeError, match="killed"):
        run_experiment("dopamine-mnist", settings, out=killed)
    monkeypatch.setattr(dopamine_mnist, "train", real_train)
    before = read_history(killed)
    assert max(r["step"] for r in before if r["label"] == victim) == 65
    assert not (killed / "metrics.json").exists()

    _, resumed = run_experiment("dopamine-mnist", out=killed, resume=True)
    _, uninterrupted = run_experiment("dopamine-mnist", settings, out=whole)
    after = read_history(killed)
    done_before = [r for r in before if r["label"] != victim or r["step"] <= 50]
    assert after[: len(done_before)] == done_before  # continued, not redone
    accuracy = [k for k in uninterrupted if "accuracy" in k]
    assert len(accuracy) >= 5
    assert {k: resumed[k] for k in accuracy} == {k: uninterrupted[k] for k in accuracy}

    def evaluations(history):
        return [(r["label"], r["step"], r["accuracy"]) for r in history if "accuracy" in r]

    assert evaluations(after) == evaluations(read_history(whole))


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
    config = get("dopamine-mnist").config
    with pytest.raises(ConfigError, match="k_cap"):
        config({"hidden": 10, "k_cap": 11})
    with pytest.raises(ConfigError, match="bad value 'rumour'"):
        config({"dnn_rules": "formula,rumour"})
    with pytest.raises(ConfigError, match="bad value 'adam'"):
        config({"baselines": "sgd,adam"})
    with pytest.raises(ConfigError, match="test_per_digit must be <= 1135"):
        config({"test_per_digit": 2000})
    with pytest.raises(ConfigError, match="more than the"):
        config({"hidden": 10**9})
    for bad in ("sign:increase", "sign:up:1e-3", "sign:increase:-1", "sign:increase:x",
                "sign:increase:1e-3:neuron", "rumour:increase:1e-3"):  # fmt: skip
        with pytest.raises(ConfigError, match="bad dnn_variants item"):
            config({"dnn_variants": bad})
    with pytest.raises(ConfigError, match="twice"):
        config({"dnn_variants": "sign:increase:1e-3,sign:increase:0.001"})
    with pytest.raises(ConfigError, match="twice"):
        config({"baselines": "sgd,sgd"})
    assert dopamine_mnist.dnn_variants(config({"dnn_variants": "sign:increase:1e-2"})) == [
        ("sign", "increase", 0.01, "link")
    ]
