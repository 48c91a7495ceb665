"""The single-neuron case study (paper section 3.1) end to end, at small scale."""

from __future__ import annotations

import json

import numpy as np

from bbpes.cli import main
from bbpes.experiments.reversibility import reversible_time
from bbpes.tasks.turn_off import gaussian_smooth


def metrics_of(path):
    return json.loads((path / "metrics.json").read_text())


def test_turn_off_es_switches_the_cell_off(tmp_path):
    out = tmp_path / "t"
    argv = [
        "run",
        "turn-off",
        "--quick",
        "--out",
        str(out),
        "--set",
        "t_end=1000",
        "--set",
        "steps=40",
        "--set",
        "grid_points=41",
        "--set",
        "gradient_points=5",
    ]
    assert main(argv) == 0
    m = metrics_of(out)
    assert m["initial_loss"] > 0.1  # I = 100 fires tonically
    assert m["final_loss_es"] < 0.1 * m["initial_loss"]
    assert m["final_i_app_es"] < 90.0


def test_reversibility_loses_track_and_tighter_solves_last_longer(tmp_path):
    out = tmp_path / "r"
    argv = [
        "run",
        "reversibility",
        "--out",
        str(out),
        "--set",
        "dt=0.01",
        "--set",
        "i_app=150",
        "--set",
        "dopri5_rtols=1e-4,1e-10",
    ]
    assert main(argv) == 0
    m = metrics_of(out)
    assert 0 < m["reversible_ms"] < 100.0
    assert m["reversible_ms_dopri5_rtol0.0001"] < m["reversible_ms_dopri5_rtol1e-10"]
    assert (out / "reversibility.png").exists()


def test_adjoint_drift_reports_gradients_and_the_smoothed_slope(tmp_path):
    out = tmp_path / "a"
    argv = [
        "run",
        "adjoint-drift",
        "--out",
        str(out),
        "--set",
        "t_end=1000",
        "--set",
        "save_points=101",
        "--set",
        "rtol_sweep=1e-8",
        "--set",
        "smoothing_points=61",
    ]
    assert main(argv) == 0
    m = metrics_of(out)
    assert m["grad_smoothed"] > 0  # more current, more firing
    assert m["sign_agrees"] == (np.sign(m["grad_pnde"]) == np.sign(m["grad_smoothed"]))
    # at a tight tolerance the adjoint gradient is the gradient of the discretised loss
    assert abs(m["grad_pnde_rtol1e-08"] - m["grad_bptt_leapfrog"]) < 0.3 * abs(
        m["grad_bptt_leapfrog"]
    )


def test_reversible_time_counts_from_the_end():
    t = np.arange(11.0)
    forward = np.zeros(11)
    backward = np.r_[[5.0] * 4, [0.0] * 7]  # off track before t = 4
    assert reversible_time(t, forward, backward, 1.0) == 7.0
    assert reversible_time(t, forward, forward, 1.0) == 10.0


def test_gaussian_smoothing_of_a_step_is_the_normal_cdf():
    from scipy.stats import norm

    grid = np.linspace(-10, 10, 2001)
    smooth = gaussian_smooth(grid, (grid > 0).astype(float), 2.0)
    np.testing.assert_allclose(smooth[800:1201], norm.cdf(grid[800:1201] / 2.0), atol=2e-3)
