from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy.linalg import expm

from bbpes.models.mlp import MLP
from bbpes.models.neural_ode import NeuralODE, rober_field, spiral_field


def test_mlp_is_a_flat_parameter_vector_with_the_stated_sizes(key):
    mlp = MLP(3, 2, (5, 4), "gelu", key=key)
    flat, unravel = ravel_pytree(mlp)
    assert flat.shape == (3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2,)
    assert mlp(jnp.ones(3)).shape == (2,)
    # a perturbed vector is a working MLP again (what ES does)
    assert unravel(flat + 0.1)(jnp.ones(3)).shape == (2,)


def test_mlp_forward_is_the_layers_composed(key):
    mlp = MLP(2, 3, (4,), "tanh", key=key)
    x = jnp.array([0.3, -1.2])
    (w1, b1), (w2, b2) = [(lin.weight, lin.bias) for lin in mlp.layers]
    np.testing.assert_allclose(mlp(x), w2 @ jnp.tanh(w1 @ x + b1) + b2, rtol=1e-12)


def test_weight_std_init_draws_normal_weights_and_zero_biases(key):
    mlp = MLP(2, 2, (1000,), "tanh", key=key, weight_std=0.1)
    assert float(jnp.std(mlp.layers[0].weight)) == pytest.approx(0.1, rel=0.05)
    assert all(float(jnp.max(jnp.abs(lin.bias))) == 0.0 for lin in mlp.layers)


def test_unknown_activation_is_refused(key):
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(2, 2, (3,), "swishy", key=key)


def test_field_applies_the_mlp_to_the_cubed_state(key):
    field = spiral_field(7, key=key)
    y = jnp.array([0.5, -2.0])
    np.testing.assert_allclose(field(0.0, y), field.mlp(y**3), rtol=1e-12)
    ys = jnp.stack([y, 2 * y, -y])
    np.testing.assert_allclose(field.batched(0.0, ys), jax.vmap(field.mlp)(ys**3), rtol=1e-12)


def test_trajectory_of_a_linear_field_matches_the_matrix_exponential(key):
    """With no hidden layer and power 1 the field is dy/dt = W y + b: y(t) has a closed form."""
    field = NeuralODE(MLP(2, 2, (), key=key), power=1)
    w, b = np.asarray(field.mlp.layers[0].weight), np.asarray(field.mlp.layers[0].bias)
    y0, ts = jnp.array([1.0, -0.5]), jnp.linspace(0.0, 2.0, 11)
    ys = field.trajectory(
        y0,
        ts,
        solver=diffrax.Dopri5(),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
    )
    y_star = -np.linalg.solve(w, b)  # fixed point
    exact = np.stack([y_star + expm(w * t) @ (np.asarray(y0) - y_star) for t in np.asarray(ts)])
    np.testing.assert_allclose(ys, exact, rtol=1e-8, atol=1e-9)
    # a batch of states is solved row by row
    batch = field.trajectory(
        jnp.stack([y0, 2 * y0]),
        ts,
        solver=diffrax.Dopri5(),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
    )
    assert batch.shape == (11, 2, 2)
    np.testing.assert_allclose(batch[:, 0], ys, rtol=1e-8, atol=1e-9)


def test_a_failed_solve_gives_nan_not_an_error(key):
    field = spiral_field(5, key=key)
    ys = field.trajectory(
        jnp.array([2.0, 0.0]),
        jnp.linspace(0.0, 25.0, 5),
        solver=diffrax.Dopri5(),
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
        max_steps=2,
    )
    assert bool(jnp.all(jnp.isnan(ys)))


def test_rober_field_has_six_hidden_layers_of_five(key):
    field = rober_field(key=key)
    assert [lin.weight.shape for lin in field.mlp.layers] == [(5, 3)] + [(5, 5)] * 5 + [(3, 5)]
    assert field.mlp.activation == "gelu" and field.power == 1


def test_output_scale_multiplies_each_component_and_is_not_a_parameter(key):
    scale = (1.0, 3.6e-5, 0.98)
    plain = rober_field(key=key)
    scaled = rober_field(key=key, output_scale=scale)
    y = jnp.array([0.9, 1e-5, 0.1])
    np.testing.assert_allclose(scaled(0.0, y), plain(0.0, y) * np.asarray(scale), rtol=1e-12)
    # ES flattens the array leaves only: the scale is a static constant, not trained
    assert len(jax.tree.leaves(scaled)) == len(jax.tree.leaves(plain))
