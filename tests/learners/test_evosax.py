"""Every listed evosax strategy through the one training loop, the way evosax tests its
own registry: each lowers a sphere and a Rosenbrock loss, resumes bit-identically from a
checkpoint, and survives diverging members.

One loss function serves every problem (`which` picks it, as data), so each strategy's
step is compiled once for all the tests of this file.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.errors import ConfigError
from bbpes.estimators import bptt
from bbpes.learners.evosax import (
    PLAIN_GRADIENT,
    STRATEGIES,
    EvosaxLearner,
    evosax_learner,
    takes_optimizer,
)
from bbpes.runs import RunDir
from bbpes.train import train

SPHERE, ROSENBROCK, CLIFF, ALL_NAN, CLIPPED_NAN, CLIPPED_WORST = range(6)
X_SPHERE = jnp.full(6, 2.0)  # sphere 24
X_ROSENBROCK = jnp.array([-1.2, 1.0] * 3)  # Rosenbrock 1040.6, the classic start repeated
C = 24.0  # the sphere at X_SPHERE


def sphere(p):
    return jnp.sum(p**2)


def rosenbrock(p):
    return jnp.sum(100.0 * (p[1:] - p[:-1] ** 2) ** 2 + (1.0 - p[:-1]) ** 2)


def problems(p, which):
    """The loss of every test, picked by `which`: the sphere; Rosenbrock; the sphere,
    NaN past the cliff p[0] > 2; NaN everywhere; and the sphere clipped at C with the
    members past the cliff (p[0] > 2 and sphere > C) NaN, or told C, the worst finite
    loss, instead."""
    cliff = p[0] > 2.0
    clipped = jnp.minimum(sphere(p), C)
    past = cliff & (sphere(p) > C)
    values = [
        sphere(p),
        rosenbrock(p),
        jnp.where(cliff, jnp.nan, sphere(p)),
        jnp.nan,
        jnp.where(past, jnp.nan, clipped),
        jnp.where(past, C, clipped),
    ]
    return jnp.select([which == k for k in range(len(values))], values)


SETTINGS = {
    # plain-gradient strategies get Adam; NES keeps its natural-gradient sgd(1.0) step and
    # CMA-ES its own
    "Open_ES": dict(optimizer=optax.adam(0.1), std_init=0.1),
    "SNES": dict(std_init=0.5),
    "xNES": dict(std_init=0.5),
    "PGPE": dict(optimizer=optax.adam(0.1), std_init=0.1),
    "ARS": dict(optimizer=optax.adam(0.1), std_init=0.1),
    "Sep_CMA_ES": dict(std_init=0.5),
    "CMA_ES": dict(std_init=0.5),
    "NoiseReuseES": dict(optimizer=optax.adam(0.1), std_init=0.1),
    "PersistentES": dict(optimizer=optax.adam(0.1), std_init=0.1),
    "GuidedES": dict(optimizer=optax.adam(0.1), std_init=0.1),
    "SimpleGA": dict(std_init=0.2),  # a genetic algorithm: its params are its best member
}
OPTAX_STRATEGIES = ("Open_ES", "SNES", "xNES", "PGPE", "ARS", "NoiseReuseES", "PersistentES",
                    "GuidedES")  # fmt: skip


def learner(name: str) -> EvosaxLearner:
    return EvosaxLearner(problems, name, 16, **SETTINGS[name])


def fit(name, x0, which, steps, **kwargs):
    return train(
        learner(name), x0, jax.random.key(3), steps=steps,
        batch=lambda i: (jnp.array(which),), progress="off", **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_lowers_sphere_and_rosenbrock(name):
    """100 generations of 16: the sphere below 10% of its start, Rosenbrock below 5%."""
    for x0, which, f, fraction in (
        (X_SPHERE, SPHERE, sphere, 0.1),
        (X_ROSENBROCK, ROSENBROCK, rosenbrock, 0.05),
    ):
        result = fit(name, x0, which, 100)
        assert result.stopped is None and not any(r["nonfinite"] for r in result.history)
        assert float(f(result.params)) < fraction * float(f(x0)), (name, f.__name__)
        first, last = result.history[0], result.history[-1]
        assert last["loss"] < first["loss"] and last["best_loss"] <= last["loss"]
        assert last["nonfinite_members"] == 0


@pytest.mark.parametrize("name", STRATEGIES)
def test_resume_from_a_checkpoint_is_bit_identical(name, cut_and_resumed, tmp_path):
    """Killed in step 18 (checkpoints every 4), resumed: the same params, state and
    history as an uninterrupted run, to the bit."""
    full, resumed = cut_and_resumed(
        learner(name), X_ROSENBROCK, 30, 17, kill=True,
        batch=lambda i: (jnp.array(ROSENBROCK),), checkpoint_every=4,
    )  # fmt: skip
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    keep = ("step", "loss", "best_loss", "nonfinite_members")
    a, b = ([tuple(r[k] for k in keep) for r in RunDir(tmp_path / d).read_history()]
            for d in ("full", "cut"))  # fmt: skip
    assert a == b and len(b) == 30


def _strategy_finite(state) -> bool:
    # after a step every field is finite (GuidedES refills the gradient slot ask empties)
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))


@pytest.mark.parametrize("name", STRATEGIES)
def test_diverging_members_do_not_corrupt_the_state(name):
    """Members past a NaN cliff are told the worst finite loss: no step is rejected, the
    state stays finite, and the mean still goes down the sphere."""
    result = fit(name, X_SPHERE, CLIFF, 60)
    counts = [r["nonfinite_members"] for r in result.history]
    assert counts[0] > 0  # the start sits on the cliff's edge: about half are NaN
    assert not any(r["nonfinite"] for r in result.history)
    assert all(np.isfinite(r["loss"]) for r in result.history)
    assert _strategy_finite(result.state)
    assert float(sphere(result.params)) < 0.5 * float(sphere(X_SPHERE))


@pytest.mark.parametrize("name", STRATEGIES)
def test_all_members_diverging_rejects_the_step(name):
    """Every member NaN: the learner hands back its state unchanged (to the bit; the
    loop's own guard only reverts non-finite params, which these are not) with a NaN
    loss, and the loop stops after `max_nonfinite` such steps."""
    result = fit(name, X_SPHERE, ALL_NAN, 50, max_nonfinite=3)
    assert len(result.history) == 3 and all(r["nonfinite"] for r in result.history)
    assert all(np.isnan(r["loss"]) and r["nonfinite_members"] == 16 for r in result.history)
    initial = learner(name).init(X_SPHERE)
    for a, b in zip(jax.tree.leaves(initial), jax.tree.leaves(result.state)):
        np.testing.assert_array_equal(a, b)  # NaN-by-design slots compare equal too


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_nan_member_counts_as_the_worst_finite_loss(name):
    """A NaN member and a member told the worst finite loss give the same steps, for
    every fitness shaping (centred ranks, NES and CMA weights, raw fitness): in the
    clipped problem the worst finite loss is exactly C, what the reference tells them."""
    nan_run = fit(name, X_SPHERE, CLIPPED_NAN, 3)
    reference = fit(name, X_SPHERE, CLIPPED_WORST, 3)
    assert nan_run.history[0]["nonfinite_members"] >= 1
    assert all(r["nonfinite_members"] == 0 for r in reference.history)
    for a, b in zip(jax.tree.leaves(nan_run.state), jax.tree.leaves(reference.state)):
        np.testing.assert_array_equal(a, b)
    assert [r["loss"] for r in nan_run.history] == [r["loss"] for r in reference.history]


def test_guided_es_follows_its_surrogate():
    """With a surrogate, the newest direction of GuidedES's subspace is the surrogate's
    gradient at the mean; without one, it is the mean's last step."""
    guided = EvosaxLearner(
        problems, "GuidedES", 16, surrogate=bptt(problems), **SETTINGS["GuidedES"]
    )
    result = train(guided, X_ROSENBROCK, jax.random.key(0), steps=1,
                   batch=lambda i: (jnp.array(SPHERE),), progress="off")  # fmt: skip
    np.testing.assert_allclose(
        result.state.strategy.grad_subspace[:, -1], 2 * X_ROSENBROCK, rtol=1e-12
    )
    assert result.history[0]["surrogate_loss"] == pytest.approx(float(sphere(X_ROSENBROCK)))

    one, two = (fit("GuidedES", X_SPHERE, SPHERE, steps) for steps in (1, 2))
    np.testing.assert_allclose(
        two.state.strategy.grad_subspace[:, -1], X_SPHERE - one.params, rtol=1e-12
    )
    assert not np.allclose(X_SPHERE, one.params)


def test_strategy_settings_reach_evosax():
    """T and K are NoiseReuseES params: with evosax's T = 100, K = 10 a population of
    perturbations is reused for 10 steps; with T = K = 1 it is drawn afresh every step."""
    one, two = (fit("NoiseReuseES", X_SPHERE, SPHERE, steps) for steps in (1, 2))
    np.testing.assert_array_equal(one.state.strategy.pert, two.state.strategy.pert)
    fresh = EvosaxLearner(problems, "NoiseReuseES", 16, T=1, K=1, **SETTINGS["NoiseReuseES"])
    batch = lambda i: (jnp.array(SPHERE),)
    one, two = (
        train(fresh, X_SPHERE, jax.random.key(3), steps=n, batch=batch, progress="off")
        for n in (1, 2)
    )
    assert not np.allclose(one.state.strategy.pert, two.state.strategy.pert)


def test_chunked_evaluation_matches_vmap():
    chunked = EvosaxLearner(problems, "SNES", 16, chunk_size=5, **SETTINGS["SNES"])  # 5+5+5+1
    a = fit("SNES", X_SPHERE, SPHERE, 5)
    b = train(chunked, X_SPHERE, jax.random.key(3), steps=5,
              batch=lambda i: (jnp.array(SPHERE),), progress="off")  # fmt: skip
    np.testing.assert_allclose(a.params, b.params, rtol=1e-13)
    np.testing.assert_allclose([r["loss"] for r in a.history], [r["loss"] for r in b.history],
                               rtol=1e-13)  # fmt: skip


def test_float32_params_stay_float32():
    with jax.enable_x64(False):
        ev = EvosaxLearner(sphere, "Open_ES", 8, optimizer=optax.adam(0.1), std_init=0.1)
        x0 = jnp.full(4, 1.0, jnp.float32)
        state, metrics = jax.jit(ev.step)(ev.init(x0), jax.random.key(0))
        assert state.params.dtype == jnp.float32 and metrics["loss"].dtype == jnp.float32


def test_registry_helper_and_optimizer_routing():
    assert set(OPTAX_STRATEGIES) == {n for n in STRATEGIES if takes_optimizer(n)}
    adam = optax.adam(0.1)
    for name in STRATEGIES:
        made = evosax_learner(f"evosax:{name}", sphere, population_size=8, optimizer=adam)
        assert made.name == name
        # plain-gradient strategies take the experiment's optimizer; NES and CMA keep theirs
        assert (made.optimizer is adam) == (name in PLAIN_GRADIENT)
    with pytest.raises(ConfigError, match="unknown evosax strategy"):
        evosax_learner("evosax:Nope", sphere, population_size=8)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: EvosaxLearner(sphere, "NoSuchES", 8), "unknown evosax strategy"),
        (lambda: EvosaxLearner(sphere, "DifferentialEvolution", 8), "population-based"),
        (lambda: EvosaxLearner(sphere, "Open_ES", 7), "even"),
        (lambda: EvosaxLearner(sphere, "SNES", 1), ">= 2"),
        (lambda: EvosaxLearner(sphere, "CMA_ES", 8, optimizer=optax.sgd(0.1)), "no optimizer"),
        (lambda: EvosaxLearner(sphere, "SNES", 8, sigma=0.1), "unknown settings"),
        (lambda: EvosaxLearner(sphere, "SNES", 8, std_init=-1.0), "std_init > 0"),
        (lambda: EvosaxLearner(sphere, "SNES", 8, surrogate=bptt(sphere)), "GuidedES"),
        (lambda: EvosaxLearner(sphere, "SNES", 8, chunk_size=0), "chunk_size"),
        (lambda: EvosaxLearner(sphere, "RandomSearch", 8), "needs sampling_fn="),
        (lambda: EvosaxLearner(sphere, "SV_Open_ES", 8), "several populations"),
        (lambda: EvosaxLearner(sphere, "SNES", 8, std_init=0.1, std_init_=0), "unknown"),
    ],
)
def test_bad_settings_are_config_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_a_setting_evosax_rejects_at_init_is_a_config_error():
    guided = EvosaxLearner(sphere, "GuidedES", 8, subspace_dims=9)  # more than 6 dims
    with pytest.raises(ConfigError, match="GuidedES: Subspace dims"):
        guided.init(X_SPHERE)


def test_best_is_the_best_member_seen():
    result = fit("SNES", X_SPHERE, SPHERE, 5)
    solution, loss = learner("SNES").best(result.state)
    assert float(sphere(solution)) == pytest.approx(float(loss), rel=1e-12)
    assert float(loss) == min(r["best_loss"] for r in result.history)
