"""FitParameter and ParameterSpace: round trips, bounds kept for any z in float32 and
float64, finite gradients, sampling, building cells, one-line errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.fitting import FitParameter, ParameterSpace
from bbpes.neurons.neuron_hh import NeuronHH

SPACE = ParameterSpace(
    (
        FitParameter("gnabar", 0.05, 0.5, "S/cm2"),  # loglogit
        FitParameter("gkbar", 0.01, 0.1, "S/cm2", "logit"),
        FitParameter("gl", 1e-5, 1e-3, "S/cm2", "loglogit"),
        FitParameter("el", -70.0, -50.0, "mV", "identity"),
    )
)
LOW = np.array([p.low for p in SPACE.parameters])
HIGH = np.array([p.high for p in SPACE.parameters])
N = 4000  # draws per sample() call in these tests
BOUNDED = np.array([p.transform != "identity" for p in SPACE.parameters])


@pytest.mark.parametrize("x64", [True, False])
def test_round_trip(key, x64):
    with jax.enable_x64(x64):
        values = SPACE.sample(key, (N,))  # one shape throughout: fewer compiles
        z = SPACE.to_unconstrained(values)
        assert z.shape == (N, 4) and bool(jnp.all(jnp.isfinite(z)))
        rtol = 1e-12 if x64 else 2e-5
        np.testing.assert_allclose(SPACE.to_values(z), values, rtol=rtol)
        # |z| <= 6: further out float32 cannot resolve the value's distance to its bound
        zz = jnp.asarray(np.random.default_rng(0).uniform(-6, 6, (N, 4)))
        np.testing.assert_allclose(
            SPACE.to_unconstrained(SPACE.to_values(zz)), zz, rtol=rtol * 10, atol=rtol * 10
        )


@pytest.mark.parametrize("x64", [True, False])
def test_values_stay_strictly_inside(x64):
    big = [0.0, 1.0, 10.0, 17.0, 40.0, 100.0, 1e4, 1e30, math.inf]
    with jax.enable_x64(x64):
        z = jnp.asarray([[s * b] * 4 for b in big for s in (1, -1)])
        x = np.asarray(SPACE.to_values(z))
        assert x.dtype == (np.float64 if x64 else np.float32)
        low = LOW.astype(x.dtype)
        high = HIGH.astype(x.dtype)
        inside = (x > low) & (x < high)
        assert inside[:, BOUNDED].all()
        # the bounds themselves map to finite z (just inside them)
        z_edges = SPACE.to_unconstrained(jnp.stack([low, high]))
        assert bool(jnp.all(jnp.isfinite(z_edges)))


@pytest.mark.parametrize("x64", [True, False])
def test_gradients_finite(x64):
    """Each value depends on its own z only, so the gradient of the sum is the diagonal of
    the Jacobian: finite everywhere, positive where the sigmoid does not saturate."""
    with jax.enable_x64(x64):
        z = jnp.array([1.0, -1.0, 0.5, 2.0]) * jnp.array([[0.0], [0.1], [3.0], [30.0], [1e4]])
        dx_dz = jax.grad(lambda z: jnp.sum(SPACE.to_values(z)))(z)
        assert bool(jnp.all(jnp.isfinite(dx_dz)))
        assert bool(jnp.all(dx_dz[:3] > 0))
        x = jnp.array([[0.1, 0.05, 1e-4, -60.0], [0.05, 0.1, 1e-3, -70.0]])  # 2nd: bounds
        dz_dx = jax.grad(lambda x: jnp.sum(SPACE.to_unconstrained(x)))(x)
        assert bool(jnp.all(jnp.isfinite(dz_dx)))


def test_sample_distribution(key):
    x = np.asarray(SPACE.sample(key, (N,)))
    assert ((x >= LOW) & (x <= HIGH)).all()
    # logit, identity: uniform (median at the midpoint); loglogit: log-uniform (median at
    # the geometric mean). 4,000 draws: the median is within ~2.5% of the range.
    for j, p in enumerate(SPACE.parameters):
        mid = math.sqrt(p.low * p.high) if p.transform == "loglogit" else (p.low + p.high) / 2
        if p.transform == "loglogit":
            u = (np.log(np.median(x[:, j])) - math.log(p.low)) / math.log(p.high / p.low)
        else:
            u = (np.median(x[:, j]) - p.low) / (p.high - p.low)
        assert abs(u - 0.5) < 0.025, (p.name, mid)


def test_cells_and_cell(key):
    base = NeuronHH(diam=jnp.asarray(12.0), L=50.0)
    values = SPACE.sample(key, (N,))[:6]
    cells = SPACE.cells(base, values)
    np.testing.assert_allclose(cells.gnabar, values[:, 0])
    np.testing.assert_allclose(cells.el, values[:, 3])
    assert cells.diam.shape == (6,) and bool(jnp.all(cells.diam == 12.0))  # array: broadcast
    assert cells.L == 50.0 and cells.ena == 50.0  # floats stay shared floats
    one = SPACE.cell(base, values[2])
    assert one.gkbar.shape == () and float(one.gkbar) == pytest.approx(float(values[2, 1]))
    assert one.L == 50.0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: FitParameter("gl", 1e-3, 1e-5, "S/cm2"), "low < high"),
        (lambda: FitParameter("gl", 0.0, 1e-3, "S/cm2"), "loglogit needs low > 0"),
        (lambda: FitParameter("el", -70, math.inf, "mV", "logit"), "finite bounds"),
        (lambda: FitParameter("el", -70, -50, "mV", "log"), "not one of"),
        (lambda: ParameterSpace(()), "at least one"),
        (lambda: ParameterSpace((SPACE.parameters[0],) * 2), "more than once"),
        (lambda: SPACE.cell(NeuronHH(), jnp.zeros(3)), r"shape \(4,\)"),
        (lambda: SPACE.cells(NeuronHH(), jnp.zeros(4)), r"shape \(P, 4\)"),
        (lambda: SPACE.to_values(jnp.zeros((2, 3))), r"\(\.\.\., 4\)"),
        (
            lambda: ParameterSpace((FitParameter("gbar", 0.1, 1.0, "S/cm2"),)).check(NeuronHH()),
            "no fittable field 'gbar'",
        ),
        (
            lambda: ParameterSpace((FitParameter("use_table", 0.1, 1.0, "-"),)).check(NeuronHH()),
            "no fittable field 'use_table'",
        ),
    ],
)
def test_errors(make, match):
    with pytest.raises(ConfigError, match=match) as err:
        make()
    assert "\n" not in str(err.value)


def test_names_and_n():
    assert SPACE.names == ("gnabar", "gkbar", "gl", "el")
    assert SPACE.n == 4
    assert ParameterSpace([SPACE.parameters[0]]).parameters == (SPACE.parameters[0],)
