from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.integrate import solve_ivp

from bbpes.estimators import es
from bbpes.learners import GradientLearner
from bbpes.models.neural_ode import rober_field
from bbpes.tasks.rober import K1, K2, K3, Rober, rober_solution
from bbpes.train import train


def scipy_rober(t, y):
    return [
        -K1 * y[0] + K3 * y[1] * y[2],
        K1 * y[0] - K3 * y[1] * y[2] - K2 * y[1] ** 2,
        K2 * y[1] ** 2,
    ]


@pytest.fixture(scope="module")
def task():
    return Rober(n_points=30)


@pytest.mark.parametrize("method", ["Radau", "BDF"])
def test_data_match_scipy_stiff_solvers(task, method):
    ts = np.asarray(task.ts)
    ref = solve_ivp(
        scipy_rober,
        (0.0, ts[-1]),
        [1.0, 0.0, 0.0],
        method=method,
        t_eval=ts,
        rtol=1e-10,
        atol=1e-14,
    )
    assert ref.success
    ys = np.asarray(task.ys)
    # every species to 1e-6 of its own scale (y2 is ~1e-5 at most)
    np.testing.assert_array_less(np.abs(ys - ref.y.T) / np.max(np.abs(ref.y), axis=1), 1e-6)


def test_data_conserve_mass_and_hit_known_values(task):
    ys = np.asarray(task.ys)
    np.testing.assert_allclose(ys.sum(axis=1), 1.0, atol=1e-10)
    assert np.all(ys >= -1e-15)
    # y2's peak, about 3.65e-5 near t = 0.03 (Hairer & Wanner, II.1)
    assert float(task.scale[1]) == pytest.approx(3.65e-5, rel=0.01)
    # the classic values at t = 40; the grid keeps its shape so the solve is not recompiled
    ts = np.asarray(task.ts).copy()
    ts[19] = 40.0
    assert ts[18] < 40.0 < ts[20]
    np.testing.assert_allclose(rober_solution(ts)[19], [0.7158, 9.185e-6, 0.2842], rtol=1e-3)


def test_times_are_log_spaced(task):
    ts = np.asarray(task.ts)
    assert ts[0] == pytest.approx(1e-5) and ts[-1] == pytest.approx(1e5)
    np.testing.assert_allclose(np.diff(np.log10(ts)), 10 / 29, rtol=1e-9)


def test_a_zero_field_keeps_the_initial_state_and_has_the_matching_losses(task):
    field = jax.tree.map(jnp.zeros_like, rober_field(key=jax.random.key(0)))
    error = np.abs(np.asarray(task.ys) - [1.0, 0.0, 0.0])
    e = eqx.filter_jit(task.species_errors)(field)
    for i, name in enumerate(("y1", "y2", "y3")):
        assert float(e[f"mae_{name}"]) == pytest.approx(error[:, i].mean(), rel=1e-9, abs=1e-15)
    assert float(e["relative_mae_y2"]) == pytest.approx(error[:, 1].mean() / task.scale[1])
    assert float(eqx.filter_jit(task.loss)(field)) == pytest.approx(error.mean(), rel=1e-9)
    assert float(task.null_loss()) == pytest.approx(float(eqx.filter_jit(task.loss)(field)))
    # the scaled cost divides each species by its scale (checked on the known solution)
    y0s = jnp.tile(jnp.array([1.0, 0.0, 0.0]), (30, 1))
    scaled = task.ode_loss(scaled=True).observation_cost(y0s, field)
    assert float(scaled) == pytest.approx((error / np.asarray(task.scale)).mean(), rel=1e-9)


def test_es_reduces_the_plain_loss_on_a_short_horizon():
    """A tiny problem: 8 times up to t = 1, where ROBER is still mostly y1 -> y3."""
    task = Rober(n_points=8, t_min=1e-2, t_max=1.0, solver="kvaerno3", max_steps=500)
    field = rober_field(key=jax.random.key(1))
    field = eqx.tree_at(lambda f: f.mlp.layers[-1].weight, field, 0.1 * field.mlp.layers[-1].weight)
    before = float(eqx.filter_jit(task.loss)(field))
    result = train(
        GradientLearner(es(task.loss, 1e-3, 20), optax.adam(3e-3)),
        field,
        jax.random.key(2),
        steps=25,
        progress="off",
    )
    after = float(eqx.filter_jit(task.loss)(result.params))
    assert after < 0.7 * before, (before, after)


def test_the_task_settings_take_the_field_presets_where_left_none():
    from bbpes.settings import defaults_of
    from bbpes.tasks.rober import FIELDS, SETTINGS, initial_field, make_task, resolve

    config = defaults_of(SETTINGS)
    assert config["init_output_scale"] is None  # until resolved
    config.update(field="normalised", sigma=0.5, n_points=4, t_max=1.0, t_min=0.1)
    resolve(config)
    assert config["sigma"] == 0.5  # given: kept
    assert {k: config[k] for k in ("lr_es", "lr_bp", "init_output_scale", "rank_shaping")} == {
        k: FIELDS["normalised"][k] for k in ("lr_es", "lr_bp", "init_output_scale", "rank_shaping")
    }
    task = make_task(config)
    assert task.ts.shape == (4,) and task.solver == config["solver"]
    field = initial_field(config, task)
    np.testing.assert_allclose(field.output_scale, np.asarray(task.scale) / 1.0, rtol=1e-6)
