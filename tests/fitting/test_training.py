"""`bbpes.fitting.training`: the configuration of a fit at its defaults (`bbpes run
fit`'s), checked changes, one `Fit` per problem and process, and a step's cost."""

from __future__ import annotations

import pytest

from bbpes.errors import ConfigError
from bbpes.experiments.fit import EXPERIMENT
from bbpes.fitting import training


def test_the_defaults_are_the_fit_experiments():
    config = training.defaults()
    assert EXPERIMENT.defaults == config
    assert training.defaults(samples=6, method="es")["samples"] == 6


def test_a_bad_change_is_a_one_line_error():
    with pytest.raises(ConfigError, match="evaluations must be >= 1"):
        training.defaults(evaluations=0)
    with pytest.raises(ConfigError, match="bad value 'nope' for 'problem'"):
        training.defaults(problem="nope")


def test_a_problem_is_built_once_per_process():
    config = training.defaults(problem="simplecell")
    assert training.build(config) is training.build(dict(config))
    assert training.build(config) is not training.build({**config, "noise": 0.5})


def test_a_step_costs_every_start_and_the_scored_centre():
    run = training.FitRun(records=[], cost=6.0, timings={}, stopped=None, starts=2)
    assert run.per_step == 14.0
