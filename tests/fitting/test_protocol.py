"""CurrentClamp: validation, NEURON's stimulus timing, shapes; simulate and
simulate_population against a plain Python loop over the cell's own step."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.fitting import CurrentClamp, simulate, simulate_float64, simulate_population
from bbpes.neurons import HODGKIN_HUXLEY
from bbpes.neurons.neuron_hh import NEURON_HH, NeuronHH
from bbpes.neurons.pospischil import Pospischil


def test_shapes_and_times():
    p = CurrentClamp((0.1, 0.2, 0.3), 1.0, 3.0, 5.0, dt=0.25, record_every=4)
    assert (p.n_sweeps, p.n_steps, p.n_recorded) == (3, 20, 6)
    np.testing.assert_allclose(p.times(), [0, 1, 2, 3, 4, 5])
    assert p.current().shape == (3, 20)
    assert hash(p) == hash(CurrentClamp((0.1, 0.2, 0.3), 1.0, 3.0, 5.0, dt=0.25, record_every=4))


@pytest.mark.parametrize(
    ("start", "end", "on"),
    [
        (1.0, 2.0, range(4, 8)),  # on the grid: steps 4-7 (midpoints 1.125 ... 1.875)
        (1.1, 2.1, range(4, 8)),  # 1.125 >= 1.1 > 0.875; 2.125 >= 2.1: off from step 8
        (1.13, 2.13, range(5, 9)),  # 1.125 < 1.13: first on at 1.375
        (0.0, 5.0, range(0, 20)),
    ],
)
def test_iclamp_timing(start, end, on):
    """On in the steps whose midpoint n dt + dt/2 is in [start, end), as NEURON's IClamp
    (checked against NEURON in tests/neurons/test_neuron_hh.py, case geometry2)."""
    p = CurrentClamp((0.5,), start, end, 5.0, dt=0.25, holding=-0.1)
    expected = np.full(20, -0.1)
    expected[list(on)] += 0.5
    np.testing.assert_allclose(p.current()[0], expected)
    assert p.window == (on[0], on[-1] + 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(amplitudes=()), "one or more finite amplitudes"),
        (dict(amplitudes=(float("nan"),)), "finite amplitudes"),
        (dict(start=3.0, end=2.0), "start < end"),
        (dict(start=-1.0), "0 <= start"),
        (dict(end=6.0), "after the end of the sweep"),
        (dict(dt=0.0), "dt must be > 0"),
        (dict(duration=5.01), "whole number of steps"),
        (dict(duration=-5.0), "duration must be > 0"),
        (dict(record_every=3), "record_every"),
        (dict(record_every=0), "record_every"),
        (dict(holding=(0.1, 0.2)), "2 holding currents for 1 sweeps"),
        (dict(start=1.01, end=1.02), "covers no step"),
    ],
)
def test_errors(kwargs, match):
    args = dict(amplitudes=(0.1,), start=1.0, end=2.0, duration=5.0, dt=0.25)
    with pytest.raises(ConfigError, match=match) as err:
        CurrentClamp(**{**args, **kwargs})
    assert "\n" not in str(err.value)


def _loop(cell, protocol: CurrentClamp) -> np.ndarray:
    """The protocol played with a Python loop over `cell.step` and `protocol.current()`."""
    current = protocol.current() * 1e5 / cell.area
    step = jax.jit(lambda state, i_app: cell.step(state, i_app, protocol.dt))
    out = []
    for k in range(protocol.n_sweeps):
        state, v = cell.initial_state(), [cell.initial_state()[0]]
        for n in range(protocol.n_steps):
            state = step(state, current[k, n])
            v.append(state[0])
        out.append(np.asarray(v)[:: protocol.record_every])
    return np.stack(out)


def test_simulate_equals_loop():
    p = CurrentClamp((0.3, -0.1), 0.31, 0.81, 1.0, holding=(0.0, 0.05), record_every=4)
    for cell in (NEURON_HH, Pospischil(diam=20.0)):
        v = simulate(cell, p)
        assert v.shape == (2, p.n_recorded) and v.dtype == jnp.float64
        np.testing.assert_allclose(v, _loop(cell, p), rtol=0, atol=1e-12)


def test_population_equals_one_by_one():
    p = CurrentClamp((0.2, 0.3, 0.5), 2.0, 18.0, 20.0, record_every=2)
    gnabar = jnp.array([0.10, 0.12, 0.15, 0.2])
    cells = NeuronHH(gnabar=gnabar, L=jnp.array([80.0, 100.0, 120.0, 60.0]))
    v = simulate_population(cells, p)
    assert v.shape == (4, 3, p.n_recorded)
    for i in range(4):
        one = NeuronHH(gnabar=gnabar[i], L=cells.L[i])
        np.testing.assert_allclose(v[i], simulate(one, p), rtol=0, atol=1e-12)
    with jax.enable_x64(False):
        cells32 = NeuronHH(gnabar=gnabar.astype(jnp.float32), L=cells.L.astype(jnp.float32))
        v32 = simulate_population(cells32, p)
        assert v32.dtype == jnp.float32
    np.testing.assert_allclose(v32, v, atol=0.05)


def test_simulate_float64_leaves_x64_alone():
    p = CurrentClamp((0.3,), 1.0, 3.0, 4.0)
    with jax.enable_x64(False):
        cell = NeuronHH(gnabar=jnp.asarray(0.125, jnp.float32))  # exact in float32
        v = simulate_float64(cell, p)
        assert v.dtype == np.float64
        assert jnp.zeros(()).dtype == jnp.float32  # still off here
    np.testing.assert_allclose(v, simulate(NeuronHH(gnabar=0.125), p), rtol=0, atol=1e-12)


def test_simulate_errors():
    p = CurrentClamp((0.3,), 1.0, 3.0, 4.0)
    with pytest.raises(ConfigError, match="area"):
        simulate(HODGKIN_HUXLEY, p)
    with pytest.raises(ConfigError, match="leading population axis"):
        simulate_population(NeuronHH(gnabar=jnp.ones(3), gkbar=jnp.ones(2)), p)
    with pytest.raises(ConfigError, match="leading population axis"):
        simulate_population(NEURON_HH, p)
    with pytest.raises(ConfigError, match="leading population axis"):
        simulate_population(NeuronHH(gnabar=jnp.ones(3), gl=jnp.asarray(3e-4)), p)


_SPLIT_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from bbpes.fitting import CurrentClamp, simulate, simulate_population
from bbpes.neurons import NeuronHH
assert jax.device_count() == 2
p = CurrentClamp((0.3, 0.1), 2.0, 18.0, 20.0)
gnabar = jnp.array([0.10, 0.12, 0.15, 0.2])
v = simulate_population(NeuronHH(gnabar=gnabar), p)
assert len(v.sharding.device_set) == 2
for i in range(4):
    np.testing.assert_allclose(v[i], simulate(NeuronHH(gnabar=gnabar[i]), p), atol=1e-5)
print("ok")
"""


@pytest.mark.slow
def test_population_split_over_devices(run_script, tmp_path):
    """With one device per CPU core the population is split across them, same traces."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = run_script([sys.executable, "-c", _SPLIT_SCRIPT], tmp_path, env)
    assert out.stdout.strip() == "ok"
