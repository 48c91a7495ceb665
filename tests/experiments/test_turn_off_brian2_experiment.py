"""`turn-off-brian2`: settings are checked before anything is written; with Brian2
installed (slow), ES through a local 2-CPU Ray cluster switches the Brian2 cell off and
lands where the JAX version does."""

from __future__ import annotations

import importlib.util
import json

import pytest

from bbpes.cli import main
from bbpes.experiments import ConfigError, get

EXPERIMENT = get("turn-off-brian2")


@pytest.fixture
def installed(monkeypatch):
    """Pretend that brian2 and ray are installed, so that the other checks run."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name in ("brian2", "ray") else real(name, *a),
    )


def test_missing_brian2_is_a_config_error(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "brian2" else real(name, *a)
    )
    assert main(["run", "turn-off-brian2", "--quick", "--out", str(tmp_path / "r")]) == 2
    assert "pip install 'bbpes[brian2]'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ({"samples": "7"}, "even"),
        ({"timeout": "0"}, "timeout"),
        ({"workers": "-1"}, "workers"),
        ({"t_end": "100.05"}, "whole number"),
        ({"target": "gpu"}, "choose from"),
        ({"address": "my cluster"}, "host:port"),
        ({"lr": "0"}, "lr must be > 0"),
        ({"t_end": "1e12"}, "steps of dt"),
    ],
)
def test_bad_settings_are_rejected(installed, override, message):
    with pytest.raises(ConfigError, match=message):
        EXPERIMENT.config(override, quick=True)


def test_quick_settings_are_valid(installed):
    config = EXPERIMENT.config(quick=True)
    assert config["samples"] % 2 == 0 and config["t_end"] < EXPERIMENT.defaults["t_end"]


@pytest.mark.slow
def test_brian2_cell_is_switched_off_through_ray(tmp_path):
    """Needs the brian2 extra (its own virtualenv, numpy < 2.4)."""
    out = tmp_path / "b"
    assert main(["run", "turn-off-brian2", "--quick", "--out", str(out), "--set", "workers=2"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["workers"] == 2
    assert m["below_10pct_brian2"] and m["final_loss_brian2"] < 0.1 * m["initial_loss_brian2"]
    assert 60.0 < m["final_i_app_brian2"] < 90.0
    assert abs(m["i_app_gap"]) < 5.0  # the JAX version ends in the same place
    assert m["landscape_max_abs_gap"] < 0.05 and m["landscape_nonfinite_brian2"] == 0
    assert m["samples_failed"] == 0
    assert (out / "training.png").exists() and (out / "landscape.png").exists()
