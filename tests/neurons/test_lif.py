"""Leaky integrate-and-fire against the analytic inter-spike interval and an independent
event-driven scipy solution; its reset as BPTT and the ODE view see it."""

from __future__ import annotations

import functools

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from bbpes.neurons import DRIVE, LEAKY_INTEGRATE_AND_FIRE, LIF, cell_by_name, simulate, spike_times

CELL = LEAKY_INTEGRATE_AND_FIRE
_simulate = jax.jit(simulate, static_argnums=(2, 3))


def analytic_spikes(i_app: float, t_end: float = 1000.0) -> np.ndarray:
    """From rest (V = E_L = V_reset), the first spike after tau ln(R I / (R I - 15 mV)),
    then one every t_ref + tau ln((R I - (V_reset - E_L)) / (R I - (V_th - E_L)))."""
    tau, R = 10.0, 10.0  # ms, kΩ cm² (C = 1 µF/cm², g_L = 0.1 mS/cm²)
    if R * i_app <= 15.0:
        return np.array([])
    first = tau * np.log(R * i_app / (R * i_app - 15.0))
    period = 2.0 + tau * np.log((R * i_app - 0.0) / (R * i_app - 15.0))
    return np.arange(first, t_end, period)


@functools.cache
def scipy_spikes(i_app: float, t_end: float = 1000.0) -> np.ndarray:
    """An event-driven scipy solution: solve the subthreshold ODE to the threshold event,
    reset, sit out 2 ms, repeat (RK45, tolerances 1e-12)."""

    def field(t, y):
        return [0.1 * (-65.0 - y[0]) + i_app]

    def threshold(t, y):
        return y[0] + 50.0

    threshold.terminal, threshold.direction = True, 1.0
    t, V, times = 0.0, -65.0, []
    while t < t_end:
        sol = solve_ivp(field, (t, t_end), [V], rtol=1e-12, atol=1e-12, events=threshold)
        if not sol.t_events[0].size:
            break
        times.append(sol.t_events[0][0])
        t, V = times[-1] + 2.0, -65.0
    return np.array(times)


def spikes(i_app, dt: float, cell: LIF = CELL, t_end: float = 1000.0) -> np.ndarray:
    t, _, r, s = _simulate(cell, i_app, t_end, dt)
    times = np.asarray(spike_times(cell, t, r, s))
    return times[~np.isnan(times)]


@pytest.mark.parametrize("i_app", [1.4, 1.5, 1.51, 1.8, 3.0, 20.0])
@pytest.mark.parametrize("dt", [0.01, 0.1, 1.0])
def test_spike_times_are_exact_at_any_step(i_app, dt):
    """Spike times equal the analytic ones to 1e-8 ms at every step size up to t_ref
    (no spike below the rheobase of 1.5 µA/cm²)."""
    ours, exact = spikes(i_app, dt), analytic_spikes(i_app)
    assert len(ours) == len(exact)
    if len(exact):
        np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-8)


@pytest.mark.parametrize("i_app, count", [(1.6, 33), (DRIVE["lif"], 50)])
def test_spike_times_match_event_driven_scipy(i_app, count):
    ref = scipy_spikes(i_app)
    ours = spikes(i_app, 0.1)
    assert len(ref) == len(ours) == count
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)


def test_interspike_interval_and_rheobase():
    assert CELL.rheobase() == pytest.approx(1.5)
    assert CELL.interspike_interval(1.8) == pytest.approx(2.0 + 10.0 * np.log(6.0))
    np.testing.assert_allclose(np.diff(spikes(1.8, 0.1)), CELL.interspike_interval(1.8))


