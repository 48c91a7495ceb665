"""Hodgkin-Huxley against an independent reference: scipy's LSODA at tight tolerances."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from bbpes.neurons import DRIVE, HODGKIN_HUXLEY, HodgkinHuxley, cell_by_name, simulate

RECOMMENDED_DT = 0.025  # ms


def crossings(t: np.ndarray, v: np.ndarray, threshold: float = 10.0) -> np.ndarray:
    """Upward crossings of `threshold`, linearly interpolated (ms)."""
    up = np.where((v[:-1] < threshold) & (v[1:] >= threshold))[0]
    return t[up] + (threshold - v[up]) / (v[up + 1] - v[up]) * (t[up + 1] - t[up])


def numpy_rates(V):
    """The HH rate functions written out again in numpy (1/ms), V in mV."""
    alpha_m = 0.1 * (V + 40) / (1 - np.exp(-(V + 40) / 10))
    beta_m = 4 * np.exp(-(V + 65) / 18)
    alpha_h = 0.07 * np.exp(-(V + 65) / 20)
    beta_h = 1 / (1 + np.exp(-(V + 35) / 10))
    alpha_n = 0.01 * (V + 55) / (1 - np.exp(-(V + 55) / 10))
    beta_n = 0.125 * np.exp(-(V + 65) / 80)
    return alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n


@functools.cache
def reference_spikes(i_app: float, t_end: float = 1000.0) -> np.ndarray:
    """Spike times (upward crossings of 10 mV, located by scipy's event root finding) of
    an independent scipy solution: numpy vector field, LSODA, tolerances 1e-10."""
    c = HODGKIN_HUXLEY

    def field(t, y):
        V, m, h, n = y
        a_m, b_m, a_h, b_h, a_n, b_n = numpy_rates(V)
        i_ion = c.g_Na * m**3 * h * (V - c.E_Na) + c.g_K * n**4 * (V - c.E_K)
        dV = (i_app - i_ion - c.g_L * (V - c.E_L)) / c.C
        return [dV, a_m * (1 - m) - b_m * m, a_h * (1 - h) - b_h * h, a_n * (1 - n) - b_n * n]

    def spike(t, y):
        return y[0] - 10.0

    spike.direction = 1.0
    a_m, b_m, a_h, b_h, a_n, b_n = numpy_rates(-65.0)
    y0 = [-65.0, a_m / (a_m + b_m), a_h / (a_h + b_h), a_n / (a_n + b_n)]
    sol = solve_ivp(
        field, (0, t_end), y0, method="LSODA", rtol=1e-10, atol=1e-10, max_step=0.1,
        events=spike,
    )  # fmt: skip
    return sol.t_events[0]


_simulate = jax.jit(simulate, static_argnums=(2, 3))


def spikes(i_app: float, dt: float, cell: HodgkinHuxley = HODGKIN_HUXLEY) -> np.ndarray:
    t, V, *_ = _simulate(cell, i_app, 1000.0, dt)
    return crossings(np.asarray(t), np.asarray(V))


@pytest.mark.parametrize("i_app, count", [(2.0, 0), (5.0, 1), (10.0, 69)])
def test_spike_times_match_scipy(i_app, count):
    """Same spike count as scipy over 1 s; spike times within 0.3 ms at the recommended
    dt = 0.025 ms and within 5 ms at dt = 0.1 ms (second order: 16 times the error)."""
    ref = reference_spikes(i_app)
    assert len(ref) == count
    for dt, tolerance in ((RECOMMENDED_DT, 0.3), (0.1, 5.0)):
        ours = spikes(i_app, dt)
        assert len(ours) == count
        if count:
            assert np.max(np.abs(ours - ref)) < tolerance


def test_second_order_convergence():
    ref = reference_spikes(10.0)
    errors = [np.max(np.abs(spikes(10.0, dt) - ref)) for dt in (0.1, 0.05, 0.025)]
    assert 3.2 < errors[0] / errors[1] < 4.8  # halving dt quarters the error
    assert 3.2 < errors[1] / errors[2] < 4.8


def test_rest_below_threshold_and_tonic_above():
    currents = jnp.array([0.0, 2.0, 6.5, DRIVE["hodgkin_huxley"]])
    t, V, m, h, n = _simulate(HODGKIN_HUXLEY, currents, 1000.0, 0.05)
    late = np.asarray(V[len(t) // 2 :])
    assert abs(late[:, 0].mean() + 65.0) < 0.01  # the resting potential of the constants
    assert np.ptp(late[:, 0]) < 0.01 and np.ptp(late[:, 1]) < 0.01  # fixed points
    late_t = np.asarray(t[len(t) // 2 :])
    assert 25 <= len(crossings(late_t, late[:, 2])) <= 30  # 55 spikes/s
    assert 33 <= len(crossings(late_t, late[:, 3])) <= 36  # 69 spikes/s
    assert all(np.all((np.asarray(x) >= 0) & (np.asarray(x) <= 1)) for x in (m, h, n))


def test_vmap_over_parameters_and_currents():
    cells = HodgkinHuxley(g_K=jnp.array([36.0, 30.0]))
    run = eqx.filter_jit(
        eqx.filter_vmap(
            lambda c, i: simulate(c, i, 50.0, 0.025)[1][-1], in_axes=(eqx.if_array(0), 0)
        )
    )
    finals = run(cells, jnp.array([10.0, 5.0]))
    single = _simulate(HodgkinHuxley(g_K=30.0), 5.0, 50.0, 0.025)[1][-1]
    assert finals.shape == (2,)
    np.testing.assert_allclose(finals[1], single, rtol=1e-12)


def test_vector_field_is_the_stepper_limit():
    """One tiny step moves the state by dt * vector field."""
    state = (jnp.array(-50.0), jnp.array(0.2), jnp.array(0.5), jnp.array(0.4))
    dt = 1e-7
    new = HODGKIN_HUXLEY.step(state, 10.0, dt)
    for x1, x0, dx in zip(new, state, HODGKIN_HUXLEY.vector_field(state, 10.0)):
        np.testing.assert_allclose((x1 - x0) / dt, dx, rtol=1e-4)


@pytest.mark.parametrize("V", [-40.0, -55.0, -40.00001])
def test_rates_and_gradients_finite_at_removable_singularities(V):
    """alpha_m and alpha_n are 0/0 at -40 and -55 mV; value and slope are continuous."""
    for k in (0, 4):
        rate = functools.partial(lambda v, k: HODGKIN_HUXLEY.rates(v)[k], k=k)
        eps = 1e-3
        np.testing.assert_allclose(rate(V), (rate(V + eps) + rate(V - eps)) / 2, rtol=1e-7)
        fd = (rate(V + eps) - rate(V - eps)) / (2 * eps)
        np.testing.assert_allclose(jax.grad(rate)(V), fd, rtol=1e-6)


def test_float32_keeps_the_spike_count_at_drive():
    with jax.enable_x64(False):
        cell = cell_by_name("hodgkin_huxley")
        t, V, *_ = _simulate(cell, DRIVE["hodgkin_huxley"], 1000.0, 0.05)
        assert V.dtype == jnp.float32
        assert len(crossings(np.asarray(t), np.asarray(V))) == 69


def test_default_output_is_the_papers_readout():
    state = HODGKIN_HUXLEY.initial_state((3,))
    state = (jnp.array([-65.0, 10.0, 40.0]), *state[1:])
    np.testing.assert_allclose(
        HODGKIN_HUXLEY.output(state), [1 / (1 + np.exp(75 / 3)), 0.5, 1 / (1 + np.exp(-10))]
    )
    np.testing.assert_array_equal(HODGKIN_HUXLEY.output(state, hard=True), [0.0, 1.0, 1.0])
