"""The turn-off task's loss forms: checkpointing and full truncation change nothing but
memory; with the hard readout, the surrogate form has the hard loss's value and a
nonzero gradient of the right sign where the hard loss's is exactly zero."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.neurons.readout import hard_threshold
from bbpes.tasks.turn_off import FORMS, TurnOff, forms_offered, gaussian_smooth, loss_forms

P = {"i_app": jnp.asarray(100.0)}  # tonic firing


def test_memory_forms_have_the_loss_and_its_gradient():
    task = TurnOff(t_end=100.0)
    forms = loss_forms(task)
    value, grad = jax.value_and_grad(forms.loss)(P)
    v, g = jax.value_and_grad(forms.checkpointed_loss)(P)
    assert float(v) == pytest.approx(float(value), rel=1e-12)
    assert float(g["i_app"]) == pytest.approx(float(grad["i_app"]), rel=1e-8)
    assert float(grad["i_app"]) > 0  # more current, more firing
    assert forms.surrogate_loss is None and forms_offered(False) == FORMS


def test_the_hard_readout_has_a_surrogate_gradient_where_its_own_is_zero():
    task = TurnOff(t_end=200.0, readout=hard_threshold)
    forms = loss_forms(task, hard=True, surrogate_slope=0.5)
    assert "surrogate_loss" in forms_offered(True)
    hard_value, hard_grad = jax.value_and_grad(forms.loss)(P)
    value, grad = jax.value_and_grad(forms.surrogate_loss)(P)
    assert float(hard_grad["i_app"]) == 0.0
    assert float(value) == float(hard_value) > 0
    # the sign of the smoothed landscape's slope: central differences of 5 uA/cm^2
    up, down = (float(task.loss({"i_app": jnp.asarray(100.0 + d)})) for d in (10.0, -10.0))
    assert up > down and float(grad["i_app"]) > 0
    # the truncated form of the hard task differentiates through the surrogate too
    assert float(jax.grad(forms.truncated_loss)(P)["i_app"]) > 0


def test_gaussian_smoothing_of_a_line_is_the_line():
    grid = np.linspace(0, 10, 101)
    smooth = gaussian_smooth(grid, 3.0 * grid + 1.0, 0.5)
    np.testing.assert_allclose(smooth[30:70], 3.0 * grid[30:70] + 1.0, rtol=1e-10)
