"""`bbpes.calibration`: a wall budget as step counts, timed one way for every caller.

The statistic (on a fake clock): every learner warmed up once, then timed in rounds
that interleave the learners, each learner's seconds the fastest of its rounds; the
budget as whole steps; and the study's grid and `nne-vs-es` both time through it."""

from __future__ import annotations

import json

import jax.numpy as jnp
import optax
import pytest

from bbpes import calibration
from bbpes.errors import ConfigError
from bbpes.estimators.backprop import bptt
from bbpes.experiments import nne_vs_es
from bbpes.learners import GradientLearner
from bbpes.runs import RunDir
from bbpes.signals import LossForms
from bbpes.study import grid
from bbpes.study.problem import Problem


class _Compiled:
    compile_seconds, peak_bytes = 0.5, 1234


class FakeClock:
    """A clock that each timed call advances by its own duration."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds


def test_rounds_interleave_the_learners_and_keep_the_fastest_of_each():
    clock, log = FakeClock(), []
    durations = {  # seconds of step r (binary fractions: exact sums); a's forward: 0.375 s
        "a": lambda r: {0: 9.0, 1: 2.0, 2: 1.5, 3: 3.0}[r],
        "b": lambda r: {0: 9.0, 1: 0.75, 2: 1.0, 3: 0.875}[r],
        "c": lambda r: 9.0 if r == 0 else 0.0625 if r <= 4 else 0.125,  # cheap: in bursts
    }

    def step(name):
        def call(r):
            log.append(f"{name} step {r}")
            clock.spend(durations[name](r))

        return call

    def forward():
        log.append("a forward")
        clock.spend(0.375)

    calls = {
        "a": (_Compiled(), step("a"), forward),
        "b": (_Compiled(), step("b"), None),  # no forward pass: not timed
        "c": (_Compiled(), step("c"), None),
    }
    out = calibration.interleaved_calibration(calls, repeats=3, clock=clock, min_seconds=0.25)
    warm = ["a step 0", "a forward", "b step 0", "c step 0"]
    rounds = [
        entry
        for r, c_steps in ((1, (1, 2, 3, 4)), (2, (5, 6)), (3, (7, 8)))  # c: >= 0.25 s a round
        for entry in (f"a step {r}", "a forward", f"b step {r}", *(f"c step {k}" for k in c_steps))
    ]
    assert log == warm + rounds
    assert out["a"] == {
        "step_seconds": 1.5,  # the fastest round, not the warm-up nor the mean
        "forward_seconds": 0.375,
        "compile_seconds": 0.5,
        "peak_bytes": 1234,
    }
    assert out["b"]["step_seconds"] == 0.75
    assert out["b"]["forward_seconds"] is None
    assert out["c"]["step_seconds"] == 0.0625  # the mean of its fastest burst


@pytest.mark.parametrize(
    "budget, step_seconds, steps", [(10.0, 0.3, 33), (10.0, 2.5, 4), (1.0, 5.0, 1)]
)
def test_a_budget_is_whole_steps_and_at_least_one(budget, step_seconds, steps):
    assert calibration.budget_steps(budget, step_seconds) == steps


@pytest.fixture
def timed(monkeypatch):
    """The names that `interleaved_calibration` timed (through `calibration.block`)."""
    seen = []
    real = calibration.block

    def spy(tree):
        seen.append(tree)
        return real(tree)

    monkeypatch.setattr(calibration, "block", spy)
    return seen


def test_the_study_and_nne_vs_es_time_their_steps_with_the_same_calibration(
    timed, monkeypatch, tmp_path
):
    assert grid.interleaved_calibration is calibration.interleaved_calibration

    def loss(params):
        return jnp.sum(params**2)

    problem = Problem(
        forms=LossForms(loss=loss),
        init=lambda run: jnp.ones(3),
        batch=None,
        validate=loss,
        test=loss,
        settings={},
    )
    learner = GradientLearner(bptt(loss), optax.sgd(0.1))
    study = grid.calibrate_together(problem, {"bptt": learner}, repeats=2)
    assert study["bptt"]["step_seconds"] > 0 and timed
    timed.clear()

    def fake_call(config, data, net, method):
        return _Compiled(), lambda r: jnp.ones(2) * r, None

    monkeypatch.setattr(nne_vs_es, "timed_call", fake_call)
    config = {"seconds": 10.0, "calibration_steps": 4}
    run = RunDir(tmp_path / "run")
    out = nne_vs_es.calibrate(config, None, None, ["nne", "es"], {}, run)
    assert timed and set(out) == {"nne", "es"}
    assert out["es"]["steps"] == calibration.budget_steps(10.0, out["es"]["step_seconds"])
    assert json.loads(run.file(nne_vs_es.CALIBRATION).read_text()) == out


def test_nne_vs_es_resumes_with_its_stored_step_counts_of_either_format(timed, tmp_path):
    run = RunDir(tmp_path / "run")
    old = {"nne": {"step_seconds": 0.02, "compile_seconds": 3.0, "steps": 500}}  # the median's
    run.write_json(nne_vs_es.CALIBRATION, old)
    stored = nne_vs_es.stored_calibration(run, resume=True)
    kept = nne_vs_es.calibrate({}, None, None, ["nne"], stored, run)
    assert kept == old and not timed  # nothing timed again
    assert nne_vs_es.stored_calibration(run, resume=False) == {}  # a new run measures
    run.write_json(nne_vs_es.CALIBRATION, {"nne": {"seconds": 0.02}})
    with pytest.raises(ConfigError, match="not an nne-vs-es calibration") as error:
        nne_vs_es.stored_calibration(run, resume=True)
    assert "\n" not in str(error.value)
