from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.estimators import bptt, es
from bbpes.learners import AbstractLearner, GradientLearner
from bbpes.runs import RunDir
from bbpes.train import compile_step, train


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


def test_resume_after_a_kill_gives_the_uninterrupted_result(cut_and_resumed, tmp_path):
    """Killed in step 18, past the checkpoint of step 16: the resumed run drops the
    records after it and gives the uninterrupted run's params and history."""
    full, resumed = cut_and_resumed(
        make_learner(), jnp.zeros(3), 30, 17, kill=True, batch=batch, checkpoint_every=4
    )
    np.testing.assert_array_equal(resumed.params, full.params)
    a, b = (
        [(r["step"], r["loss"]) for r in RunDir(tmp_path / d).read_history()]
        for d in ("full", "cut")
    )
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


def test_a_step_stopped_by_a_runtime_check_is_rejected_and_training_goes_on():
    """A check inside the compiled step (`eqx.error_if`, as lineax raises on a linear
    solve of a diverged implicit ODE step in the backward pass) rejects that step, keeps
    the old state (Adam's momentum included) and names the check; the run continues."""

    def checked(p, flag):
        p = eqx.error_if(p, flag, "a linear solver returned non-finite output")
        return jnp.sum(p**2)

    learner = GradientLearner(bptt(checked), optax.adam(0.1))
    result = train(
        learner,
        jnp.ones(2),
        jax.random.key(0),
        steps=4,
        batch=lambda i: (jnp.array(i == 1),),
        progress="off",
    )
    assert [r["nonfinite"] for r in result.history] == [False, True, False, False]
    assert result.history[1]["error"] == "a linear solver returned non-finite output"
    assert result.stopped is None
    clean = train(  # the same run without the failing step: three Adam steps
        learner,
        jnp.ones(2),
        jax.random.key(0),
        steps=3,
        batch=lambda i: (jnp.array(False),),
        progress="off",
    )
    np.testing.assert_allclose(result.params, clean.params, rtol=1e-6)


def flaky(kind):
    """An estimator whose step fails where the batch says `bad`: an ES population that
    all diverged (finite centre loss, NaN gradient), or a failed ODE solve as it was
    once reported (inf loss, zero gradient)."""

    def estimate(params, key, target, bad):
        value, grads = jax.value_and_grad(loss)(params, target)
        if kind == "nan_gradient":
            grads = jnp.where(bad, jnp.nan, grads)
        else:
            value, grads = jnp.where(bad, jnp.inf, value), jnp.where(bad, 0.0, grads)
        return value, grads

    return estimate


def assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("kind", ["nan_gradient", "inf_loss_zero_gradient"])
def test_a_rejected_step_moves_neither_params_nor_adam_state(kind):
    learner = GradientLearner(flaky(kind), optax.adam(0.1))
    step = eqx.filter_jit(learner.step)
    target, key = jnp.array([1.0, -2.0, 0.5]), jax.random.key(0)
    good, bad = jnp.array(False), jnp.array(True)
    state, _ = step(learner.init(jnp.zeros(3)), key, target, good)  # momentum now nonzero
    rejected, metrics = step(state, key, target, bad)
    assert not np.isfinite(float(metrics["loss"])) or not np.isfinite(float(metrics["grad_norm"]))
    assert_same_state(rejected, state)  # params, mu, nu and the step count
    after, _ = step(rejected, key, target, good)
    never_bad, _ = step(state, key, target, good)
    assert_same_state(after, never_bad)
    # the loop reports it, and rejects it too
    result = train(
        learner,
        jnp.zeros(3),
        key,
        steps=3,
        batch=lambda i: (target, jnp.array(i == 1)),
        progress="off",
    )
    assert [r["nonfinite"] for r in result.history] == [False, True, False]
    assert_same_state(result.state, after)


class Aux(eqx.Module):
    params: jax.Array
    aux: jax.Array


class BadAux(AbstractLearner):
    """Finite params, but a non-finite learner state (or loss) where told."""

    def init(self, params):
        return Aux(params, jnp.zeros(()))

    def step(self, state, key, bad_aux, bad_loss):
        new = Aux(state.params + 1.0, jnp.where(bad_aux, jnp.nan, state.aux + 1.0))
        return new, {"loss": jnp.where(bad_loss, jnp.nan, 0.0)}


@pytest.mark.parametrize("bad", [(True, False), (False, True)])
def test_the_loop_rejects_the_whole_state_of_any_learner(bad):
    flags = [(False, False), bad, (False, False)]
    result = train(
        BadAux(),
        jnp.zeros(2),
        jax.random.key(0),
        steps=3,
        batch=lambda i: tuple(map(jnp.array, flags[i])),
        progress="off",
    )
    assert [r["nonfinite"] for r in result.history] == [False, True, False]
    np.testing.assert_array_equal(result.params, jnp.full(2, 2.0))
    assert float(result.state.aux) == 2.0


