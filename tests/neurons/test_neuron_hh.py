"""NeuronHH against NEURON itself (committed traces, and a live run in the slow suite),
against scipy with hh.mod's rates written anew, and in float32.

Measured against tests/fixtures/neuron/ (NEURON 9.0.2, stored as float32 every 0.1 ms)
in float64: V RMSE 1.4e-6 to 1.9e-6 mV, max 3.8e-6 mV (the float32 rounding of the
stored trace), spike times within 5e-11 ms, the same spike counts; in float32: RMSE
1.3e-4 to 3.7e-3 mV, spike times within 5e-4 ms.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from bbpes.fitting import CurrentClamp, simulate, simulate_population
from bbpes.neurons.neuron_hh import NEURON_HH, NeuronHH

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "neuron"
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"


def _reference(directory: Path = FIXTURES) -> tuple[dict, dict]:
    meta = json.loads((directory / "hh_reference.json").read_text())
    with np.load(directory / "hh_reference.npz") as data:
        return meta, dict(data)


def _case(case: dict) -> tuple[NeuronHH, CurrentClamp]:
    cell = NeuronHH(
        diam=case["diam"], L=case["L"], celsius=case["celsius"], use_table=bool(case["usetable"])
    )
    protocol = CurrentClamp(
        tuple(case["amplitudes"]), case["start"], case["end"], case["duration"],
        holding=case["holding"],
    )  # fmt: skip
    return cell, protocol


def spike_times(v: np.ndarray, dt: float) -> np.ndarray:
    """Upward 0 mV crossings (ms), linearly interpolated, as the reference script does."""
    v = np.asarray(v, np.float64)
    i = np.flatnonzero((v[:-1] < 0) & (v[1:] >= 0))
    return (i + (0 - v[i]) / (v[i + 1] - v[i])) * dt


META, DATA = _reference()


@pytest.mark.parametrize("name", list(META["cases"]))
def test_matches_neuron_float64(name):
    cell, protocol = _case(META["cases"][name])
    v = np.asarray(simulate(cell, protocol))
    assert v.dtype == np.float64
    every = META["record_every"]
    for k in range(protocol.n_sweeps):
        err = v[k, ::every] - DATA[f"{name}_v"][k]
        assert np.sqrt(np.mean(err**2)) < 3e-6  # measured 1.4e-6 to 1.9e-6 mV
        assert np.abs(err).max() < 5e-6  # measured 3.8e-6 mV: float32 storage
        ours, theirs = spike_times(v[k], protocol.dt), DATA[f"{name}_spikes_{k}"]
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)  # measured 5e-11 ms


@pytest.mark.parametrize("name", ["tc1", "geometry2"])
def test_matches_neuron_float32(name):
    cell, protocol = _case(META["cases"][name])
    with jax.enable_x64(False):
        v = np.asarray(simulate(cell, protocol))
    assert v.dtype == np.float32
    for k in range(protocol.n_sweeps):
        err = v[k, :: META["record_every"]] - DATA[f"{name}_v"][k]
        assert np.sqrt(np.mean(err**2)) < 1e-2  # measured 6.7e-4 and 3.7e-3 mV
        ours, theirs = spike_times(v[k], protocol.dt), DATA[f"{name}_spikes_{k}"]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-3)  # measured 2.7e-4 ms


def test_area_and_defaults():
    assert NEURON_HH.area == pytest.approx(math.pi * 10 * 100)
    assert (NEURON_HH.gnabar, NEURON_HH.gkbar, NEURON_HH.gl) == (0.12, 0.036, 0.0003)
    assert NEURON_HH.use_table


def test_steady_state_at_rest():
    """finitialize puts every gate at its steady state: one step at v_init changes no
    gate beyond the drift of v; and the cell settles where i_ion = 0 (-64.974 mV,
    NEURON's own trace before the step)."""
    state = NEURON_HH.initial_state()
    minf, hinf, ninf, *_ = NEURON_HH.gates(state[0])
    np.testing.assert_allclose([state[1], state[2], state[3]], [minf, hinf, ninf], rtol=1e-15)
    protocol = CurrentClamp((0.0,), 0.0, 1.0, 200.0)
    v = np.asarray(simulate(NEURON_HH, protocol))[0]
    assert v[-1] == pytest.approx(DATA["tc1_v"][0][1999], abs=1e-5)  # 199.9 ms in tc1
    assert abs(v[-1] - v[-2]) < 1e-9
    i_ion, _ = NEURON_HH.currents((jnp.asarray(v[-1]), *NEURON_HH.gates(jnp.asarray(v[-1]))[:3]))
    assert abs(float(i_ion)) < 1e-6


def _hh_mod_rhs(t, y, i_app, celsius):
    """hh.mod transcribed anew (NumPy, exact rates), for scipy: dy/dt in mV/ms and 1/ms."""
    v, m, h, n = y
    q10 = 3 ** ((celsius - 6.3) / 10)

    def vtrap(x, yy):
        return yy * (1 - x / yy / 2) if abs(x / yy) < 1e-6 else x / (math.exp(x / yy) - 1)

    am, bm = 0.1 * vtrap(-(v + 40), 10), 4 * math.exp(-(v + 65) / 18)
    ah, bh = 0.07 * math.exp(-(v + 65) / 20), 1 / (math.exp(-(v + 35) / 10) + 1)
    an, bn = 0.01 * vtrap(-(v + 55), 10), 0.125 * math.exp(-(v + 65) / 80)
    i_ion = 120 * m**3 * h * (v - 50) + 36 * n**4 * (v + 77) + 0.3 * (v + 54.3)  # µA/cm²
    return [
        i_app - i_ion,
        q10 * (am * (1 - m) - bm * m),
        q10 * (ah * (1 - h) - bh * h),
        q10 * (an * (1 - n) - bn * n),
    ]


def test_exact_rates_against_scipy():
    """use_table=False against LSODA (rtol 1e-10) on hh.mod rates written independently:
    100 ms of firing (21 spikes) under 10 µA/cm² at 20 °C. The scheme is first order, so
    the spike-time error shrinks with dt: measured 0.171 ms at dt 0.0025, 0.068 ms at
    0.001 (ratio 2.52 for a dt ratio of 2.5), 0.72 ms at 0.01; wrong rates would not
    converge to the reference."""
    cell = NeuronHH(celsius=20.0, use_table=False)
    i_app = 10.0
    state = cell.initial_state()
    y0 = [float(s) for s in state]
    ref = solve_ivp(
        _hh_mod_rhs, (0, 100), y0, args=(i_app, 20.0), method="LSODA", rtol=1e-10,
        atol=1e-10, max_step=0.02, dense_output=True,
    )  # fmt: skip
    t = np.arange(0, 100 + 1e-9, 0.0005)
    ref_spikes = spike_times(ref.sol(t)[0], 0.0005)
    assert len(ref_spikes) == 21

    errors = []
    for dt in (0.0025, 0.001):
        step = lambda s, _, dt=dt: (cell.step(s, i_app, dt),) * 2
        _, traj = jax.lax.scan(step, state, None, length=round(100 / dt))
        ours = spike_times(np.concatenate([[y0[0]], np.asarray(traj[0])]), dt)
        assert ours.shape == ref_spikes.shape
        errors.append(np.abs(ours - ref_spikes).max())
    assert errors[1] < 0.08
    assert 2.3 < errors[0] / errors[1] < 2.7
    # The vector field itself equals the transcription (rates and currents).
    for vv in (-80.0, -55.0, -40.0, -40.0 + 1e-9, 0.0, 30.0):
        y = (vv, 0.1, 0.5, 0.4)
        ours_f = cell.vector_field(tuple(jnp.asarray(x) for x in y), 3.0)
        np.testing.assert_allclose(ours_f, _hh_mod_rhs(0, y, 3.0, 20.0), rtol=1e-12)


def test_table_is_neurons():
    """The table interpolates the exact rates at whole mV and is clamped outside
    [-100, 100] mV, like NEURON's generated code."""
    table, exact = NeuronHH(), NeuronHH(use_table=False)
    for v in (-100.0, -64.0, -40.0, 0.0, 17.0, 100.0):
        np.testing.assert_allclose(
            table.gates(jnp.asarray(v)), exact.gates(jnp.asarray(v)), rtol=1e-14
        )
    np.testing.assert_allclose(table.gates(jnp.asarray(-130.0)), table.gates(jnp.asarray(-100.0)))
    np.testing.assert_allclose(table.gates(jnp.asarray(150.0)), table.gates(jnp.asarray(100.0)))
    mid = [
        0.5 * (a + b)
        for a, b in zip(exact.gates(jnp.asarray(-41.0)), exact.gates(jnp.asarray(-40.0)))
    ]
    np.testing.assert_allclose(table.gates(jnp.asarray(-40.5)), mid, rtol=1e-14)


def test_gradients_vmap_and_stability():
    """Differentiable in its fields through 20 ms with a spike, vmappable over fields
    (float32, the fitting precision), and stable at NEURON's dt under a strong drive
    (gates stay in [0, 1])."""
    protocol = CurrentClamp((0.3,), 2.0, 18.0, 20.0)
    with jax.enable_x64(False):
        cells = NeuronHH(gnabar=jnp.array([0.12, 0.10]), celsius=jnp.array([6.3, 20.0]))
        loss = eqx.filter_grad(lambda c: jnp.mean(simulate_population(c, protocol)))
        grads = loss(cells)
        for g in (grads.gnabar, grads.celsius):
            assert g.dtype == jnp.float32 and np.all(np.isfinite(g)) and np.all(g != 0)
        step = lambda s, _: (NEURON_HH.step(s, 30.0, 0.025), s)  # 30 µA/cm²
        _, traj = jax.lax.scan(step, NEURON_HH.initial_state(), None, 2000)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in traj)
        assert all(bool(jnp.all((x >= 0) & (x <= 1))) for x in traj[1:])


