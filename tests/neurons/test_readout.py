"""Spike outputs (Eqs. 10-11) and the surrogate-spike derivative of the hard threshold."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.estimators.backprop import bptt
from bbpes.neurons.readout import V_T, hard_threshold, soft_threshold, surrogate_threshold
from bbpes.tasks.turn_off import TurnOff

VOLTS = jnp.concatenate([jnp.linspace(-80.0, 60.0, 141), jnp.array([V_T, V_T - 1e-9, 9.5])])


def fast_sigmoid(V, v_t, slope):
    """s (V - v_t) / (1 + s |V - v_t|): the function whose derivative is the surrogate."""
    x = slope * (V - v_t)
    return x / (1.0 + jnp.abs(x))


def test_soft_threshold_is_the_logistic_of_eq_11():
    np.testing.assert_allclose(soft_threshold(VOLTS), 1 / (1 + np.exp(-(VOLTS - 10.0) / 3.0)))
    assert soft_threshold(jnp.array(V_T)) == 0.5


@pytest.mark.parametrize("slope", [0.2, 1.0, 5.0])
def test_surrogate_forward_is_the_hard_threshold(slope):
    for dtype in (jnp.float32, jnp.float64):
        V = VOLTS.astype(dtype)
        out = surrogate_threshold(V, slope=slope)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, hard_threshold(V))
    assert surrogate_threshold(jnp.array(V_T)) == 1.0  # V >= v_t fires, as Eq. 10
    np.testing.assert_array_equal(surrogate_threshold(VOLTS, v_t=0.0), hard_threshold(VOLTS, 0.0))


@pytest.mark.parametrize("slope", [0.2, 1.0, 5.0])
def test_surrogate_derivative_is_the_fast_sigmoids(slope):
    V = VOLTS[jnp.abs(VOLTS - V_T) > 1e-3]  # the fast sigmoid has a kink at threshold
    formula = slope / (1.0 + slope * jnp.abs(V - V_T)) ** 2
    h = 1e-5
    fd = (fast_sigmoid(V + h, V_T, slope) - fast_sigmoid(V - h, V_T, slope)) / (2 * h)
    np.testing.assert_allclose(formula, fd, rtol=1e-6)
    # forward mode (the custom jvp) and reverse mode (its transpose)
    _, jvp = jax.jvp(lambda v: surrogate_threshold(v, slope=slope), (V,), (jnp.ones_like(V),))
    vjp = jax.grad(lambda v: jnp.sum(surrogate_threshold(v, slope=slope)))(V)
    np.testing.assert_allclose(jvp, fd, rtol=1e-6)
    np.testing.assert_allclose(vjp, fd, rtol=1e-6)
    # the threshold's own derivative is minus the voltage's
    d_vt = jax.grad(lambda t: jnp.sum(surrogate_threshold(V, t, slope)))(jnp.asarray(V_T))
    assert d_vt == pytest.approx(-float(jnp.sum(fd)), rel=1e-6)
    # at threshold the surrogate peaks at `slope` (per mV)
    assert jax.grad(lambda v: surrogate_threshold(v, slope=slope))(jnp.asarray(V_T)) == slope


def test_hard_threshold_has_zero_gradient():
    assert np.all(jax.grad(lambda v: jnp.sum(hard_threshold(v)))(VOLTS) == 0)


@pytest.mark.parametrize("i_app", [80.0, 100.0, 120.0, 150.0])
def test_surrogate_bptt_turns_a_zero_gradient_into_one_of_the_right_sign(i_app):
    """Turn-off task, 200 ms, hard readout (Eq. 10): the loss (fraction of steps above
    threshold) is a staircase in I_app, so BPTT's gradient is exactly zero. The reference
    for the sign is the slope of that same hard loss over a wide step (+-10 µA/cm²,
    spanning many stairs): the trend of the objective actually being minimised. (The
    soft readout's derivative is a different objective's; it agrees in sign here.)"""
    hard = TurnOff(t_end=200.0, readout=hard_threshold)
    surrogate = TurnOff(t_end=200.0, readout=partial(surrogate_threshold, slope=1.0))
    params = {"i_app": jnp.asarray(i_app)}
    loss, exact = jax.jit(bptt(hard.loss))(params, None)
    assert exact["i_app"] == 0.0
    surrogate_loss, grads = jax.jit(bptt(surrogate.loss))(params, None)
    assert surrogate_loss == loss  # same forward pass
    h = 10.0
    wide = (hard.loss({"i_app": i_app + h}) - hard.loss({"i_app": i_app - h})) / (2 * h)
    assert wide > 0  # more current, more time above threshold
    assert grads["i_app"] != 0.0 and np.sign(grads["i_app"]) == np.sign(wide)
    soft = TurnOff(t_end=200.0).loss
    assert np.sign(jax.grad(lambda i: soft({"i_app": i}))(i_app)) == np.sign(wide)
