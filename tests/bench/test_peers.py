"""`bbpes bench peers`: the pure-Python bookkeeping here; each peer's part at a tiny size
(slow, needs `.venv-peers` from `make peers`)."""

from __future__ import annotations

import numpy as np
import pytest

from bbpes.bench import peers
from bbpes.bench.peers import (
    best_so_far,
    compare_values,
    crossings,
    jittered,
    to_tolerance,
    trace_agreement,
)


def test_registered():
    from bbpes.bench import registry

    assert "peers" in registry()


def test_best_so_far_follows_the_lowest_loss():
    truth = (1.0, 2.0)
    log = [
        [0.1, 5.0, 1, 1.5, 2.0],  # error 0.5
        [0.2, 6.0, 2, 1.0, 2.0],  # exact but a worse loss: not the best point
        [0.3, 1.0, 3, 1.005, 1.99],  # error 0.005
    ]
    curve = best_so_far(log, truth)
    assert [r["error"] for r in curve] == pytest.approx([0.5, 0.5, 0.005])
    assert [r["loss"] for r in curve] == [5.0, 5.0, 1.0]
    reached = to_tolerance(curve, 0.01)
    assert reached["success"] and reached["evaluations_to_tolerance"] == 3
    assert reached["seconds_to_tolerance"] == 0.3 and reached["evaluations"] == 3
    missed = to_tolerance(curve[:2], 0.01)
    assert not missed["success"] and missed["seconds_to_tolerance"] is None
    assert missed["final_max_relative_error"] == pytest.approx(0.5)


def test_trace_agreement_and_crossings():
    dt = 0.5
    v = np.array([-10.0, 10.0, -10.0, -10.0, 10.0])
    np.testing.assert_allclose(crossings(v, dt), [0.25, 1.75])
    same = trace_agreement(v, v, dt)
    assert same["rmse_mV"] == 0.0 and same["max_spike_shift_ms"] == 0.0 and same["spikes"] == 2
    fewer = trace_agreement(np.full(5, -10.0), v, dt)
    assert fewer["spikes"] == 0 and fewer["max_spike_shift_ms"] is None


def test_jittered_keeps_the_truth_first_and_stays_in_range():
    values = jittered(50, 0, (1.0, 2.0), spread=0.1)
    assert values.shape == (50, 2)
    np.testing.assert_array_equal(values[0], [1.0, 2.0])
    assert np.all(np.abs(values / [1.0, 2.0] - 1) <= 0.1)


def test_compare_values_counts_definedness():
    ours = {"Spikecount": np.array([3.0, np.nan, 2.0])}
    theirs = {"Spikecount": [3.0, 1.0, 4.0]}
    row = compare_values(ours, theirs)["Spikecount"]
    assert row["both_defined"] == 2 and row["only_one_defined"] == 1
    assert row["max_relative_difference"] == pytest.approx(0.5)


def test_unknown_part_is_refused(tmp_path):
    from bbpes.errors import ConfigError

    fake = tmp_path / "python"
    fake.write_text("")
    with pytest.raises(ConfigError, match="unknown part"):
        peers.run({**peers.DEFAULTS, "part": "nope", "peers_python": str(fake)})


def _peers_or_skip():
    python = peers.ROOT / ".venv-peers" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no peers virtualenv at {python} (make peers)")
    return python


TINY = {
    **peers.DEFAULTS,
    "repeat": 1,
    "population": 4,
    "neuron_sims": 1,
    "processes": 2,
    "traces": 4,
    "seeds": 1,
    "evaluations": 20,
}


def test_a_recorded_run_is_read_back_not_rerun(tmp_path, monkeypatch):
    """`record`: a run of the same problem, tool, seed and settings is read back from
    the file; another setting (or seed) runs; a torn last line is ignored."""
    from bbpes.bench import peers_fit

    config = {**peers.DEFAULTS, "problems": ["simplecell"], "tools": ["bbpes"], "seeds": 2}
    config |= {"record": str(tmp_path / "runs.jsonl"), "figure": ""}
    ran = []

    def fake_bbpes_run(cfg, problem, seed):
        ran.append((seed, cfg["bbpes_sigma"]))
        return {"log": [[0.1 * seed, 1.0, 11, 1.0, 1.0]]}

    monkeypatch.setattr(peers_fit, "bbpes_run", fake_bbpes_run)
    first = peers_fit.fit_part(config, python=None)
    assert ran == [(0, 1.0), (1, 1.0)]
    with open(config["record"], "a") as f:
        f.write('{"problem": "simplecell", "tool": "bb')  # a run killed while writing
    again = peers_fit.fit_part(config, python=None)
    assert ran == [(0, 1.0), (1, 1.0)]  # both read back
    assert again["problems"]["simplecell"]["summary"] == first["problems"]["simplecell"]["summary"]
    peers_fit.fit_part({**config, "bbpes_sigma": 0.5}, python=None)
    assert ran[2:] == [(0, 0.5), (1, 0.5)]  # other settings: run
    peers_fit.fit_part({**config, "bbpes_sigma": 0.5}, python=None)
    assert len(ran) == 4  # recorded after the torn line, on lines of their own


@pytest.mark.slow
def test_sim_part_tiny():
    out = peers.sim_part(TINY, _peers_or_skip())
    for tool in ("neuron", "neuron_pool", "jaxley_f32", "jaxley_f64", "bbpes_f32", "bbpes_f64"):
        assert out["tools"][tool]["sims_per_s"] > 0
    # the same cell: float64 traces agree with NEURON's to rounding
    assert out["traces"]["bbpes_f64"]["rmse_mV"] < 1e-6
    assert out["traces"]["jaxley_f64"]["rmse_mV"] < 1e-6
    assert out["traces"]["bbpes_f32"]["max_spike_shift_ms"] < 0.05
    assert out["bbpes_f32_over_jaxley_f32"] > 0


@pytest.mark.slow
def test_features_part_tiny():
    out = peers.features_part(TINY, _peers_or_skip())
    assert out["bbpes_over_efel"] > 0
    assert out["values"]["Spikecount"]["both_defined"] == 4
    assert out["values"]["Spikecount"]["max_relative_difference"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ibea", "cma"])
def test_bluepyopt_run_tiny(method):
    run = peers.bluepyopt_run(TINY, _peers_or_skip(), "simplecell", method, 0)
    assert "error" not in run, run.get("error")
    assert len(run["log"]) == 20 and len(run["log"][0]) == 3 + 2  # seconds, loss, k, 2 params


@pytest.mark.slow
def test_bbpes_run_tiny():
    run = peers.bbpes_run({**TINY, "evaluations": 33}, "simplecell", 0)
    assert run["log"] and len(run["log"][0]) == 3 + 2
    curve = best_so_far(run["log"], (0.12, 0.036))
    assert to_tolerance(curve, 0.01)["evaluations"] <= 33


@pytest.mark.slow
def test_jaxley_run_tiny():
    config = {**TINY, "jaxley_starts": 1, "jaxley_steps": 2}
    run = peers.jaxley_run(config, _peers_or_skip(), "simplecell", 0)
    assert "error" not in run, run.get("error")
    assert len(run["log"]) == 2 and run["cost_per_step"] > 0
