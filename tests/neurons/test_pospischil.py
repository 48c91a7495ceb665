"""Pospischil against scipy with Goncalves et al.'s rates written anew, and its firing:
tonic under a step, adapting through the M current, at rest without input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from bbpes.errors import ConfigError
from bbpes.fitting import CurrentClamp, simulate, simulate_population
from bbpes.neurons.pospischil import POSPISCHIL, Pospischil


def spike_times(v: np.ndarray, dt: float) -> np.ndarray:
    """Upward 0 mV crossings (ms), linearly interpolated."""
    v = np.asarray(v, np.float64)
    i = np.flatnonzero((v[:-1] < 0) & (v[1:] >= 0))
    return (i + (0 - v[i]) / (v[i + 1] - v[i])) * dt


def _goncalves_rhs(t, y, i_app):
    """The sbi tutorial's `HHsimulator` kinetics (Goncalves et al. 2020), transcribed anew
    with its constants (g_Na 50, g_K 5, g_M 0.07, g_leak 0.1 mS/cm², V_T -60 mV, ...)."""
    V, m, h, n, p = y

    def efun(z):
        return 1 - z / 2 if abs(z) < 1e-4 else z / (math.exp(z) - 1)

    Vt, v1 = -60.0, y[0]
    am = 0.32 * efun(-0.25 * (v1 - Vt - 13.0)) / 0.25
    bm = 0.28 * efun(0.2 * (v1 - Vt - 40.0)) / 0.2
    ah = 0.128 * math.exp(-(v1 - Vt - 17.0) / 18.0)
    bh = 4.0 / (1 + math.exp(-0.2 * (v1 - Vt - 40.0)))
    an = 0.032 * efun(-0.2 * (v1 - Vt - 15.0)) / 0.2
    bn = 0.5 * math.exp(-(v1 - Vt - 10.0) / 40)
    p_inf = 1.0 / (1.0 + math.exp(-0.1 * (V + 35.0)))
    tau_p = 600.0 / (3.3 * math.exp(0.05 * (V + 35.0)) + math.exp(-0.05 * (V + 35.0)))
    i_ion = 50 * m**3 * h * (V - 53) + 5 * n**4 * (V + 107) + 0.07 * p * (V + 107) + 0.1 * (V + 70)
    return [
        i_app - i_ion,
        am * (1 - m) - bm * m,
        ah * (1 - h) - bh * h,
        an * (1 - n) - bn * n,
        (p_inf - p) / tau_p,
    ]


def test_against_scipy():
    """The sbi example's protocol (0.5 nA from 10 to 110 ms of 120) against LSODA
    (rtol 1e-10). First order in dt: measured spike-time error 0.103 ms at dt 0.005,
    0.052 ms at 0.0025 (0.47 ms at 0.025), same 5 spikes."""
    cell = POSPISCHIL
    i_on = 0.5 * 1e5 / cell.area
    y = [float(s) for s in cell.initial_state()]
    t = np.arange(0, 120 + 1e-9, 0.0005)
    v = np.empty_like(t)
    for a, b, i_app in ((0, 10, 0.0), (10, 110, i_on), (110, 120, 0.0)):
        ref = solve_ivp(
            _goncalves_rhs, (a, b), y, args=(i_app,), method="LSODA", rtol=1e-10, atol=1e-10,
            max_step=0.05, dense_output=True,
        )  # fmt: skip
        inside = (t >= a) & (t <= b)
        v[inside] = ref.sol(t[inside])[0]
        y = ref.y[:, -1]
    ref_spikes = spike_times(v, 0.0005)
    assert len(ref_spikes) == 5
    errors = []
    for dt in (0.005, 0.0025):
        ours = spike_times(simulate(cell, CurrentClamp((0.5,), 10.0, 110.0, 120.0, dt=dt))[0], dt)
        assert ours.shape == ref_spikes.shape
        errors.append(np.abs(ours - ref_spikes).max())
    assert errors[1] < 0.06
    assert 1.8 < errors[0] / errors[1] < 2.2


def test_tonic_adapting_and_at_rest():
    """Under 0.3-1 nA for 300 ms the cell fires to the end of the step; with its M current
    the intervals grow (0.5 nA: 14.7 ms, then up to 27.4 ms), without it they do not
    (12.24 ms throughout); with no input it stays at rest (-70.7 mV) without spiking."""
    protocol = CurrentClamp((0.3, 0.5, 1.0, 0.0), 100.0, 400.0, 500.0)
    with jax.enable_x64(False):  # the fitting precision, at NEURON's dt
        v, v_no_m = np.asarray(
            simulate_population(Pospischil(g_M=jnp.array([0.07, 0.0])), protocol)
        )
    assert np.all(np.isfinite(v))
    for k in range(3):
        isi = np.diff(spike_times(v[k], 0.025))
        assert len(isi) >= 3
        assert spike_times(v[k], 0.025)[-1] > 350.0  # tonic: still firing at the end
        assert (
            np.all(np.diff(isi) > -0.05) and isi[-1] > 1.25 * isi[0]
        )  # adapting (1 nA: 7.2 -> 9.5 ms)
        isi_no_m = np.diff(spike_times(v_no_m[k], 0.025))
        assert isi_no_m.max() - isi_no_m.min() < 0.1
    rest = v[3]
    assert spike_times(rest, 0.025).size == 0
    assert rest.min() > -70.8 and rest.max() <= -70.0 + 1e-4
    assert abs(rest[-1] - rest[-2]) < 1e-4


def test_calcium_option():
    """The L-type Ca2+ current adds (q, r) to the state, changes the firing when g_Ca > 0,
    and is nothing at g_Ca = 0; g_Ca without `calcium=True` is an error, not ignored."""
    cell = Pospischil(calcium=True, g_Ca=0.2)
    state = cell.initial_state()
    assert len(state) == 7 and len(POSPISCHIL.initial_state()) == 5
    np.testing.assert_allclose(state[1:], [x for x, _ in cell.gates(state[0])])
    state = tuple(jnp.asarray(x) for x in (-50.0, 0.1, 0.6, 0.3, 0.05, 0.2, 0.7))
    np.testing.assert_allclose(
        Pospischil(calcium=True).currents(state), POSPISCHIL.currents(state[:5])
    )
    i_ca = 0.2 * 0.2**2 * 0.7 * (-50.0 - 120.0)
    np.testing.assert_allclose(cell.currents(state)[0], POSPISCHIL.currents(state[:5])[0] + i_ca)
    v = simulate_population(
        Pospischil(calcium=True, g_Ca=jnp.array([0.0, 0.2])), CurrentClamp((2.0,), 1.0, 19.0, 20.0)
    )
    assert not np.allclose(v[0], v[1])
    with pytest.raises(ConfigError, match="calcium=True"):
        Pospischil(g_Ca=0.1)


def test_area_and_derivatives_float32():
    """Differentiable in its fields (forward mode here; reverse mode is tested on NeuronHH
    through the same simulator) in float32 through a spike."""
    assert POSPISCHIL.area == pytest.approx(math.pi * 70.0**2)
    protocol = CurrentClamp((2.0,), 1.0, 9.0, 10.0)
    with jax.enable_x64(False):

        def mean_v(g):
            return jnp.mean(simulate(Pospischil(g_Na=g[0], g_M=g[1], V_T=g[2]), protocol))

        g = jnp.array([50.0, 0.07, -60.0])
        for tangent in jnp.eye(3):
            _, dv = jax.jvp(mean_v, (g,), (tangent,))
            assert np.isfinite(dv) and dv != 0
