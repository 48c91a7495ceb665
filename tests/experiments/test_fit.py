"""`bbpes run fit`: the outputs a user reads, the same seed giving the same fit, a
resumed fit equal to an uninterrupted one, and bad input refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bbpes.errors import ConfigError
from bbpes.experiments.fit import EXPERIMENT, run
from bbpes.runs import RunDir

SMALL = {"problem": "simplecell", "evaluations": 60, "samples": 6}


def fit(tmp_path, name, **overrides):
    config = EXPERIMENT.config({**SMALL, **overrides})
    out = tmp_path / name
    out.mkdir()
    return run(config, RunDir(out)), out


@pytest.mark.slow  # 26 s; CI runs it (.ci/run)
def test_a_fit_writes_its_parameters_features_and_figures(tmp_path):
    metrics, out = fit(tmp_path, "a")
    fitted = json.loads((out / "fitted.json").read_text())["parameters"]
    assert set(fitted) == {"gnabar", "gkbar"}
    for p in fitted.values():
        assert p["unit"] == "S/cm2" and p["low"] <= p["value"] <= p["high"]
        assert p["relative_error"] == pytest.approx(abs(p["value"] / p["truth"] - 1), rel=1e-6)
    rows = json.loads((out / "features.json").read_text())
    assert {r["sweep"] for r in rows} == {0, 1} and all("z" in r for r in rows)
    assert (out / "features.md").read_text().startswith("# Features")
    for figure in ("sweeps.png", "loss.png"):
        assert (out / figure).stat().st_size > 1000
    # 60 evaluations of CMA-ES's 6 (+ the centre scored) per step: 8 steps
    assert metrics["evaluations"] == 8 * 7 and metrics["cost_per_step"] == 6
    assert metrics["best_hard_loss"] >= 0 and metrics["max_relative_error"] >= 0


@pytest.mark.slow
def test_a_resumed_fit_is_the_uninterrupted_one(tmp_path):
    """The same seed gives the same fit: half the budget, then the whole budget resumed
    in the same directory, ends where one uninterrupted run ends."""
    a, _ = fit(tmp_path, "a", method="evosax:SimpleGA")
    config = EXPERIMENT.config({**SMALL, "method": "evosax:SimpleGA", "evaluations": 28})
    out = tmp_path / "c"
    out.mkdir()
    run(config, RunDir(out))
    config = EXPERIMENT.config({**SMALL, "method": "evosax:SimpleGA"})
    config["resume"] = True
    c = run(config, RunDir(out))
    keys = ("best_hard_loss", "fitted_gnabar", "fitted_gkbar", "evaluations")
    assert [a[k] for k in keys] == [c[k] for k in keys]


@pytest.mark.slow
def test_a_gradient_signal_on_the_soft_loss_counts_its_measured_cost(tmp_path):
    metrics, _ = fit(tmp_path, "a", method="bptt_surrogate", evaluations=20)
    assert metrics["cost_per_step"] >= 1.0  # a gradient step: at least one forward run
    assert metrics["timing_step_seconds"] > 0 and metrics["best_hard_loss"] >= 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"problem": "nope"}, "bad value .nope. for .problem."),
        ({"features": "Spikecount,nope"}, "unknown features"),
        ({"loss": "l1"}, "bad value .l1. for .loss."),
        ({"problem": "recording"}, "needs --set recording"),
        ({"evaluations": 0}, "evaluations"),
    ],
)
def test_bad_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        EXPERIMENT.config(overrides)


def test_a_bad_recording_exits_2_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "bbpes", "run", "fit", "--out", str(out),
         "--set", "problem=recording", "--set", f"recording={tmp_path / 'missing.ibw'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "missing.ibw" in result.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_several_starts_share_the_budget_and_the_best_is_reported(tmp_path):
    """Two CMA-ES fits from two starts as one vmapped program: 60 evaluations are 4
    steps of 2 x (6 + 1); the reported point is the better of the two."""
    metrics, out = fit(tmp_path, "a", starts=2)
    assert metrics["evaluations"] == 4 * 2 * 7
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    scored = [r for r in history if "hard_loss" in r]
    assert {r["start"] for r in scored} <= {0, 1}
    assert metrics["best_hard_loss"] == pytest.approx(min(r["hard_loss"] for r in scored))
