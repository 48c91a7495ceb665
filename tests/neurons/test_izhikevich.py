"""The Izhikevich cell, written only from its equations (the default step), against an
independent event-driven scipy solution: integrate to v = 30 mV, reset, repeat."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from bbpes.neurons import DRIVE, IZHIKEVICH, AbstractCell, Izhikevich, cell_by_name, simulate

CELL = IZHIKEVICH
_simulate = jax.jit(simulate, static_argnums=(2, 3))


@functools.cache
def scipy_spikes(i_app: float, t_end: float = 1000.0) -> np.ndarray:
    """Spike times (ms) from rest, LSODA at tolerance 1e-10 with a terminal event at
    v = 30 mV, then v <- c, u <- u + d (Izhikevich 2003, Eqs. 1-3, in numpy)."""
    a, b, c, d = 0.02, 0.2, -65.0, 8.0

    def field(t, y):
        v, u = y
        return [0.04 * v * v + 5 * v + 140 - u + i_app, a * (b * v - u)]

    def peak(t, y):
        return y[0] - 30.0

    peak.terminal, peak.direction = True, 1.0
    t, y, times = 0.0, [-70.0, -14.0], []
    while t < t_end:
        sol = solve_ivp(field, (t, t_end), y, method="LSODA", rtol=1e-10, atol=1e-10, events=peak)
        if not sol.t_events[0].size:
            break
        t = sol.t_events[0][0]
        times.append(t)
        y = [c, sol.y_events[0][0][1] + d]
    return np.array(times)


def spikes(i_app: float, dt: float, cell: Izhikevich = CELL) -> np.ndarray:
    """Our spike times: the states at the peak (v >= 30 mV), one per spike."""
    t, v, _ = _simulate(cell, i_app, 1000.0, dt)
    return np.asarray(t)[np.asarray(v) >= cell.v_peak]


def test_the_cell_uses_the_default_step():
    assert Izhikevich.step is AbstractCell.step


@pytest.mark.parametrize(
    "i_app, count", [(3.0, 1), (3.8, 6), (DRIVE["izhikevich"], 23), (20.0, 46)]
)
def test_spike_counts_and_times_match_scipy(i_app, count):
    """Same count over 1 s at dt = 0.1 ms (one onset spike at 3.0, tonic from 3.8), and
    times within 2 dt per spike: each reset comes up to one step late (and near the
    onset of tonic firing, at 3.8, the slow passage stretches that lag a little)."""
    ref, ours = scipy_spikes(i_app), spikes(i_app, 0.1)
    assert len(ref) == len(ours) == count
    assert np.all(ours >= ref - 1e-9)  # never early
    assert np.max(ours - ref) < 2 * 0.1 * count


def test_spike_times_converge_with_the_step():
    """The lag is first order in dt: 2.9 ms at dt = 0.1, 0.19 ms at 0.01 (I = 10)."""
    ref = scipy_spikes(10.0)
    errors = [np.max(np.abs(spikes(10.0, dt) - ref)) for dt in (0.1, 0.01)]
    assert errors[1] < 0.25 and errors[0] / errors[1] > 8


def test_rest_is_a_fixed_point_and_the_reset_jumps():
    for b in (0.2, 0.25):  # the regular-spiking and low-threshold classes
        cell = Izhikevich(b=b)
        np.testing.assert_allclose(cell.vector_field(cell.initial_state(), 0.0), 0.0, atol=1e-12)
    _, v, _ = _simulate(CELL, 0.0, 500.0, 0.1)
    np.testing.assert_allclose(v, -70.0, atol=1e-12)
    # a step that starts at the peak starts from (c, u + d) instead
    peak = (jnp.array(31.0), jnp.array(-10.0))
    np.testing.assert_array_equal(
        CELL.step(peak, 10.0, 0.1), CELL.step((jnp.array(-65.0), jnp.array(-2.0)), 10.0, 0.1)
    )


def test_the_hard_output_sees_every_spike():
    _, v, u = _simulate(CELL, DRIVE["izhikevich"], 1000.0, 0.1)
    hard = np.asarray(CELL.output((v, u), hard=True))
    assert np.sum((hard[1:] == 1) & (hard[:-1] == 0)) == 23


def test_vmap_over_parameters_and_currents():
    cells = Izhikevich(d=jnp.array([8.0, 2.0]))  # regular spiking; d = 2: fast spiking-like
    count = lambda c, i: jnp.sum(simulate(c, i, 300.0, 0.1)[1] >= 30.0)
    counts = eqx.filter_jit(eqx.filter_vmap(count, in_axes=(eqx.if_array(0), 0)))(
        cells, jnp.array([10.0, 10.0])
    )
    assert counts[0] == np.sum(spikes(10.0, 0.1) < 300.0)
    assert counts[1] == count(Izhikevich(d=2.0), 10.0) and counts[1] > counts[0]


def test_float32_keeps_the_spike_count_at_drive():
    with jax.enable_x64(False):
        cell = cell_by_name("izhikevich")
        _, v, _ = _simulate(cell, DRIVE["izhikevich"], 1000.0, 0.1)
        assert v.dtype == jnp.float32 and int(jnp.sum(v >= 30.0)) == 23


def test_bptt_through_the_default_step_matches_finite_differences():
    """Below the first spike (40 ms at I = 10) the trajectory is smooth in I."""
    final = jax.jit(lambda i: simulate(CELL, i, 20.0, 0.1)[1][-1])
    eps = 1e-5
    fd = (final(10.0 + eps) - final(10.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(final)(10.0), fd, rtol=1e-6)
