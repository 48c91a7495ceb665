"""FitzHugh-Nagumo against an independent reference: scipy's LSODA at tight tolerances."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from bbpes.neurons import DRIVE, FITZHUGH_NAGUMO, FitzHughNagumo, cell_by_name, simulate

RECOMMENDED_DT = 0.1  # ms, with tau = 1 ms


def crossings(t: np.ndarray, v: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """Upward crossings of `threshold`, linearly interpolated (ms)."""
    up = np.where((v[:-1] < threshold) & (v[1:] >= threshold))[0]
    return t[up] + (threshold - v[up]) / (v[up + 1] - v[up]) * (t[up + 1] - t[up])


@functools.cache
def reference_spikes(i_app: float, t_end: float = 1000.0) -> np.ndarray:
    """Upward crossings of v = 1 (scipy's event root finding) of an independent scipy
    solution in the model's own time (tau = 1 ms): LSODA, tolerances 1e-10."""
    a, b, eps = 0.7, 0.8, 0.08

    def field(t, y):
        v, w = y
        return [v - v**3 / 3 - w + i_app, eps * (v + a - b * w)]

    def spike(t, y):
        return y[0] - 1.0

    spike.direction = 1.0
    v0 = FITZHUGH_NAGUMO.v_rest
    sol = solve_ivp(
        field, (0, t_end), [v0, (v0 + a) / b], method="LSODA", rtol=1e-10, atol=1e-10,
        max_step=0.1, events=spike,
    )  # fmt: skip
    return sol.t_events[0]


_simulate = jax.jit(simulate, static_argnums=(2, 3))


def spikes(i_app: float, dt: float, cell: FitzHughNagumo = FITZHUGH_NAGUMO) -> np.ndarray:
    t, v, _ = _simulate(cell, i_app, 1000.0, dt)
    return crossings(np.asarray(t), np.asarray(v))


def test_initial_state_is_the_rest_point():
    dv, dw = FITZHUGH_NAGUMO.vector_field(FITZHUGH_NAGUMO.initial_state(), 0.0)
    assert abs(dv) < 1e-12 and abs(dw) < 1e-12


@pytest.mark.parametrize("i_app, count", [(0.1, 0), (0.2, 1), (0.5, 26), (1.0, 28)])
def test_spike_times_match_scipy(i_app, count):
    """Same spike count as scipy over 1000 time units (1 s at tau = 1 ms); spike times
    within 0.15 ms at the recommended dt = 0.1 ms and within 3 ms at dt = 0.5 ms."""
    ref = reference_spikes(i_app)
    assert len(ref) == count
    for dt, tolerance in ((RECOMMENDED_DT, 0.15), (0.5, 3.0)):
        ours = spikes(i_app, dt)
        assert len(ours) == count
        if count:
            assert np.max(np.abs(ours - ref)) < tolerance


def test_second_order_convergence():
    ref = reference_spikes(0.5)
    errors = [np.max(np.abs(spikes(0.5, dt) - ref)) for dt in (0.2, 0.1, 0.05)]
    assert 3.2 < errors[0] / errors[1] < 4.8  # halving dt quarters the error
    assert 3.2 < errors[1] / errors[2] < 4.8


def test_rest_below_threshold_tonic_above_and_stable_at_large_steps():
    currents = jnp.array([0.0, 0.3, DRIVE["fitzhugh_nagumo"], 1.6])
    for dt in (0.1, 1.25):  # stable for any dt < 2 tau
        t, v, _ = _simulate(FITZHUGH_NAGUMO, currents, 1000.0, dt)
        late_t, late = np.asarray(t[len(t) // 2 :]), np.asarray(v[len(t) // 2 :])
        assert np.all(np.isfinite(late))
        for column in (0, 1, 3):  # fixed points (rest, and depolarisation block at 1.6)
            assert np.ptp(late[:, column]) < 0.01
        assert 12 <= len(crossings(late_t, late[:, 2])) <= 14  # 26 spikes/s
        assert late[:, 0].max() < -1.0 and late[:, 3].min() > 1.0


def test_tau_rescales_time():
    slow = FitzHughNagumo(tau=2.0)
    t, v, _ = _simulate(slow, 0.5, 1000.0, 0.2)
    np.testing.assert_allclose(crossings(np.asarray(t), np.asarray(v)), 2 * spikes(0.5, 0.1)[:13])


def test_vmap_over_parameters_and_currents():
    cells = FitzHughNagumo(a=jnp.array([0.7, 0.6]))
    run = eqx.filter_jit(
        eqx.filter_vmap(
            lambda c, i: simulate(c, i, 100.0, 0.1)[1][-1], in_axes=(eqx.if_array(0), 0)
        )
    )
    finals = run(cells, jnp.array([0.5, 0.4]))
    single = _simulate(FitzHughNagumo(a=0.6), 0.4, 100.0, 0.1)[1][-1]
    assert finals.shape == (2,)
    np.testing.assert_allclose(finals[1], single, rtol=1e-12)


def test_vector_field_is_the_stepper_limit():
    state = (jnp.array(0.3), jnp.array(-0.2))
    dt = 1e-7
    new = FITZHUGH_NAGUMO.step(state, 0.5, dt)
    for x1, x0, dx in zip(new, state, FITZHUGH_NAGUMO.vector_field(state, 0.5)):
        np.testing.assert_allclose((x1 - x0) / dt, dx, rtol=1e-5)


def test_output_uses_the_models_own_scale():
    v = jnp.array([-1.2, 1.0, 2.0])
    state = (v, jnp.zeros(3))
    np.testing.assert_allclose(
        FITZHUGH_NAGUMO.output(state), [1 / (1 + np.exp(22.0)), 0.5, 1 / (1 + np.exp(-10.0))]
    )
    np.testing.assert_array_equal(FITZHUGH_NAGUMO.output(state, hard=True), [0.0, 1.0, 1.0])


def test_float32_keeps_the_spike_count_at_drive():
    with jax.enable_x64(False):
        cell = cell_by_name("fitzhugh_nagumo")
        t, v, _ = _simulate(cell, DRIVE["fitzhugh_nagumo"], 1000.0, 0.1)
        assert v.dtype == jnp.float32
        assert len(crossings(np.asarray(t), np.asarray(v))) == 26
