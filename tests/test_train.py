from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.estimators import bptt, es
from bbpes.learners import AbstractLearner, GradientLearner
from bbpes.runs import RunDir
from bbpes.train import train


def loss(params, target):
    return jnp.sum((params - target) ** 2)


def batch(i):
    """Data that depends on the step only, as the loop requires."""
    return (jnp.full(3, 1.0 + 0.01 * (i % 5)),)


def make_learner():
    return GradientLearner(es(loss, 0.05, 20), optax.adam(0.05))


def test_gradient_learner_reduces_the_loss():
    for estimator in (bptt(loss), es(loss, 0.05, 20)):
        result = train(
            GradientLearner(estimator, optax.adam(0.1)),
            jnp.zeros(3),
            jax.random.key(0),
            steps=60,
            batch=batch,
            progress="off",
        )
        assert result.history[-1]["loss"] < 0.05 * result.history[0]["loss"]
        assert len(result.history) == 60 and result.stopped is None


class Interrupt(Exception):
    pass


def test_resume_after_a_kill_gives_the_uninterrupted_result(tmp_path):
    full = train(
        make_learner(),
        jnp.zeros(3),
        jax.random.key(1),
        steps=30,
        batch=batch,
        run=RunDir(tmp_path / "a"),
        checkpoint_every=4,
        progress="off",
    )

    def killing_batch(i):
        if i == 17:
            raise Interrupt
        return batch(i)

    run = RunDir(tmp_path / "b")
    with pytest.raises(Interrupt):
        train(
            make_learner(),
            jnp.zeros(3),
            jax.random.key(1),
            steps=30,
            batch=killing_batch,
            run=run,
            checkpoint_every=4,
            progress="off",
        )
    steps_before = [
        json.loads(line)["step"] for line in run.file("history.jsonl").read_text().splitlines()
    ]
    assert steps_before == list(range(1, 18)) or steps_before == list(range(1, 17))
    resumed = train(
        make_learner(),
        jnp.zeros(3),
        jax.random.key(1),
        steps=30,
        batch=batch,
        run=run,
        checkpoint_every=4,
        resume=True,
        progress="off",
    )
    np.testing.assert_array_equal(resumed.params, full.params)
    a = [(r["step"], r["loss"]) for r in RunDir(tmp_path / "a").read_history()]
    b = [(r["step"], r["loss"]) for r in run.read_history()]
    assert a == b and len(b) == 30


def test_evaluation_is_recorded_before_during_and_after():
    result = train(
        make_learner(),
        jnp.zeros(3),
        jax.random.key(0),
        steps=10,
        batch=batch,
        evaluate=lambda p: {"accuracy": float(-loss(p, 1.0))},
        eval_every=4,
        progress="off",
    )
    evaluated = [r["step"] for r in result.history if "accuracy" in r]
    assert evaluated == [0, 4, 8, 10]


class Exploding(AbstractLearner):
    """A rule that is not a gradient, and that produces NaN params."""

    def init(self, params):
        return State(params)

    def step(self, state, key, *batch):
        return State(state.params * jnp.nan), {"loss": jnp.sum(state.params)}


class State(eqx.Module):
    params: jax.Array


def test_nonfinite_updates_are_rejected_and_training_stops():
    result = train(
        Exploding(), jnp.ones(2), jax.random.key(0), steps=100, max_nonfinite=5, progress="off"
    )
    np.testing.assert_array_equal(result.params, jnp.ones(2))
    assert len(result.history) == 5 and all(r["nonfinite"] for r in result.history)
    assert "non-finite" in result.stopped


def test_gradient_learner_skips_nan_gradients():
    nan_sometimes = lambda p, flag: jnp.where(flag, jnp.nan, 1.0) * jnp.sum(p**2)
    learner = GradientLearner(bptt(nan_sometimes), optax.sgd(0.1))
    result = train(
        learner,
        jnp.ones(2),
        jax.random.key(0),
        steps=4,
        batch=lambda i: (jnp.array(i % 2 == 1),),
        progress="off",
    )
    assert [r["nonfinite"] for r in result.history] == [False, True, False, True]
    np.testing.assert_allclose(result.params, jnp.ones(2) * 0.8**2)
