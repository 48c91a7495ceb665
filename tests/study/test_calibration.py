"""The study's calibration: every signal of a regime is timed in interleaved rounds
(a load change falls on all alike), a step too big for memory is never run, and a
stored calibration is read back, not measured again."""

import itertools

import pytest

from bbpes.runs import RunDir
from bbpes.study import grid
from bbpes.study.regimes import regimes


class _Compiled:
    compile_seconds, peak_bytes = 0.5, 1234


def test_rounds_interleave_the_signals_and_take_the_fastest_of_each():
    log = []
    ticks = itertools.count()
    calls = {
        name: (
            _Compiled(),
            lambda r, n=name: log.append(f"{n} step {r}"),
            lambda n=name: log.append(f"{n} forward"),
        )
        for name in ("a", "b")
    }
    out = grid.interleaved_calibration(calls, repeats=2, clock=lambda: float(next(ticks)))
    warm = ["a step 0", "a forward", "b step 0", "b forward"]
    rounds = [f"{n} {part}" for r in (1, 2) for n in "ab" for part in (f"step {r}", "forward")]
    assert log == warm + rounds
    assert out["a"] == {
        "step_seconds": 1.0,  # each timed call spans one tick of the fake clock
        "forward_seconds": 1.0,
        "compile_seconds": 0.5,
        "peak_bytes": 1234,
    }
    assert set(out) == {"a", "b"}


@pytest.fixture(scope="module")
def problem():
    return regimes()["case_a"].build("tiny")


def test_a_step_bigger_than_the_limit_is_not_run_until_it_fits_and_stored_ones_are_reused(
    problem, tmp_path, monkeypatch
):
    run = RunDir(tmp_path / "run")
    out = grid.calibrate_regime(problem, ["es", "bptt"], run, "case_a", memory_limit=1.0)
    assert out["es"]["step_seconds"] is None and out["es"]["peak_bytes"] > 1
    assert out["bptt"]["step_seconds"] is None
    fits = grid.calibrate_regime(
        problem, ["es"], RunDir(tmp_path / "fits"), "case_a", memory_limit=1e12
    )
    assert fits["es"]["step_seconds"] > 0 and fits["es"]["forward_seconds"] > 0

    def refuse(*args, **kwargs):
        raise AssertionError("a stored calibration was measured again")

    resumed = grid.calibrate_regime(problem, ["es"], run, "case_a", memory_limit=1e12)
    assert resumed["es"]["step_seconds"] > 0  # it fits now: timed, and stored
    monkeypatch.setattr(grid, "calibrate_together", refuse)
    again = grid.calibrate_regime(problem, ["es", "bptt"], run, "case_a", memory_limit=1.0)
    assert again == {"es": resumed["es"], "bptt": out["bptt"]}
