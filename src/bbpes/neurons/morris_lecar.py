"""The Morris-Lecar cell (Morris & Lecar 1981) with the constants and stepper of the
BBPES paper (Hazelden et al., section 3.1.1 and appendix 5.1).

    C dV/dt = gL (VL - V) + gCa m_inf(V) (VCa - V) + gK w (VK - V) + I        (Eq. 8)
    dw/dt   = phi (w_inf(V) - w) / tau_w(V)
    m_inf = (1 + tanh((V - V1) / V2)) / 2,  w_inf = (1 + tanh((V - V3) / V4)) / 2,
    tau_w = 1 / cosh((V - V3) / (2 V4))

Units: ms, mV, µA/cm², mS/cm², µF/cm².
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .base import AbstractCell, State
from .base import simulate as _simulate


class MorrisLecar(AbstractCell):
    """A Morris-Lecar cell; every field may be a float or an array (for vmap).

    The defaults are the paper's non-explosive constants. State is `(V, w)`: membrane
    potential (mV) and the fraction of open potassium channels (dimensionless).
    """

    C: float | Array = 20.0  # µF/cm²
    g_L: float | Array = 2.0  # mS/cm²
    g_Ca: float | Array = 4.4  # mS/cm²
    g_K: float | Array = 8.0  # mS/cm²
    V_L: float | Array = -60.0  # mV
    V_Ca: float | Array = 120.0  # mV
    V_K: float | Array = -84.0  # mV
    V1: float | Array = -1.2  # mV
    V2: float | Array = 18.0  # mV
    V3: float | Array = 2.0  # mV
    V4: float | Array = 30.0  # mV
    phi: float | Array = 0.04  # 1/ms

    def m_inf(self, V: Array) -> Array:
        return 0.5 * (1.0 + jnp.tanh((V - self.V1) / self.V2))

    def w_inf(self, V: Array) -> Array:
        return 0.5 * (1.0 + jnp.tanh((V - self.V3) / self.V4))

    def rate_w(self, V: Array) -> Array:
        """phi / tau_w(V), in 1/ms."""
        return self.phi * jnp.cosh((V - self.V3) / (2.0 * self.V4))

    def conductance(self, V: Array, w: Array) -> tuple[Array, Array]:
        """`(G, E)` with C dV/dt = E - G V + I (appendix 5.1): G in mS/cm², E in µA/cm²."""
        m = self.m_inf(V)
        G = self.g_L + self.g_Ca * m + self.g_K * w
        E = self.g_L * self.V_L + self.g_Ca * self.V_Ca * m + self.g_K * self.V_K * w
        return G, E

    def initial_state(self, shape: tuple[int, ...] = ()) -> State:
        """`V = V_L` (-60 mV) and `w = 0`: the starting point used throughout the paper."""
        V = jnp.full(shape, self.V_L, dtype=jnp.result_type(float))
        return V, jnp.zeros(shape, dtype=V.dtype)

    def vector_field(self, state: State, i_app: Array) -> State:
        V, w = state
        G, E = self.conductance(V, w)
        dV = (E - G * V + i_app) / self.C
        dw = self.rate_w(V) * (self.w_inf(V) - w)
        return dV, dw

    def step(self, state: State, i_app: Array, dt: float) -> State:
        """The paper's leapfrog-trapezoidal step (appendix 5.1).

        `w` lives on half steps: the state `(V_n, w_{n+1/2})` becomes
        `(V_{n+1}, w_{n+3/2})`. Each update is the trapezoidal rule for one variable
        with the other (and m_inf) held fixed; both are linear, so solved in closed form:

            V_{n+1} = (V_n (C - dt G / 2) + dt (E + I)) / (C + dt G / 2)
            w_{n+3/2} = (w_{n+1/2} (1 - r dt / 2) + r dt w_inf) / (1 + r dt / 2),  r = phi / tau_w

        This is what keeps dt = 0.1 ms stable. A negative `dt` runs it backwards.
        """
        V, w = state
        G, E = self.conductance(V, w)
        half = 0.5 * dt * G
        V_new = (V * (self.C - half) + dt * (E + i_app)) / (self.C + half)
        r = 0.5 * dt * self.rate_w(V_new)
        w_new = (w * (1.0 - r) + 2.0 * r * self.w_inf(V_new)) / (1.0 + r)
        return V_new, w_new


NON_EXPLOSIVE = MorrisLecar()
"""The paper's constants (phi = 0.04): rests at I = 60, fires tonically at I = 100."""

EXPLOSIVE = MorrisLecar(phi=0.4)
"""phi ten times faster (paper, appendix 5.1). With the other constants unchanged this
cell fires onset spikes but no tonic train at any constant current (see docs/neurons.md)."""


def simulate(
    cell: MorrisLecar, i_app: Array | float, t_end: float, dt: float, state0: State | None = None
) -> tuple[Array, Array, Array]:
    """`(times, V, w)` of a Morris-Lecar run; see `bbpes.neurons.simulate`."""
    times, V, w = _simulate(cell, i_app, t_end, dt, state0)
    return times, V, w
