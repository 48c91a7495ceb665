"""Every learner resumes bit-exactly: k steps with a checkpoint, then resumed to n,
equal the n steps of an uninterrupted run (state and history)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.estimators import es
from bbpes.learners import (
    NNE,
    Dopamine,
    Ensemble,
    GradientLearner,
    MetropolisMutation,
    Repeated,
)
from bbpes.runs import RunDir
from bbpes.train import compile_step, train

K, N = 3, 6


def quadratic(params, *batch):
    return jnp.sum((params - jnp.arange(params.shape[-1])) ** 2)


def nne_case():
    def fitness(genotypes, shift):
        value = jnp.tanh(genotypes @ jnp.array([0.5, -0.2, 0.9, 0.1]) + shift) + 1.0
        return value, -value

    learner = NNE(fitness, population=8, epsilon=0.5, chunk=4)
    return learner, jnp.full(4, 0.5), lambda i: (jnp.asarray(0.1 * (i % 3)),)


def dopamine_case():
    def batch(i):
        key = jax.random.fold_in(jax.random.key(5), i)
        features = jnp.maximum(jax.random.normal(key, (4, 6)), 0.0)
        return features, jax.random.randint(jax.random.fold_in(key, 1), (4,), 0, 3)

    return Dopamine("prose", "increase", epsilon0=2.0, epsilon1=0.1), jnp.zeros((6, 3)), batch


def mutation_case(adaptive):
    learner = MetropolisMutation(quadratic, 0.1, 20.0, population=4, adaptive=adaptive)
    return learner, jnp.zeros(3), None


def ensemble_case():
    def make(h):
        return GradientLearner(es(quadratic, h["sigma"], 4), optax.adam(0.05))

    learner = Ensemble(make, {"sigma": jnp.array([0.1, 0.01]), "seed": jnp.array([0, 1])})
    return learner, jnp.zeros((2, 3)), None


def repeated_case():
    inner = MetropolisMutation(quadratic, 0.1, math.inf, population=3)
    return Repeated(inner, 4), jnp.zeros(3), None


CASES = {
    "nne": nne_case,
    "dopamine": dopamine_case,
    "mutation": lambda: mutation_case(False),
    "mutation_adaptive": lambda: mutation_case(True),
    "ensemble": ensemble_case,
    "repeated": repeated_case,
}


def assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def losses(run):
    return [(r["step"], r["loss"]) for r in run.read_history()]


@pytest.mark.parametrize("name", list(CASES))
def test_resumed_training_equals_the_uninterrupted_run(tmp_path, name):
    learner, params, batch = CASES[name]()
    key = jax.random.key(11)
    options = dict(batch=batch, checkpoint_every=2, progress="off")
    full = train(learner, params, key, steps=N, run=RunDir(tmp_path / "full"), **options)
    run = RunDir(tmp_path / "resumed")
    train(learner, params, key, steps=K, run=run, **options)
    resumed = train(learner, params, key, steps=N, run=run, resume=True, **options)
    assert_same_state(resumed.state, full.state)
    assert losses(run) == losses(RunDir(tmp_path / "full")) and len(losses(run)) == N
    # the learner moved at all (a resume that restarts from scratch would not be equal)
    assert not np.array_equal(np.asarray(learner.params(full.state)), np.asarray(params))


def test_resume_with_an_ahead_of_time_compiled_step(tmp_path):
    learner, params, _ = ensemble_case()
    key = jax.random.key(2)
    step = compile_step(learner, params, key)
    full = train(learner, params, key, steps=N, step=step, progress="off")
    run = RunDir(tmp_path / "resumed")
    train(learner, params, key, steps=K, run=run, step=step, progress="off")
    resumed = train(learner, params, key, steps=N, run=run, resume=True, step=step, progress="off")
    assert_same_state(resumed.state, full.state)
