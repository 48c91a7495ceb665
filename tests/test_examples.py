"""Every script in examples/ runs, at tiny sizes (BBPES_EXAMPLE_TINY=1), as a user runs
it: a fresh process in a directory of its own, and does what it says."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG = b"\x89PNG\r\n\x1a\n"
# Ray starts its daemons with subprocess (fork, then exec at once): not the fork JAX warns about.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")


@pytest.fixture
def run_example(run_script):
    """`run_example(name, cwd, *args)`: the stdout of `examples/NAME args` run at tiny
    sizes in `cwd`."""

    def run(name: str, cwd: Path, *args: str) -> str:
        env = {**os.environ, "BBPES_EXAMPLE_TINY": "1"}
        return run_script([sys.executable, str(EXAMPLES / name), *args], cwd, env).stdout

    return run


def losses(out: str, name: str) -> tuple[float, float]:
    """`(first, last)` from a line `NAME: loss FIRST -> LAST...`."""
    match = re.search(rf"^{re.escape(name)}: loss (\S+) -> ([^,\s]+)", out, re.M)
    assert match, out
    return float(match.group(1)), float(match.group(2))


def test_every_example_is_tested():
    tested = {"own_cell.py", "own_loss.py", "own_study.py", "ray_simulator.py", "read_history.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_own_cell_trains_by_es_and_bptt(run_example, tmp_path):
    out = run_example("own_cell.py", tmp_path)
    for name in ("es", "bptt"):
        first, last = losses(out, name)
        assert last < first


def test_own_loss_trains_by_es_and_an_evosax_strategy(run_example, tmp_path):
    out = run_example("own_loss.py", tmp_path)
    for name in ("es + adam", "evosax SNES"):
        first, last = losses(out, name)
        assert last < first


@pytest.mark.slow
def test_own_study_puts_a_users_problem_and_signal_on_the_leaderboard(run_example, tmp_path):
    """The tiny study (4 signals x 3 seeds at 0.25 s each): about 35 s on 2 cores."""
    out = run_example("own_study.py", tmp_path)
    board = json.loads((tmp_path / "own-study" / "leaderboard.json").read_text())
    rows = {r["signal"]: r for r in board["rows"]}
    assert set(rows) == {"bptt", "es", "evosax:SNES", "own_study:SIGN_ES"}
    assert rows["own_study:SIGN_ES"]["family"] == "forward" and rows["bptt"]["seeds"] == 3
    for row in rows.values():  # every signal learned: below the starting test MSE
        assert row["metric_mean"] < 0.05
    assert "| own_study:SIGN_ES | forward |" in out and "No target" in out
    assert (tmp_path / "own-study" / "oscillation.png").read_bytes().startswith(PNG)


def test_ray_simulator_moves_the_current_towards_the_target(run_example, tmp_path):
    out = run_example("ray_simulator.py", tmp_path)
    first, last = losses(out, "ray es")
    assert first == 16.0  # 6 spikes at 1.6 µA/cm², target 10
    i_app = float(re.search(r"^I = (\S+) µA/cm²", out, re.M).group(1))
    assert i_app > 1.6 and last <= first  # more current, more spikes


def test_read_history_plots_a_run(run_example, tmp_path):
    out = run_example("read_history.py", tmp_path)
    run = tmp_path / "example-run"
    records = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    es_losses = [r["loss"] for r in records if r["label"] == "es" and "loss" in r]
    assert f"es: {len(es_losses)} records, loss {es_losses[0]:.4g} -> {es_losses[-1]:.4g}" in out
    assert (run / "history-loss.png").read_bytes()[:8] == PNG
    again = run_example("read_history.py", tmp_path, str(run), "i_app")  # a given run, a metric
    assert "es: 4 records, i_app 100 ->" in again
    assert (run / "history-i_app.png").read_bytes()[:8] == PNG
