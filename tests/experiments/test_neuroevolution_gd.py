"""`neuroevolution-gd`: a tiny run through the command line, its files and metrics;
bad settings; the matched-time bookkeeping."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.cli import main
from bbpes.estimators import bptt
from bbpes.experiments import get
from bbpes.experiments.neuroevolution_gd import schedule, time_per_step
from bbpes.learners import GradientLearner, Repeated

TINY = {
    "nets": "deep",
    "deep_layers": "2",
    "deep_width": "3",
    "population": "8",
    "probe_population": "64",
    "sigmas_inf": "0.04,0.02",
    "sigmas_finite": "0.004",
    "path_length": "0.2",
    "gd_time": "0.02",
    "records": "4",
}


def argv(out, **extra):
    settings = {**TINY, **extra}
    return ["run", "neuroevolution-gd", "--out", str(out)] + [
        item for k, v in settings.items() for item in ("--set", f"{k}={v}")
    ]


@pytest.mark.slow  # 22 s; CI runs it (.ci/run)
def test_tiny_run_writes_curves_plots_and_metrics(tmp_path):
    out = tmp_path / "run"
    assert main(argv(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for sigma, regime in (("0.04", "beta_inf"), ("0.02", "beta_inf"), ("0.004", "beta_finite")):
        name = f"deep_{sigma}_{regime}"
        assert 0.0 <= metrics[f"relative_gap_{name}"] < 10.0
        assert metrics[f"prefactor_predicted_{name}"] > 0.0
        assert math.isfinite(metrics[f"prefactor_fitted_{name}"])
        assert 0.0 < metrics[f"acceptance_{name}"] < 1.0
    assert metrics["prefactor_predicted_deep_0.04_beta_inf"] == pytest.approx(
        0.04 / math.sqrt(2 * math.pi)
    )
    assert metrics["prefactor_predicted_deep_0.004_beta_finite"] == pytest.approx(
        300.0 * 0.004**2 / 2
    )
    assert math.isfinite(metrics["gap_slope_deep_beta_inf"])
    assert "gap_slope_deep_beta_finite" not in metrics  # one sigma: no slope
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == {
        "loss_beta_inf.png",
        "loss_beta_finite.png",
        "weights_beta_inf.png",
        "weights_beta_finite.png",
        "scaling.png",
    }
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    labels = {r["label"] for r in history}
    assert (
        "mutation-deep-sigma=0.04-beta_inf" in labels
        and "gd-deep-sigma=0.004-beta_finite" in labels
    )
    gd = [r for r in history if r["label"] == "gd-deep-sigma=0.04-beta_inf"]
    assert [r["step"] for r in gd] == list(range(5))  # step 0 and 4 records


@pytest.mark.parametrize(
    "setting, message",
    [
        ("beta=-1", "beta must be > 0"),
        ("sigmas_inf=0.01,-0.01", "sigmas_inf must be > 0"),
        ("population=1", "population must be >= 2"),
        ("regimes=finite,warm", "bad value 'warm'"),
        ("deep_layers=1", "deep_layers must be >= 2"),
    ],
)
def test_bad_settings_exit_2_and_write_nothing(tmp_path, capsys, setting, message):
    out = tmp_path / "out"
    assert main(["run", "neuroevolution-gd", "--out", str(out), "--set", setting]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_schedule_covers_the_configured_time_in_matched_units():
    config = get("neuroevolution-gd").config({"records": "10"})
    for regime, sigma in (("inf", 0.01), ("finite", 0.002)):
        records, per_record = schedule(config, regime, sigma)
        beta = math.inf if regime == "inf" else config["beta"]
        total = records * per_record * time_per_step(beta, sigma)
        wanted = config["path_length"] if regime == "inf" else config["gd_time"]
        assert records <= 10 and wanted <= total < wanted + per_record * time_per_step(beta, sigma)


def test_repeated_learner_takes_that_many_steps_and_reports_the_first_loss():
    loss = lambda p: jnp.sum((p - 1.0) ** 2)
    learner = GradientLearner(bptt(loss), optax.sgd(0.1))
    state, metrics = Repeated(learner, 3).step(learner.init(jnp.zeros(2)), jax.random.key(0))
    manual = learner.init(jnp.zeros(2))
    for _ in range(3):
        manual, _ = learner.step(manual, None)
    np.testing.assert_allclose(state.params, manual.params)
    assert float(metrics["loss"]) == pytest.approx(2.0)
