"""Learners made of learners: `Ensemble` (members under one vmap) and `Repeated` (inner
steps in one scan), each member or inner step guarded on its own."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bbpes.estimators import bptt, es
from bbpes.learners import Ensemble, GradientLearner, Repeated
from bbpes.train import train


def bumpy(params, target):
    """Not quadratic, so the mirrored ES estimate depends on sigma."""
    return jnp.sum((params - target) ** 2) + jnp.sum(jnp.cos(3.0 * params))


def assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_close(a, b):
    """Vmapped and jitted against one eager run: equal up to rounding."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-12)


def member(tree, m):
    return jax.tree.map(lambda x: x[m], tree)


def test_ensemble_members_equal_separate_runs_with_their_own_sigma():
    """One vmapped step over a traced sigma gives what each sigma gives on its own."""
    sigmas, seeds = jnp.array([0.3, 0.03, 0.003]), jnp.array([0, 0, 5])

    def make(h):
        return GradientLearner(es(bumpy, h["sigma"], 6), optax.adam(0.1))

    ensemble = Ensemble(make, {"sigma": sigmas, "seed": seeds})
    params = jnp.stack([jnp.ones(4), jnp.ones(4), -jnp.ones(4)])
    target = jnp.arange(4.0)
    key = jax.random.key(7)
    state = ensemble.init(params)
    step = eqx.filter_jit(ensemble.step)
    for i in range(5):
        state, metrics = step(state, jax.random.fold_in(key, i), jnp.stack([target] * 3))
    assert set(metrics) >= {"loss", "rejected", "loss_0", "loss_2", "grad_norm_1", "rejected_2"}
    assert int(metrics["rejected"]) == 0
    for m in range(3):
        alone = make({"sigma": sigmas[m]})
        s = alone.init(params[m])
        alone_step = eqx.filter_jit(alone.step)
        for i in range(5):
            s, _ = alone_step(s, jax.random.fold_in(jax.random.fold_in(key, i), seeds[m]), target)
        np.testing.assert_allclose(ensemble.params(state)[m], alone.params(s), rtol=1e-6)
    # the sweep really differs between sigmas
    assert not np.allclose(ensemble.params(state)[0], ensemble.params(state)[1])


def nan_where_told(params, target, bad):
    return jnp.where(bad, jnp.nan, 1.0) * jnp.sum((params - target) ** 2)


def test_a_failing_member_keeps_its_state_and_the_others_update():
    make = lambda h: GradientLearner(bptt(nan_where_told), optax.adam(0.1))
    ensemble = Ensemble(make, {"seed": jnp.arange(3)})
    targets = jnp.array([[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5]])
    state = ensemble.init(jnp.zeros((3, 2)))
    key = jax.random.key(0)
    step = eqx.filter_jit(ensemble.step)
    state, _ = step(state, key, targets, jnp.zeros(3, bool))  # Adam's moments nonzero
    new, metrics = step(state, key, targets, jnp.array([False, True, False]))
    assert int(metrics["rejected"]) == 1 and int(metrics["rejected_1"]) == 1
    assert int(metrics["rejected_0"]) == 0
    assert_same(member(new, 1), member(state, 1))  # params and Adam state of member 1
    single = make(None)
    for m in (0, 2):
        alone, _ = single.step(member(state, m), key, targets[m], jnp.array(False))
        assert_close(member(new, m), alone)
    losses = [float(metrics[f"loss_{m}"]) for m in (0, 2)]
    np.testing.assert_allclose(float(metrics["loss"]), np.mean(losses), rtol=1e-12)


def test_the_loop_counts_a_step_non_finite_only_when_every_member_failed():
    make = lambda h: GradientLearner(bptt(nan_where_told), optax.adam(0.1))
    ensemble = Ensemble(make, {"seed": jnp.arange(2)})
    flags = [[False, True], [True, True], [False, False]]
    result = train(
        ensemble,
        jnp.zeros((2, 2)),
        jax.random.key(0),
        steps=3,
        batch=lambda i: (jnp.ones((2, 2)), jnp.array(flags[i])),
        progress="off",
    )
    assert [r["nonfinite"] for r in result.history] == [False, True, False]
    assert [r["rejected"] for r in result.history] == [1, 2, 0]
    # member 0 took steps 1 and 3, member 1 step 3 only: as two and one plain steps
    single = make(None)
    for m, taken in ((0, 2), (1, 1)):
        s = single.init(jnp.zeros(2))
        for _ in range(taken):
            s, _ = single.step(s, None, jnp.ones(2), jnp.array(False))
        assert_close(member(result.state, m), s)


def coin(key):
    return jax.random.uniform(key) < 0.5


def flaky_estimator(params, key, target):
    """A gradient that is NaN on about half of the keys."""
    value, grads = jax.value_and_grad(lambda p: jnp.sum((p - target) ** 2))(params)
    return value, jnp.where(coin(key), jnp.nan, grads)


def test_repeated_skips_only_the_failing_inner_steps():
    inner = GradientLearner(flaky_estimator, optax.adam(0.1))
    times, key, target = 8, jax.random.key(4), jnp.array([1.0, -1.0])
    state, metrics = eqx.filter_jit(Repeated(inner, times).step)(
        inner.init(jnp.zeros(2)), key, target
    )
    manual, norms = inner.init(jnp.zeros(2)), []
    bad = [bool(coin(jax.random.fold_in(key, j))) for j in range(times)]
    assert 0 < sum(bad) < times  # the key gives both kinds
    for j in range(times):
        manual, m = inner.step(manual, jax.random.fold_in(key, j), target)
        if not bad[j]:
            norms.append(float(m["grad_norm"]))
    np.testing.assert_allclose(state.params, manual.params, rtol=1e-12)
    assert int(metrics["rejected"]) == sum(bad)
    np.testing.assert_allclose(float(metrics["grad_norm"]), np.mean(norms), rtol=1e-12)