def test_rest_below_rheobase_and_reset_above():
    _, V, r, s = _simulate(CELL, jnp.array([1.0, 1.8]), 1000.0, 0.1)
    np.testing.assert_allclose(V[-1, 0], -55.0, atol=1e-10)  # V_inf = E_L + I / g_L
    assert float(jnp.max(V)) < CELL.V_th  # never above threshold after a step
    assert float(jnp.sum(s[:, 0])) == 0 and float(jnp.sum(s[:, 1])) == 50
    assert float(jnp.max(r)) <= CELL.t_ref
    refractory = (r[:-1, 1] > 1e-9) & (r[1:, 1] > 1e-9)  # held at V_reset while refractory
    np.testing.assert_allclose(V[1:, 1][refractory], CELL.V_reset)


@pytest.mark.parametrize("dt", [0.05, 0.1, 0.5])
def test_hard_output_is_a_refractory_wide_pulse_per_spike(dt):
    _, V, r, s = _simulate(CELL, 1.8, 1000.0, dt)
    pulse = np.asarray(CELL.output((V, r, s), hard=True))
    rising = np.sum((pulse[1:] == 1) & (pulse[:-1] == 0))
    assert rising == 50  # one pulse per spike
    assert abs(pulse.sum() * dt / 50 - CELL.t_ref) <= dt  # each about t_ref wide
    soft = CELL.output((V, r, s))
    assert float(soft.max()) < 0.5 and float(soft.min()) >= 0.0


def test_bptt_carries_the_gradient_of_spike_times():
    """d(V at 100 ms)/dI through five resets matches central finite differences."""
    loss = jax.jit(lambda i: simulate(CELL, i, 100.0, 0.1)[1][-1])
    grad = jax.grad(loss)(1.8)
    eps = 1e-6
    fd = (loss(1.8 + eps) - loss(1.8 - eps)) / (2 * eps)
    assert abs(grad) > 10.0  # a spike-time gradient, not only the subthreshold one
    np.testing.assert_allclose(grad, fd, rtol=1e-6)
    assert (
        jax.grad(lambda i: jnp.sum(CELL.output(CELL.step(CELL.initial_state(), i, 1.0), True)))(
            20.0
        )
        == 0.0
    )


def test_ode_view_has_no_reset():
    """diffrax integrates the subthreshold equation only: V relaxes to E_L + I / g_L."""
    term = diffrax.ODETerm(lambda t, y, i: CELL.vector_field(y, i))
    sol = diffrax.diffeqsolve(
        term, diffrax.Tsit5(), 0.0, 100.0, 0.1, CELL.initial_state(), args=1.8,
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
    )  # fmt: skip
    V, r, s = (x[-1] for x in sol.ys)
    np.testing.assert_allclose(V, -65.0 + 18.0 * (1 - np.exp(-10.0)), rtol=1e-7)
    assert CELL.V_th < V and r == 0 and s == 0


def test_step_rejects_a_negative_dt():
    with pytest.raises(ValueError, match="dt > 0"):
        CELL.step(CELL.initial_state(), 1.8, -0.1)


def test_vmap_over_parameters_and_currents():
    cells = LIF(t_ref=jnp.array([2.0, 0.5]))
    run = eqx.filter_jit(
        eqx.filter_vmap(
            lambda c, i: simulate(c, i, 100.0, 0.1)[3].sum(), in_axes=(eqx.if_array(0), 0)
        )
    )
    counts = run(cells, jnp.array([1.8, 3.0]))
    single = _simulate(LIF(t_ref=0.5), 3.0, 100.0, 0.1)[3].sum()
    np.testing.assert_array_equal(counts, [5, single])
    first = 10.0 * np.log(30.0 / 15.0)  # V_reset = E_L: every free interval is the first
    assert single == len(np.arange(first, 100.0, 0.5 + first))


def test_float32_keeps_the_spike_count_at_drive():
    with jax.enable_x64(False):
        cell = cell_by_name("lif")
        _, V, _, s = _simulate(cell, DRIVE["lif"], 1000.0, 0.1)
        assert V.dtype == jnp.float32
        assert float(s.sum()) == 50
