"""`nne-vs-es` end to end on a tiny split: every method on the same images, the plot
and the table of what the trainings recorded, resume, and bad settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.experiments import get
from bbpes.experiments.nne_vs_es import method_training
from bbpes.framework.runner import run_experiment
from bbpes.tasks.mnist_nne import generation_images
from bbpes.tasks.mnist_nne_setup import load_data, sparse_net

TINY = {
    "classes": 5,
    "train_per_digit": 20,
    "test_per_digit": 20,
    "image_block": 10,
    "hidden": 16,
    "hidden_block": 4,
    "genes": 200,
    "population": 40,
    "chunk": 20,
    "batch_images": 50,
    "methods": ["nne_improved", "es"],
    "seconds": 0.5,
    "evals": 4,
    "calibration_steps": 3,
}


def history_of(run) -> list[dict]:
    return [json.loads(x) for x in (run.path / "history.jsonl").read_text().splitlines()]


def test_every_method_trains_on_the_same_images(mnist_dir):
    config = get("nne-vs-es").config({**TINY, "data_dir": str(mnist_dir)})
    data = load_data(config)
    net = sparse_net(config, data)
    dense = {m: method_training(config, data, net, m, 10) for m in ("es", "evosax:Open_ES")}
    nne = {m: method_training(config, data, net, m, 10) for m in ("nne", "nne_improved")}
    for i in range(3):  # 100 images, 50 a step: the third step is the next epoch's
        index = generation_images(i, 100, 50, config["seed"])
        for method, t in dense.items():
            x, y = t.batch(i)
            np.testing.assert_array_equal(np.asarray(x), data.train_x[index], err_msg=method)
            np.testing.assert_array_equal(np.asarray(y), data.train_y[index], err_msg=method)
        for method, t in nne.items():
            (inputs,) = t.batch(i)
            labels = np.asarray(inputs.labels).reshape(-1)
            np.testing.assert_array_equal(labels, data.train_y[index], err_msg=method)


def test_a_tiny_comparison_writes_what_its_trainings_recorded(mnist_dir, tmp_path):
    run, metrics = run_experiment(
        "nne-vs-es", {**TINY, "data_dir": str(mnist_dir)}, out=tmp_path / "run"
    )
    history = history_of(run)
    calibration = json.loads((run.path / "calibration.json").read_text())
    table = (run.path / "comparison.md").read_text()
    for method in TINY["methods"]:
        mine = [r for r in history if r["label"] == method]
        evals = [r for r in mine if "accuracy" in r]
        steps = calibration[method]["steps"]
        assert steps == max(1, int(0.5 // calibration[method]["step_seconds"]))
        assert metrics[f"steps_{method}"] == steps == max(r["step"] for r in mine)
        assert metrics[f"accuracy_{method}"] == pytest.approx(evals[-1]["accuracy"])
        assert metrics[f"seconds_{method}"] == pytest.approx(mine[-1]["seconds"])
        assert f"| `{method}` |" in table
        assert f"| {100 * metrics[f'accuracy_{method}']:.1f} |" in table
        reached = [r for r in evals if r["accuracy"] >= 0.921]
        assert metrics[f"step_to_target_{method}"] == (reached[0]["step"] if reached else None)
    assert "dense MLP 784-16-5, 12,645 weights" in table and "200 genes" in table
    assert (run.path / "accuracy_vs_seconds.png").stat().st_size > 1000
    assert metrics["target_accuracy"] == 0.921


@pytest.mark.slow
def test_a_finished_comparison_resumes_to_the_same_numbers(mnist_dir, tmp_path):
    settings = {**TINY, "data_dir": str(mnist_dir)}
    run, metrics = run_experiment("nne-vs-es", settings, out=tmp_path / "run")
    calibration = (run.path / "calibration.json").read_text()
    records = len(history_of(run))
    _, again = run_experiment("nne-vs-es", out=tmp_path / "run", resume=True)
    assert (run.path / "calibration.json").read_text() == calibration  # the same step counts
    assert len(history_of(run)) == records
    for method in TINY["methods"]:
        for key in ("accuracy", "steps", "step_to_target"):
            assert again[f"{key}_{method}"] == metrics[f"{key}_{method}"], (key, method)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"methods": []}, "at least one method"),
        ({"methods": ["nne", "nne"]}, "must not repeat"),
        ({"methods": ["bptt"]}, "bad value 'bptt' for 'methods'"),
        ({"seconds": 0.0}, "seconds must be > 0"),
        ({"population": 35, "chunk": 5, "methods": ["es"]}, "even for ES"),
        ({"batch_images": 110}, "at most the 100 training images"),
        ({"batch_images": 15}, "multiple of image_block"),
        ({"calibration_steps": 0}, "calibration_steps must be >= 1"),
        ({"calibration_steps": 101}, "calibration_steps must be <= 100"),
        ({"sigma": 0.0}, "sigma must be > 0"),
        ({"hidden": 10**9}, "more than the"),
    ],
)
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        get("nne-vs-es").config({**TINY, **settings})