def test_training_seeds_with_one_learner_compiles_once():
    traces = []

    def counted(params, target):
        traces.append(1)  # runs only when JAX traces the loss
        return loss(params, target)

    learner = GradientLearner(bptt(counted), optax.adam(0.05))
    runs = [
        train(learner, p, jax.random.key(s), steps=3, batch=batch, progress="off")
        for s, p in enumerate((jnp.zeros(3), jnp.ones(3), -jnp.ones(3)))
    ]
    assert len(traces) == 1
    assert runs[0].history[0]["compile_seconds"] > 0
    assert [r.history[0]["compile_seconds"] for r in runs[1:]] == [0.0, 0.0]
    assert all("compile_seconds" not in r for run in runs for r in run.history[1:])
    assert not np.array_equal(runs[0].params, runs[1].params)


def test_compile_step_runs_the_same_step_and_reads_its_peak_memory():
    def mean_loss(params, targets):
        return jnp.mean(jnp.sum((params - targets) ** 2, axis=-1))

    learner = GradientLearner(bptt(mean_loss), optax.adam(0.05))
    key = jax.random.key(3)
    small, large = jnp.ones((10, 3)), jnp.ones((10_000, 3))
    step = compile_step(learner, jnp.zeros(3), key, small)
    assert step.compile_seconds > 0
    compiled = train(
        learner, jnp.zeros(3), key, steps=4, batch=lambda i: (small * i,), step=step, progress="off"
    )
    jitted = train(
        learner, jnp.zeros(3), key, steps=4, batch=lambda i: (small * i,), progress="off"
    )
    assert_same_state(compiled.state, jitted.state)
    assert compiled.history[0]["compile_seconds"] == 0.0
    # the targets are an argument of the step: 9,990 more rows of 3 float64s at least
    grown = compile_step(learner, jnp.zeros(3), key, large).peak_bytes - step.peak_bytes
    assert grown >= (10_000 - 10) * 3 * 8
    with pytest.raises(ValueError, match="array leaves only"):  # other code (closures)
        other = GradientLearner(bptt(mean_loss), optax.adam(0.05))
        train(other, jnp.zeros(3), key, steps=1, batch=lambda i: (small,), step=step)


def test_a_batch_that_is_not_a_tuple_is_the_one_data_argument():
    def dict_loss(params, data):
        return jnp.sum((params - data["target"]) ** 2)

    learner = GradientLearner(bptt(loss), optax.adam(0.05))
    as_tuple = train(learner, jnp.zeros(3), jax.random.key(0), steps=3, batch=batch, progress="off")
    as_array = train(
        learner,
        jnp.zeros(3),
        jax.random.key(0),
        steps=3,
        batch=lambda i: batch(i)[0],
        progress="off",
    )
    assert_same_state(as_array.state, as_tuple.state)
    as_dict = train(
        GradientLearner(bptt(dict_loss), optax.adam(0.05)),
        jnp.zeros(3),
        jax.random.key(0),
        steps=3,
        batch=lambda i: {"target": batch(i)[0]},
        progress="off",
    )
    assert_same_state(as_dict.state, as_tuple.state)


def test_one_compiled_step_serves_every_value_of_a_tunable_learner():
    from bbpes.signals import LossForms, make_learner, tunable_learner

    forms = LossForms(loss=loss)
    settings = {"lr": 0.05, "sigma": 0.05, "samples": 20}
    adam = lambda s: optax.adam(s["lr"])
    learner = tunable_learner("es", forms, adam, settings)
    step = compile_step(learner, jnp.zeros(3), jax.random.key(0), *batch(0))
    for lr, sigma in ((0.05, 0.05), (0.2, 0.01)):
        other = learner.with_hyper(lr=lr, sigma=sigma)
        assert step.serves(other)
        reused = train(other, jnp.zeros(3), jax.random.key(1), steps=5, batch=batch, step=step)
        s = {**settings, "lr": lr, "sigma": sigma}
        fresh = train(
            make_learner("es", forms, optax.adam(lr), s),
            jnp.zeros(3),
            jax.random.key(1),
            steps=5,
            batch=batch,
        )
        np.testing.assert_allclose(reused.params, fresh.params, rtol=1e-6)
        assert reused.history[0]["compile_seconds"] == 0.0
    # another static setting (samples) is another program
    assert not step.serves(tunable_learner("es", forms, adam, {**settings, "samples": 10}))
