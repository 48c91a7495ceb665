"""`AbstractCell`'s default step: a diffrax fixed-step solve of the vector field, checked
against exact solutions (its order), against scipy (a cell that is only its equations),
run backwards, and with the reset of a hybrid model."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.integrate import solve_ivp

from bbpes.neurons import AbstractCell, FitzHughNagumo, simulate

_simulate = jax.jit(simulate, static_argnums=(2, 3))


class Resonator(AbstractCell):
    """A linear two-variable membrane (a damped resonator): V' = (-g V - w + I) / C,
    w' = (V - w) / tau; exact solution by the matrix exponential."""

    g: float = 0.2  # mS/cm²
    C: float = 1.0  # µF/cm²
    tau: float = 5.0  # ms

    def initial_state(self, shape=()):
        return jnp.full(shape, 10.0), jnp.zeros(shape)

    def vector_field(self, state, i_app):
        V, w = state
        return (-self.g * V - w + i_app) / self.C, (V - w) / self.tau


class HeunResonator(Resonator):
    solver = diffrax.Heun()


def exact(cell: Resonator, i_app: float, t: float) -> np.ndarray:
    """x' = A x + b from (10, 0): x(t) = x* + expm(A t) (x0 - x*), x* = -A^-1 b."""
    A = np.array([[-cell.g / cell.C, -1 / cell.C], [1 / cell.tau, -1 / cell.tau]])
    b = np.array([i_app / cell.C, 0.0])
    fixed = -np.linalg.solve(A, b)
    return fixed + scipy.linalg.expm(A * t) @ (np.array([10.0, 0.0]) - fixed)


@pytest.mark.parametrize("cell, order", [(Resonator(), 5), (HeunResonator(), 2)])
def test_the_default_step_has_its_solvers_order(cell, order):
    """Tsit5 by default (error / 2^5 per halving of dt), Heun when a cell sets it. (At
    these steps Tsit5's slope is still 5.4-5.6, coming down to 5.)"""
    errors = []
    for dt in (0.4, 0.2, 0.1):
        _, V, w = _simulate(cell, 3.0, 40.0, dt)
        errors.append(np.max(np.abs(np.array([V[-1], w[-1]]) - exact(cell, 3.0, 40.0))))
    slopes = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((slopes > order - 0.3) & (slopes < order + 0.7)), slopes


def test_negative_dt_runs_the_default_step_backwards():
    cell = Resonator()
    state = (jnp.array(-20.0), jnp.array(0.3))
    back = cell.step(cell.step(state, 2.0, 0.1), 2.0, -0.1)
    np.testing.assert_allclose(back, state, rtol=0, atol=1e-9)


class EquationsOnlyFitzHughNagumo(FitzHughNagumo):
    """FitzHugh-Nagumo with its own stepper taken away: the default step only."""

    step = AbstractCell.step


def upward(t: np.ndarray, v: np.ndarray, level: float) -> np.ndarray:
    i = np.where((v[:-1] < level) & (v[1:] >= level))[0]
    return t[i] + (level - v[i]) / (v[i + 1] - v[i]) * (t[i + 1] - t[i])


def test_a_cell_that_is_only_its_equations_matches_scipy():
    """FitzHugh-Nagumo from its vector field alone: over 1 s at I = 0.5, the same 26
    spikes as scipy (LSODA, tol 1e-10), times within 0.01 ms at dt = 0.1 ms."""
    cell = EquationsOnlyFitzHughNagumo()
    t, v, _ = _simulate(cell, 0.5, 1000.0, 0.1)

    def field(_, y):
        return [y[0] - y[0] ** 3 / 3 - y[1] + 0.5, 0.08 * (y[0] + 0.7 - 0.8 * y[1])]

    v0, w0 = (float(x) for x in cell.initial_state())
    grid = np.linspace(0, 1000, 1_000_001)
    ref = solve_ivp(field, (0, 1000), [v0, w0], method="LSODA", rtol=1e-10, atol=1e-10,
                    dense_output=True).sol(grid)[0]  # fmt: skip
    ours, theirs = upward(np.asarray(t), np.asarray(v), 1.0), upward(grid, ref, 1.0)
    assert len(ours) == len(theirs) == 26
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=0.01)


class Resetting(Resonator):
    """The resonator with an integrate-and-fire reset at V >= 20 mV."""

    def reset(self, state):
        V, w = state
        return jnp.where(V >= 20.0, -10.0, V), w


def test_the_reset_is_applied_to_the_state_a_step_starts_from():
    cell = Resetting()
    above, below = (jnp.array(25.0), jnp.array(1.0)), (jnp.array(15.0), jnp.array(1.0))
    np.testing.assert_array_equal(
        cell.step(above, 3.0, 0.1), Resonator().step((jnp.array(-10.0), jnp.array(1.0)), 3.0, 0.1)
    )
    np.testing.assert_array_equal(cell.step(below, 3.0, 0.1), Resonator().step(below, 3.0, 0.1))


def test_the_default_step_vmaps_jits_and_differentiates():
    cell = Resonator()
    final = lambda i: simulate(cell, i, 10.0, 0.1)[1][-1]
    currents = jnp.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(jax.vmap(final)(currents), [final(i) for i in currents], rtol=1e-12)
    eps = 1e-6
    fd = (final(1.0 + eps) - final(1.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.jit(jax.grad(final))(1.0), fd, rtol=1e-7)


def test_a_cell_without_a_vector_field_cannot_be_made():
    class NoEquations(AbstractCell):
        def initial_state(self, shape=()):
            return (jnp.zeros(shape),)

    with pytest.raises(TypeError, match="vector_field"):
        NoEquations()