def _python_with_neuron():
    """This interpreter where NEURON is installed here (`pip install -e '.[neuron]'`, as
    .ci/run does), else the peers venv's (`make peers`); skipped only where neither has it."""
    if importlib.util.find_spec("neuron") is not None:
        return sys.executable
    if not PEERS_PYTHON.exists():
        pytest.skip("NEURON is not installed: pip install -e '.[neuron]' (or make peers)")
    return PEERS_PYTHON


@pytest.mark.slow
def test_live_neuron(tmp_path):
    """Runs NEURON now (benchmarks/peers/neuron_reference.py --full, every step in float64)
    and compares every case: measured RMSE <= 1.0e-9 mV, max |dV| 9.1e-9 mV (celsius20)."""
    python = _python_with_neuron()
    script = ROOT / "benchmarks" / "peers" / "neuron_reference.py"
    subprocess.run(
        [str(python), str(script), "--out", str(tmp_path), "--full"],
        check=True, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    meta, data = _reference(tmp_path)
    assert meta["record_every"] == 1
    for name, case in meta["cases"].items():
        cell, protocol = _case(case)
        v = np.asarray(simulate(cell, protocol))
        for k in range(protocol.n_sweeps):
            np.testing.assert_allclose(v[k], data[f"{name}_v"][k], rtol=0, atol=3e-8)
