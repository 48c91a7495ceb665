"""`bbpes run signals` on a tiny grid: the protocol (equal budget, selection on
validation, fresh seeds, same starting point for every signal) and resume."""

import json

import numpy as np
import pytest

from bbpes.experiments.evidence import EXPERIMENT
from bbpes.framework.runner import run_experiment

TINY = {
    "scale": "tiny",
    "regimes": "case_a",
    "signals": "es,bptt",
    "sweep": "2",
    "seeds": "3",
    "budget": "0.4",
}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "run"
    run, metrics = run_experiment("signals", TINY, out=out)
    return run, metrics, json.loads((out / "leaderboard.json").read_text())


def test_every_signal_gets_the_same_calibrated_budget(grid):
    _, _, board = grid
    for row in board["rows"]:
        assert row["steps"] == max(1, int(0.4 // row["step_seconds"]))
        assert row["steps"] * row["step_seconds"] <= 0.4 + row["step_seconds"]
    es = next(r for r in board["rows"] if r["signal"] == "es")
    assert es["forward_passes_per_step"] == 5.0  # 4 samples + the centre


def test_the_setting_is_selected_on_validation_and_reported_on_fresh_seeds(grid):
    _, _, board = grid
    for row in board["rows"]:
        assert len(row["validation"]) == 2
        best = int(np.argmax(row["validation"]))  # first of the best, as the grid picks
        base = EXPERIMENT.defaults[row["knob"]]  # the evidence experiment's lr / lr_es
        assert row["selected"] == pytest.approx(base * (1.0, 1 / 3)[best])
        assert len(row["curves"]) == 3 and len(row["metric_per_seed"]) == 3
        assert row["metric_mean"] == pytest.approx(np.mean(row["metric_per_seed"]))


def test_every_signal_starts_each_seed_from_the_same_network(grid):
    _, _, board = grid
    es, bptt = (next(r for r in board["rows"] if r["signal"] == s) for s in ("es", "bptt"))
    for a, b in zip(es["curves"], bptt["curves"]):
        assert a[0]["step"] == b[0]["step"] == 0
        assert a[0]["accuracy"] == b[0]["accuracy"]
    starts = {c[0]["accuracy"] for c in es["curves"]}
    assert len(starts) > 1 or len(es["curves"]) == 1  # the seeds are different networks


def test_outputs_and_resume_does_not_retrain(grid, capsys):
    run, metrics, board = grid
    assert (run.path / "leaderboard.md").read_text().startswith("# Signals leaderboard")
    assert (run.path / "case_a.png").stat().st_size > 1000
    assert "verdict_case_a" in metrics
    before = (run.path / "history.jsonl").read_text()
    capsys.readouterr()
    _, again = run_experiment("signals", None, out=run.path, resume=True)
    terminal = capsys.readouterr().err  # the verdicts and what the run leaves out
    assert f"verdict case_a: {metrics['verdict_case_a']}" in terminal
    assert "This run leaves out part of the full study" in terminal
    assert (run.path / "history.jsonl").read_text() == before
    assert json.loads((run.path / "leaderboard.json").read_text())["rows"] == board["rows"]
    assert again["metric_case_a_es"] == metrics["metric_case_a_es"]


def test_a_partial_grid_says_what_it_leaves_out_of_the_full_study(grid):
    run, _, board = grid
    left = board["left_out"]
    assert "case_b" in left["regimes"] and "case_a" not in left["regimes"]
    assert "bptt_checkpointed" in left["signals"]["case_a"]
    assert not {"es", "bptt"} & set(left["signals"]["case_a"])
    assert left["settings"]["scale"] == ["tiny", "reduced"]
    assert left["settings"]["sweep"] == [2, 3] and left["full"] == "bbpes run signals"
    text = (run.path / "leaderboard.md").read_text()
    assert "This run leaves out part of the full study" in text
    assert "`bbpes run signals`" in text


def test_quick_is_one_regime_with_the_strongest_signals_under_the_full_protocol():
    from bbpes.experiments.study import EXPERIMENT as STUDY
    from bbpes.experiments.study import left_out
    from bbpes.signals import signal
    from bbpes.study.regimes import regimes

    full, quick = STUDY.config(), STUDY.config(quick=True)
    assert left_out(full) == {}  # the full study leaves nothing out
    assert quick["regimes"] == ["case_b"] and quick["scale"] == "quick"
    # the same protocol: 3 tuning values on validation, 3 seeds, the scale's budget
    assert (quick["sweep"], quick["seeds"], quick["budget"]) == (3, 3, 0.0)
    case_b = regimes()["case_b"]
    assert set(quick["signals"]) <= set(case_b.signals)
    assert {signal(m).family for m in quick["signals"]} == {"forward", "backprop"}
    left = left_out(quick)
    assert set(left["regimes"]) == set(regimes()) - {"case_b"}
    assert left["signals"]["case_b"] == [m for m in case_b.signals if m not in quick["signals"]]
    assert left["settings"] == {"scale": ["quick", "reduced"]}


def test_a_quick_run_resumes_with_or_without_quick(tmp_path):
    from bbpes.experiments.study import EXPERIMENT as STUDY
    from bbpes.framework.runner import prepare
    from bbpes.runs import RunDir

    RunDir(tmp_path).write_json(
        "config.json", {"experiment": "signals", **STUDY.config(quick=True)}
    )
    for quick in (False, True):
        config, _ = prepare("signals", quick=quick, out=tmp_path, resume=True)
        assert config["regimes"] == ["case_b"] and config["quick"] is True


def test_the_leaderboard_states_the_levels_reached_without_learning(grid):
    run, _, board = grid
    levels = board["references"]["case_a"]
    assert 0.3 < levels["chance"] < 0.5  # three classes, drawn about evenly
    assert levels["chance"] <= levels["last input"] <= 1.0
    assert "Without learning (test set): chance" in (run.path / "leaderboard.md").read_text()


def test_signals_that_do_not_fit_are_skipped_with_their_bytes_and_never_run(tmp_path):
    out = tmp_path / "small"
    run_experiment("signals", {**TINY, "memory_limit_gb": "1e-6"}, out=out)
    board = json.loads((out / "leaderboard.json").read_text())
    assert all("needs" in row["skipped"] for row in board["rows"])
    assert all(row["peak_bytes"] > 1000 and row["step_seconds"] is None for row in board["rows"])
    assert "skipped: needs" in (out / "leaderboard.md").read_text()
    assert not (out / "history.jsonl").exists() or not (out / "history.jsonl").read_text()


def test_a_stored_study_resumes_from_its_cells_without_training(tmp_path):
    """docs/data/signals-case-b-60s (the committed 60-s case-B study): resumed from a
    copy, it trains nothing (every cell is stored), writes no training history, and its
    leaderboard reports the stored seeds' final metrics."""
    import shutil
    from pathlib import Path

    stored = Path(__file__).parents[2] / "docs" / "data" / "signals-case-b-60s"
    out = tmp_path / "run"
    shutil.copytree(stored, out)
    _, metrics = run_experiment("signals", None, out=out, resume=True)
    assert not (out / "history.jsonl").exists() or not (out / "history.jsonl").read_text()
    cells = out / "study" / "case_b"
    for method in ("es", "bptt"):
        finals = [json.loads((cells / method / f"seed{i}.json").read_text())["final"]
                  for i in (1, 2, 3)]  # fmt: skip
        assert metrics[f"metric_case_b_{method}"] == pytest.approx(np.mean(finals))
