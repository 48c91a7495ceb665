"""The evidence network as a configuration builds it, and its loss in every form: the
same forward value in each, the same gradient where the form only changes memory
(checkpointing, truncation that keeps every slot), a different one where truncation
cuts the trial."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bbpes.experiments import get
from bbpes.tasks.evidence_setup import (
    CASES,
    FORMS,
    build,
    cell_drive,
    example_batch,
    initial_weights,
    loss_forms,
)

TINY = {
    "n_cells": 4,
    "batch": 3,
    "n_inputs": 3,
    "hold": 1.0,
    "window": 1.0,
    "input_dim": 5,
    "test_trials": 4,
    "pca_trials": 2,
    "rate_trials": 2,
    "rec_scale": 1.0,
}


def config(**extra):
    return get("evidence").config({**TINY, **extra})


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_case_builds_its_cell_and_hold(case):
    c = config(case=case, hold=0.0, n_inputs=2, window=2.0)
    task, network = build(c)
    neuron = CASES[case]["neuron"]
    assert task.hold == CASES[case]["hold"] and task.duration == 2 * CASES[case]["hold"]
    assert network.current_scale == cell_drive(neuron)
    assert network.i_app == pytest.approx(c["i_app"] * cell_drive(neuron))


def test_initial_weights_depend_on_the_run_only():
    c = config()
    task, _ = build(c)
    a, b = initial_weights(c, task, 0), initial_weights(c, task, 1)
    assert a.w_in.shape == (4, 5) and a.w_rec.shape == (4, 4) and a.w_out.shape == (3, 4)
    np.testing.assert_array_equal(a.w_in, initial_weights(c, task, 0).w_in)
    assert not np.array_equal(a.w_in, b.w_in)
    assert np.all(np.asarray(a.b_out) == pytest.approx(c["out_bias"]))


def test_every_form_has_the_same_loss_and_memory_forms_the_same_gradient():
    c = config(truncate_slots=3)  # keeps every slot: the full gradient
    task, network = build(c)
    forms = loss_forms(task, network, c)
    assert {f for f in FORMS if getattr(forms, f) is not None} == FORMS
    w, batch = initial_weights(c, task, 0), example_batch(c, task)
    value, grads = jax.value_and_grad(forms.loss)(w, *batch)
    for form in ("checkpointed_loss", "truncated_loss"):
        v, g = jax.value_and_grad(getattr(forms, form))(w, *batch)
        assert float(v) == pytest.approx(float(value), rel=1e-12), form
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(grads)):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-14, err_msg=form)
    assert float(forms.ode_loss(w, *batch)) == pytest.approx(float(value), rel=0.05)


def test_truncation_to_fewer_slots_changes_only_the_gradient():
    c = config(truncate_slots=1)
    task, network = build(c)
    forms = loss_forms(task, network, c)
    w, batch = initial_weights(c, task, 0), example_batch(c, task)
    v_full, g_full = jax.value_and_grad(forms.loss)(w, *batch)
    v_cut, g_cut = jax.value_and_grad(forms.truncated_loss)(w, *batch)
    assert float(v_cut) == float(v_full)
    # the readout of the window still sees the last slot; the input weights' effect
    # through the earlier slots is cut
    assert not np.allclose(g_cut.w_in, g_full.w_in, rtol=1e-3, atol=0.0)
    np.testing.assert_allclose(g_cut.b_out, g_full.b_out, rtol=1e-10)
