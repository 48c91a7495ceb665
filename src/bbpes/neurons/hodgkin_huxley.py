"""The Hodgkin-Huxley cell (Hodgkin & Huxley 1952, J. Physiol. 117:500) in the modern
convention (V in mV, depolarisation positive, rest at -65 mV), with the constants of
Dayan & Abbott (2001), *Theoretical Neuroscience*, section 5.6.

    C dV/dt = gNa m^3 h (ENa - V) + gK n^4 (EK - V) + gL (EL - V) + I        (HH Eq. 26)
    dx/dt   = alpha_x(V) (1 - x) - beta_x(V) x,   x in {m, h, n}        (HH Eqs. 7, 15, 16)

    alpha_m = 0.1 (V + 40) / (1 - exp(-(V + 40) / 10)),   beta_m = 4 exp(-(V + 65) / 18)
    alpha_h = 0.07 exp(-(V + 65) / 20),                   beta_h = 1 / (1 + exp(-(V + 35) / 10))
    alpha_n = 0.01 (V + 55) / (1 - exp(-(V + 55) / 10)),  beta_n = 0.125 exp(-(V + 65) / 80)

(HH Eqs. 12-13, 20-21, 23-24 shifted by -65 mV; rates in 1/ms at 6.3 °C.)

Units: ms, mV, µA/cm², mS/cm², µF/cm².
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .base import AbstractCell, State


def _x_over_one_minus_exp(x: Array) -> Array:
    """x / (1 - exp(-x)), continued by its limit 1 at x = 0 (values and gradients finite)."""
    small = jnp.abs(x) < 1e-4
    safe = jnp.where(small, 1.0, x)  # the double `where` keeps the gradient NaN-free at 0
    return jnp.where(small, 1.0 + x / 2.0 + x * x / 12.0, safe / -jnp.expm1(-safe))


class HodgkinHuxley(AbstractCell):
    """A Hodgkin-Huxley cell; every field may be a float or an array (for vmap).

    State is `(V, m, h, n)`: membrane potential (mV) and the three gating variables
    (dimensionless, in [0, 1]). With the defaults the cell rests at -65.0 mV, fires a
    single spike for a current step from rest of 2.24-6.23 µA/cm² and fires tonically
    above 6.23 µA/cm² (53 spikes/s at 6.3, 69 at 10); see docs/neurons.md.
    The rate functions are fixed; the constants below are the fields.
    """

    C: float | Array = 1.0  # µF/cm²
    g_Na: float | Array = 120.0  # mS/cm²
    g_K: float | Array = 36.0  # mS/cm²
    g_L: float | Array = 0.3  # mS/cm²
    E_Na: float | Array = 50.0  # mV
    E_K: float | Array = -77.0  # mV
    E_L: float | Array = -54.387  # mV, puts the resting potential at -65 mV
    V_rest: float | Array = -65.0  # mV, where `initial_state` starts

    def rates(self, V: Array) -> tuple[Array, Array, Array, Array, Array, Array]:
        """`(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n)` at `V` (mV), in 1/ms."""
        alpha_m = _x_over_one_minus_exp((V + 40.0) / 10.0)
        beta_m = 4.0 * jnp.exp(-(V + 65.0) / 18.0)
        alpha_h = 0.07 * jnp.exp(-(V + 65.0) / 20.0)
        beta_h = 1.0 / (1.0 + jnp.exp(-(V + 35.0) / 10.0))
        alpha_n = 0.1 * _x_over_one_minus_exp((V + 55.0) / 10.0)
        beta_n = 0.125 * jnp.exp(-(V + 65.0) / 80.0)
        return alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n

    def steady_gates(self, V: Array) -> tuple[Array, Array, Array]:
        """`(m_inf, h_inf, n_inf)` = alpha / (alpha + beta) at `V` (mV)."""
        a_m, b_m, a_h, b_h, a_n, b_n = self.rates(V)
        return a_m / (a_m + b_m), a_h / (a_h + b_h), a_n / (a_n + b_n)

    def conductance(self, m: Array, h: Array, n: Array) -> tuple[Array, Array]:
        """`(G, E)` with C dV/dt = E - G V + I: G in mS/cm², E in µA/cm²."""
        g_na = self.g_Na * m**3 * h
        g_k = self.g_K * n**4
        G = g_na + g_k + self.g_L
        E = g_na * self.E_Na + g_k * self.E_K + self.g_L * self.E_L
        return G, E

    def initial_state(self, shape: tuple[int, ...] = ()) -> State:
        """`V = V_rest` with every gate at its steady state there."""
        V = jnp.full(shape, self.V_rest, dtype=jnp.result_type(float))
        return (V, *self.steady_gates(V))

    def vector_field(self, state: State, i_app: Array) -> State:
        V, m, h, n = state
        G, E = self.conductance(m, h, n)
        a_m, b_m, a_h, b_h, a_n, b_n = self.rates(V)
        dV = (E - G * V + i_app) / self.C
        return dV, a_m * (1 - m) - b_m * m, a_h * (1 - h) - b_h * h, a_n * (1 - n) - b_n * n

    def step(self, state: State, i_app: Array, dt: float) -> State:
        """A staggered step: trapezoidal in V, exponential Euler (Rush-Larsen) in the gates.

        As in the Morris-Lecar leapfrog, the gates live on half steps:
        `(V_n, x_{n+1/2})` becomes `(V_{n+1}, x_{n+3/2})`. V is linear given the gates,
        and each gate is linear given V, so both updates are solved in closed form:

            V_{n+1}   = (V_n (C - dt G / 2) + dt (E + I)) / (C + dt G / 2),  G, E at x_{n+1/2}
            x_{n+3/2} = x_inf + (x_{n+1/2} - x_inf) exp(-dt (alpha + beta)),  at V_{n+1}

        Every coefficient is taken at the midpoint of the interval it advances over, so
        the scheme is second order (the staggered Crank-Nicolson scheme of NEURON, Hines
        1984). It is unconditionally stable for dt > 0: |C - dt G/2| < C + dt G/2 and the
        gates relax exactly, staying in [0, 1]. Over 1 s of tonic firing the spike times
        are within 0.3 ms of scipy at dt = 0.025 ms (the recommended step), 1.2 ms at
        0.05 ms and 5 ms at 0.1 ms, the spike count exact at all three
        (docs/neurons.md). The gates
        start from steady state, so the half-step offset at t = 0 is only O(dt²).
        A negative `dt` runs the same formulas backwards in time.
        """
        V, m, h, n = state
        G, E = self.conductance(m, h, n)
        half = 0.5 * dt * G
        V_new = (V * (self.C - half) + dt * (E + i_app)) / (self.C + half)
        a_m, b_m, a_h, b_h, a_n, b_n = self.rates(V_new)

        def relax(x, alpha, beta):
            x_inf = alpha / (alpha + beta)
            return x_inf + (x - x_inf) * jnp.exp(-dt * (alpha + beta))

        return V_new, relax(m, a_m, b_m), relax(h, a_h, b_h), relax(n, a_n, b_n)


HODGKIN_HUXLEY = HodgkinHuxley()
"""The squid axon at 6.3 °C (Dayan & Abbott 2001 constants): tonic above 6.23 µA/cm²."""
