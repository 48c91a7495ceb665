from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree
from scipy.integrate import solve_ivp

from bbpes.estimators import bptt, es, fnde, pnde
from bbpes.learners import GradientLearner
from bbpes.models.mlp import MLP
from bbpes.models.neural_ode import NeuralODE, spiral_field
from bbpes.tasks.spiral import A, Spiral, true_trajectory
from bbpes.train import train


@pytest.fixture(scope="module")
def task():
    return Spiral(
        n_points=200, t_end=5.0, batch_size=6, batch_time=5, rtol=1e-8, atol=1e-8, max_steps=256
    )


def true_field_as_model() -> NeuralODE:
    """dy/dt = MLP(y^3) with no hidden layer and weights A^T is the true dynamics exactly."""
    mlp = MLP(2, 2, (), key=jax.random.key(0))
    mlp = eqx.tree_at(
        lambda m: (m.layers[0].weight, m.layers[0].bias),
        mlp,
        (jnp.asarray(A).T, jnp.zeros(2)),
    )
    return NeuralODE(mlp, power=3)


def test_true_trajectory_matches_scipy():
    ts = np.linspace(0.0, 25.0, 1000)
    ours = true_trajectory(ts)
    a = np.asarray(A)
    ref = solve_ivp(
        lambda t, y: (y**3) @ a,
        (0.0, 25.0),
        [2.0, 0.0],
        t_eval=ts,
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    assert ref.success
    np.testing.assert_allclose(ours, ref.y.T, atol=1e-8)
    # the spiral decays: it starts at radius 2 and ends well inside it
    assert np.linalg.norm(ours[-1]) < 0.6


def test_minibatches_are_windows_of_the_true_trajectory(task):
    y0s, targets = task.sample_batch(jax.random.key(3))
    assert y0s.shape == (6, 2) and targets.shape == (5, 6, 2)
    np.testing.assert_array_equal(targets[0], y0s)
    ys = np.asarray(task.ys)
    for b in range(6):
        start = int(np.flatnonzero(np.all(ys == np.asarray(y0s[b]), axis=1))[0])
        np.testing.assert_array_equal(targets[:, b], ys[start : start + 5])
    # distinct start points
    assert len({tuple(np.asarray(y)) for y in y0s}) == 6


def test_the_true_field_has_zero_loss_and_zero_trajectory_error(task):
    field = true_field_as_model()
    y0s, targets = task.sample_batch(jax.random.key(0))
    assert float(task.loss(field, y0s, targets)) < 1e-6
    assert float(task.mae(field)) < 1e-6
    assert float(task.mae(spiral_field(8, key=jax.random.key(1)))) > 0.1


def test_bptt_and_fnde_match_finite_differences_on_the_minibatch_loss(task):
    """Directional derivatives along random directions, against central differences."""
    field = spiral_field(4, key=jax.random.key(2))
    y0s, targets = task.sample_batch(jax.random.key(0))
    flat, unravel = ravel_pytree(field)
    loss_of_flat = jax.jit(lambda x: task.loss(unravel(x), y0s, targets))
    for estimator in (bptt(task.loss), fnde(task.ode_loss())):
        loss, grads = eqx.filter_jit(estimator)(field, None, y0s, targets)
        assert loss == pytest.approx(float(loss_of_flat(flat)), rel=1e-10)
        for k in range(2):
            v = jax.random.normal(jax.random.key(10 + k), flat.shape)
            eps = 1e-5
            fd = (loss_of_flat(flat + eps * v) - loss_of_flat(flat - eps * v)) / (2 * eps)
            assert float(ravel_pytree(grads)[0] @ v) == pytest.approx(float(fd), rel=1e-5)


def test_pnde_refuses_a_loss_observed_at_many_times(task):
    with pytest.raises(ValueError, match="observation_cost"):
        pnde(task.ode_loss())


@pytest.mark.parametrize("method", ["es", "bptt", "fnde"])
def test_each_method_reduces_the_loss_on_a_tiny_problem(task, method):
    field = spiral_field(8, key=jax.random.key(4))
    batch = task.sample_batch(jax.random.key(5))
    estimator = {
        "es": es(task.loss, 0.02, 40),
        "bptt": bptt(task.loss),
        "fnde": fnde(task.ode_loss()),
    }[method]
    result = train(
        GradientLearner(estimator, optax.adam(1e-2)),
        field,
        jax.random.key(6),
        steps=40,
        batch=lambda i: batch,
        progress="off",
    )
    before = float(task.loss(field, *batch))
    after = float(task.loss(result.params, *batch))
    assert after < 0.8 * before, (before, after)


def test_the_task_settings_describe_the_paper_task():
    from bbpes.settings import defaults_of
    from bbpes.tasks.spiral import SETTINGS

    config = defaults_of(SETTINGS)
    assert (config["n_points"], config["t_end"]) == (1000, 25.0)
    assert (config["batch_size"], config["batch_time"], config["tol"]) == (20, 10, 1e-4)
