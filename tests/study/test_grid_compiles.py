"""One compilation per (regime, signal): the step sizes and sigma are data of the
compiled step (`bbpes.learners.Tunable`), so calibration, every tuning value and every
seed run one executable, with the numbers of a learner compiled afresh."""

import logging

import jax
import numpy as np
import pytest

from bbpes.runs import RunDir
from bbpes.signals import make_learner
from bbpes.study import grid
from bbpes.study.regimes import regimes
from bbpes.train import train


@pytest.fixture(scope="module")
def problem():
    return regimes()["case_a"].build("tiny")


class _Compiles(logging.Handler):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def emit(self, record):
        message = record.getMessage()
        self.steps += message.startswith("Finished XLA compilation of jit(_guarded)")


def test_a_three_value_sweep_and_two_seeds_compile_the_step_once(problem, tmp_path):
    counter, logger = _Compiles(), logging.getLogger("jax")
    logger.addHandler(counter)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            row = grid.run_signal(
                regimes()["case_a"],
                problem,
                "es",
                budget=0.05,
                seeds=2,
                sweep=3,
                run_dir=RunDir(tmp_path),
            )
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)
    assert len(row["validation"]) == 3 and len(row["metric_per_seed"]) == 2
    assert counter.steps == 1


@pytest.mark.parametrize("method", ["es", "bptt"])
def test_the_reused_executable_gives_the_numbers_of_a_fresh_learner(problem, method):
    knob = regimes()["case_a"].signals[method].knob
    step = grid.compiled_step(problem, method)
    for run, factor in ((0, 3.0), (1, 1 / 3)):
        settings = {**problem.settings, knob: problem.settings[knob] * factor}
        fresh = make_learner(
            method, problem.forms, grid.default_optimizer(method, settings), settings
        )
        learner = step.learner.with_hyper(**{knob: settings[knob]})
        results = [
            train(
                learner,
                problem.init(run),
                jax.random.key(run),
                steps=8,
                batch=lambda i, run=run: problem.batch(run, i),
                progress="off",
                step=compiled,
            )
            for learner, compiled in ((fresh, None), (learner, step))
        ]
        losses = [[r["loss"] for r in result.history] for result in results]
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
        assert losses[1][-1] != losses[1][0]  # it trained


@pytest.mark.slow  # 20 s; CI runs it (.ci/run)
@pytest.mark.filterwarnings("ignore:Explicitly requested dtype float64")  # the spiral's numpy times
def test_the_spiral_forward_gradient_and_bptt_compile_their_steps():
    """The spiral's forward gradient needs the ODE solved in forward mode (jax.jvp cannot
    run through the reverse-mode adjoint's custom_vjp), and its BPTT the default: each
    of them gets the forms it can differentiate."""
    with jax.enable_x64(False):  # as the study runs it (the suite's default is x64)
        problem = regimes()["spiral"].build("tiny")
        assert not problem.x64
        for method in ("forward_gradient", "bptt"):  # forward mode; reverse mode
            step = grid.compiled_step(problem, method)
            assert step.peak_bytes is None or step.peak_bytes > 0
