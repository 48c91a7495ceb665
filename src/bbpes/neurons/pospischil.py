"""The single-compartment cortical cell of Pospischil et al. (2008, Biol. Cybern.
99:427), as simulated and fitted by Goncalves et al. (2020, eLife 9:e56261, "Training
deep neural density estimators to identify mechanistic models of neural dynamics").

    C dV/dt = -g_leak (V - E_leak) - I_Na - I_Kd - I_M [- I_L] + I
    I_Na = g_Na m³ h (V - E_Na)       I_Kd = g_K n⁴ (V - E_K)      I_M = g_M p (V - E_K)
    I_L  = g_Ca q² r (V - E_Ca)       (only with `calcium=True`)
    x' = a_x (1 - x) - b_x x   for x in m, h, n, q, r;    p' = (p_inf - p) / tau_p

with V_T shifting the Na and Kd kinetics (Traub & Miles 1991, as Pospischil et al. use them):

    a_m = -0.32 (V - V_T - 13) / (exp(-(V - V_T - 13) / 4) - 1)
    b_m =  0.28 (V - V_T - 40) / (exp((V - V_T - 40) / 5) - 1)
    a_h =  0.128 exp(-(V - V_T - 17) / 18)      b_h = 4 / (1 + exp(-(V - V_T - 40) / 5))
    a_n = -0.032 (V - V_T - 15) / (exp(-(V - V_T - 15) / 5) - 1)
    b_n =  0.5 exp(-(V - V_T - 10) / 40)
    p_inf = 1 / (1 + exp(-(V + 35) / 10))       (Yamada, Koch & Adams 1989)
    tau_p = tau_max / (3.3 exp((V + 35) / 20) + exp(-(V + 35) / 20))
    a_q = 0.055 (-27 - V) / (exp((-27 - V) / 3.8) - 1)    b_q = 0.94 exp((-75 - V) / 17)
    a_r = 0.000457 exp((-13 - V) / 50)          b_r = 0.0065 / (exp((-15 - V) / 28) + 1)
    (the L-type Ca2+ current of Reuveni et al. 1993, Pospischil's intrinsically bursting cell)

The Na, Kd, M and leak terms are transcribed from the `HHsimulator` of Goncalves et al.
(the sbi package's Hodgkin-Huxley tutorial, `HH_helper_functions.py`), which follows
Pospischil et al.; the L-type term from Pospischil et al. as recalled, unchecked against
the paper. The paper's equation numbers could not be checked offline when this was
written, so none are cited here: add them from the paper.

Units: ms, mV, µA/cm², mS/cm², µF/cm².
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jax import Array

from ..errors import ConfigError
from .base import AbstractCell, State


def _efun(z: Array) -> Array:
    """z / (exp(z) - 1), continued by its limit 1 - z/2 near z = 0 (Goncalves et al.'s
    `efun`), behind a double `where` so that values and gradients stay finite at 0."""
    small = jnp.abs(z) < 1e-4
    safe = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 - z / 2.0, safe / jnp.expm1(safe))


class Pospischil(AbstractCell):
    """Pospischil et al.'s (2008) regular-spiking cortical cell (Na, Kd, slow M-type K,
    leak; L-type Ca with `calcium=True`) with the constants of the sbi example of
    Goncalves et al. (2020).

    State is `(V, m, h, n, p)`, or `(V, m, h, n, p, q, r)` with `calcium`: V in mV, the
    gates in [0, 1]. Every field but `calcium` may be a float or an array (for vmap).
    Under the sbi example's step (0.5 nA on the 15,394 µm² soma, 3.25 µA/cm²) the cell
    fires tonically and the M current lengthens its inter-spike intervals.

    Where the defaults come from: `g_Na` 50 and `g_K` 5 mS/cm² are the sbi tutorial's
    `true_params`; `g_leak` 0.1, `g_M` 0.07 mS/cm², `tau_max` 600 ms, `V_T` -60 mV,
    `E_leak` -70, `E_Na` 53, `E_K` -107 mV, `C` 1 µF/cm² are the fixed constants of
    Goncalves et al.'s `HHsimulator`; the soma `diam` of 70 µm and its area pi d²
    (`syn_current`'s `A_soma`) and `v_init` -70 mV (`V0`) are also theirs. `E_Ca` 120 mV
    is Pospischil et al.'s; `g_Ca` defaults to 0 (their regular-spiking cell has none).
    Goncalves et al. also add white noise of 0.1 µA/cm² (`nois_fact`) to the current:
    pass it in `i_app` if wanted; the model here is deterministic.
    """

    g_Na: float | Array = 50.0  # mS/cm²
    g_K: float | Array = 5.0  # mS/cm²
    g_M: float | Array = 0.07  # mS/cm²
    g_leak: float | Array = 0.1  # mS/cm²
    g_Ca: float | Array = 0.0  # mS/cm², used only with `calcium`
    E_leak: float | Array = -70.0  # mV
    E_Na: float | Array = 53.0  # mV
    E_K: float | Array = -107.0  # mV
    E_Ca: float | Array = 120.0  # mV
    tau_max: float | Array = 600.0  # ms
    V_T: float | Array = -60.0  # mV
    C: float | Array = 1.0  # µF/cm²
    diam: float | Array = 70.0  # µm
    v_init: float | Array = -70.0  # mV
    calcium: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not self.calcium and isinstance(self.g_Ca, int | float) and self.g_Ca != 0:
            raise ConfigError(
                f"Pospischil(g_Ca={self.g_Ca}) needs calcium=True to simulate the L-type Ca current"
            )

    @property
    def area(self) -> Array | float:
        """Membrane area (µm²): pi diam², a sphere of diameter `diam` (Goncalves et al.'s
        `A_soma = pi (70 µm)²`)."""
        return math.pi * self.diam**2

    def rates(self, V: Array) -> tuple[Array, ...]:
        """`(a_m, b_m, a_h, b_h, a_n, b_n)` at `V` (mV), in 1/ms."""
        v1 = V - self.V_T
        a_m = 1.28 * _efun(-(v1 - 13.0) / 4.0)
        b_m = 1.4 * _efun((v1 - 40.0) / 5.0)
        a_h = 0.128 * jnp.exp(-(v1 - 17.0) / 18.0)
        b_h = 4.0 / (1.0 + jnp.exp(-(v1 - 40.0) / 5.0))
        a_n = 0.16 * _efun(-(v1 - 15.0) / 5.0)
        b_n = 0.5 * jnp.exp(-(v1 - 10.0) / 40.0)
        return a_m, b_m, a_h, b_h, a_n, b_n

    def ca_rates(self, V: Array) -> tuple[Array, Array, Array, Array]:
        """`(a_q, b_q, a_r, b_r)` of the L-type Ca2+ current at `V` (mV), in 1/ms."""
        a_q = 0.209 * _efun((-27.0 - V) / 3.8)
        b_q = 0.94 * jnp.exp((-75.0 - V) / 17.0)
        a_r = 0.000457 * jnp.exp((-13.0 - V) / 50.0)
        b_r = 0.0065 / (jnp.exp((-15.0 - V) / 28.0) + 1.0)
        return a_q, b_q, a_r, b_r

    def gates(self, V: Array) -> tuple[tuple[Array, Array], ...]:
        """`(x_inf, tau_x)` (tau in ms) at `V` (mV) for each gate, in the order of the state."""
        a_m, b_m, a_h, b_h, a_n, b_n = self.rates(V)
        e = jnp.exp((V + 35.0) / 20.0)  # one exp serves p_inf and tau_p
        p = (1.0 / (1.0 + 1.0 / (e * e)), self.tau_max / (3.3 * e + 1.0 / e))
        out = ((a_m / (a_m + b_m), 1.0 / (a_m + b_m)),)
        out += ((a_h / (a_h + b_h), 1.0 / (a_h + b_h)), (a_n / (a_n + b_n), 1.0 / (a_n + b_n)), p)
        if self.calcium:
            a_q, b_q, a_r, b_r = self.ca_rates(V)
            out += ((a_q / (a_q + b_q), 1.0 / (a_q + b_q)), (a_r / (a_r + b_r), 1.0 / (a_r + b_r)))
        return out

    def currents(self, state: State) -> tuple[Array, Array]:
        """`(i_ion, g_ion)`: membrane current (µA/cm², outward positive) and its
        derivative in V (mS/cm²) at `state`."""
        V, m, h, n, p, *ca = state
        g_na = self.g_Na * m**3 * h
        g_k = self.g_K * n**4 + self.g_M * p
        G = g_na + g_k + self.g_leak
        i = g_na * (V - self.E_Na) + g_k * (V - self.E_K) + self.g_leak * (V - self.E_leak)
        if self.calcium:
            q, r = ca
            g_ca = self.g_Ca * q**2 * r
            G, i = G + g_ca, i + g_ca * (V - self.E_Ca)
        return i, G

    def initial_state(self, shape: tuple[int, ...] = ()) -> State:
        """V = `v_init` with every gate at its steady state there (as Goncalves et al.)."""
        V = jnp.broadcast_to(jnp.asarray(self.v_init, jnp.result_type(float)), shape)
        return (V, *(x_inf for x_inf, _ in self.gates(V)))

    def vector_field(self, state: State, i_app: Array) -> State:
        i_ion, _ = self.currents(state)
        dV = (i_app - i_ion) / self.C
        return (
            dV,
            *((x_inf - x) / tau for x, (x_inf, tau) in zip(state[1:], self.gates(state[0]))),
        )

    def step(self, state: State, i_app: Array, dt: float) -> State:
        """The scheme of `NeuronHH.step` (NEURON's fixed step): V by linearised backward
        Euler with the gates of the last step, `dV = (i_app - i_ion) / (C/dt + g_ion)`,
        then every gate by exponential Euler at the new V,
        `x += (1 - exp(-dt / tau_x)) (x_inf - x)`. First order, stable for any dt > 0.
        (Goncalves et al. advance V by exponential Euler instead; the two agree to O(dt).)
        """
        i_ion, g_ion = self.currents(state)
        V = state[0] + (i_app - i_ion) / (self.C / dt + g_ion)
        gates = (
            x + (1.0 - jnp.exp(-dt / tau)) * (x_inf - x)
            for x, (x_inf, tau) in zip(state[1:], self.gates(V))
        )
        return (V, *gates)


POSPISCHIL = Pospischil()
"""The sbi example's cell (Goncalves et al. 2020): g_Na 50, g_K 5 mS/cm², 70 µm soma."""
