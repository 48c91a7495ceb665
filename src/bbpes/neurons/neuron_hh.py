"""NEURON's `hh` mechanism in a one-segment soma, stepped as NEURON steps it.

The fields keep NEURON's names and units (conductances in S/cm², as `hh.mod`), so a
model written for NEURON (`soma.insert("hh")`, `h.celsius`, `soma.diam`, `soma.L`) maps
to one `NeuronHH` field by field. The equations are those of `hh.mod` (NEURON's
`src/nrnoc/hh.mod`), the Hodgkin & Huxley (1952) squid axon at 6.3 °C:

    i_ion = gnabar m³h (v - ena) + gkbar n⁴ (v - ek) + gl (v - el)      (mA/cm² in NEURON)
    x' = (xinf - x) / xtau,   xinf = a / (a + b),   xtau = 1 / (q10 (a + b)),   x in m, h, n
    q10 = 3^((celsius - 6.3) / 10)
    a_m = 0.1 vtrap(-(v + 40), 10)       b_m = 4 exp(-(v + 65) / 18)
    a_h = 0.07 exp(-(v + 65) / 20)       b_h = 1 / (exp(-(v + 35) / 10) + 1)
    a_n = 0.01 vtrap(-(v + 55), 10)      b_n = 0.125 exp(-(v + 65) / 80)
    vtrap(x, y) = x / (exp(x / y) - 1)   (its limit y (1 - x / y / 2) for |x / y| < 1e-6)

Inside bbpes the state and the applied current use the package's units (mV, µA/cm²); the
conductances are converted once (S/cm² x 1000 = mS/cm²).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .base import AbstractCell, State

_TABLE_VMIN = -100.0  # mV; hh.mod: TABLE ... FROM -100 TO 100 WITH 200
_TABLE_STEPS = 200


def _vtrap(x, y: float, xp=jnp):
    """hh.mod's vtrap(x, y) = x / (exp(x / y) - 1), its small-x branch y (1 - x / y / 2)
    behind a double `where` so that values and gradients stay finite at x = 0. `xp` is
    `jax.numpy` or `numpy` (the table is built in float64 with numpy)."""
    u = x / y
    small = xp.abs(u) < 1e-6
    safe = xp.where(small, 1.0, u)
    return xp.where(small, y * (1.0 - u / 2.0), y * safe / xp.expm1(safe))


def _exact_gates(v, xp=jnp) -> tuple:
    """`(minf, hinf, ninf, 1/(a_m+b_m), 1/(a_h+b_h), 1/(a_n+b_n))` at `v` (mV); the last
    three are the time constants (ms) at q10 = 1, i.e. 6.3 °C."""
    a_m = 0.1 * _vtrap(-(v + 40.0), 10.0, xp)
    b_m = 4.0 * xp.exp(-(v + 65.0) / 18.0)
    a_h = 0.07 * xp.exp(-(v + 65.0) / 20.0)
    b_h = 1.0 / (xp.exp(-(v + 35.0) / 10.0) + 1.0)
    a_n = 0.01 * _vtrap(-(v + 55.0), 10.0, xp)
    b_n = 0.125 * xp.exp(-(v + 65.0) / 80.0)
    s_m, s_h, s_n = a_m + b_m, a_h + b_h, a_n + b_n
    return a_m / s_m, a_h / s_h, a_n / s_n, 1.0 / s_m, 1.0 / s_h, 1.0 / s_n


def _table() -> np.ndarray:
    """NEURON's rate table of `hh`: `_exact_gates` at -100, -99, ..., 100 mV, computed
    in float64 once, shape `(201, 6)`. The temperature only divides the time constants
    by q10, so one table serves every `celsius` (NEURON rebuilds its own on a change)."""
    v = _TABLE_VMIN + np.arange(_TABLE_STEPS + 1, dtype=np.float64)
    return np.stack(_exact_gates(v, np), axis=-1)


_HH_TABLE = _table()
_HH_VALUES = _HH_TABLE[:-1]  # (200, 6): the left end of each 1 mV interval
_HH_SLOPES = _HH_TABLE[1:] - _HH_TABLE[:-1]  # (200, 6): per mV across it


def _table_gates(v: Array) -> tuple[Array, ...]:
    """`_exact_gates` interpolated linearly in NEURON's table, as its generated C does:
    clamped to the end rows outside [-100, 100] mV, piecewise linear inside (so the
    derivative in v is piecewise constant, and finite everywhere).

    Twelve scalar gathers (a value and a slope per quantity): on CPU that is cheaper
    than one gather of a 12-wide row, or than complex pairs."""
    xi = jnp.clip(v - _TABLE_VMIN, 0.0, float(_TABLE_STEPS))
    i = jnp.minimum(jnp.floor(xi), _TABLE_STEPS - 1)
    theta = xi - i
    i = jax.lax.stop_gradient(i).astype(jnp.uint32)  # unsigned: no wrap-around of negatives

    def take(column: np.ndarray) -> Array:  # i is in [0, 199] by construction
        return jnp.asarray(column, v.dtype).at[i].get(mode="promise_in_bounds")

    return tuple(take(a) + theta * take(b) for a, b in zip(_HH_VALUES.T, _HH_SLOPES.T))


class NeuronHH(AbstractCell):
    """NEURON's `hh` soma: a cylinder of `diam` x `L` µm (nseg = 1) with `hh` inserted.

    State is `(v, m, h, n)`: membrane potential (mV) and the gates (in [0, 1]). `step`
    is NEURON's default fixed step (`secondorder = 0`) and `initial_state` its
    `finitialize(v_init)`, so a trace matches NEURON's to rounding: in float64 against
    NEURON 9.0.2 every step of 1 s (34 spikes of Neuroptimus test case 1) is within
    3.5e-9 mV and every spike within 5e-11 ms (tests/neurons/test_neuron_hh.py).

    Every field may be a float or an array (for vmap); `use_table` is static. With
    `use_table` (NEURON's default `usetable_hh = 1`) the rates are interpolated in the
    1 mV table of `hh.mod`; without it they are computed exactly (`usetable_hh = 0`),
    which moves the spikes of test case 1 by up to 0.65 ms: match the setting of the
    NEURON model that made the data.
    """

    gnabar: float | Array = 0.12  # S/cm²
    gkbar: float | Array = 0.036  # S/cm²
    gl: float | Array = 0.0003  # S/cm²
    el: float | Array = -54.3  # mV
    ena: float | Array = 50.0  # mV
    ek: float | Array = -77.0  # mV
    cm: float | Array = 1.0  # µF/cm²
    celsius: float | Array = 6.3  # °C
    diam: float | Array = 10.0  # µm (Neuroptimus test case 1)
    L: float | Array = 100.0  # µm (Neuroptimus test case 1)
    v_init: float | Array = -65.0  # mV
    use_table: bool = eqx.field(static=True, default=True)

    @property
    def area(self) -> Array | float:
        """Membrane area (µm²) of the one segment: pi diam L, the cylinder's side (as
        NEURON, which leaves out the end caps)."""
        return math.pi * self.diam * self.L

    def gates(self, v: Array) -> tuple[Array, ...]:
        """`(minf, hinf, ninf, mtau, htau, ntau)` at `v` (mV); the taus in ms at `celsius`."""
        minf, hinf, ninf, sm, sh, sn = (_table_gates if self.use_table else _exact_gates)(v)
        q10 = 3.0 ** ((self.celsius - 6.3) / 10.0)
        return minf, hinf, ninf, sm / q10, sh / q10, sn / q10

    def currents(self, state: State) -> tuple[Array, Array]:
        """`(i_ion, g_ion)`: the membrane current (µA/cm², outward positive) and its
        derivative in v (mS/cm²) at `state`."""
        v, m, h, n = state
        gna = 1e3 * self.gnabar * m**3 * h
        gk = 1e3 * self.gkbar * n**4
        gl = 1e3 * self.gl
        i_ion = gna * (v - self.ena) + gk * (v - self.ek) + gl * (v - self.el)
        return i_ion, gna + gk + gl

    def initial_state(self, shape: tuple[int, ...] = ()) -> State:
        """NEURON's `finitialize(v_init)`: v = v_init, each gate at its steady state there
        (hh.mod's INITIAL block, through the table when `use_table`)."""
        dtype = jnp.result_type(float)
        v = jnp.broadcast_to(jnp.asarray(self.v_init, dtype), shape)
        minf, hinf, ninf, *_ = self.gates(v)
        return v, minf, hinf, ninf

    def vector_field(self, state: State, i_app: Array) -> State:
        v, m, h, n = state
        i_ion, _ = self.currents(state)
        minf, hinf, ninf, mtau, htau, ntau = self.gates(v)
        return (i_app - i_ion) / self.cm, (minf - m) / mtau, (hinf - h) / htau, (ninf - n) / ntau

    def step(self, state: State, i_app: Array, dt: float) -> State:
        """One step of NEURON's default fixed-step scheme (`secondorder = 0`, `fadvance`):

        1. currents at the present v with the gates of the last step (NEURON evaluates
           them at t + dt/2, which matters only for a time-dependent `i_app`);
        2. v by linearised backward Euler, `dv = (i_app - i_ion(v)) / (cm/dt + g_ion)`
           (µA/cm² over µF/cm²/ms + mS/cm²: mV), `g_ion = d i_ion / dv`;
        3. the gates by `cnexp` at the new v: `x += (1 - exp(-dt / xtau)) (xinf - x)`.

        First order in time; stable for any dt > 0 (the gates relax exactly and stay in
        [0, 1]). `i_app` in µA/cm² (an IClamp of I nA is I 1e5 / `area`).
        """
        v, m, h, n = state
        i_ion, g_ion = self.currents(state)
        v = v + (i_app - i_ion) / (self.cm / dt + g_ion)
        minf, hinf, ninf, mtau, htau, ntau = self.gates(v)

        def cnexp(x, xinf, xtau):  # as NEURON writes it: 1 - exp, not expm1 (2x dearer)
            return x + (1.0 - jnp.exp(-dt / xtau)) * (xinf - x)

        return v, cnexp(m, minf, mtau), cnexp(h, hinf, htau), cnexp(n, ninf, ntau)


NEURON_HH = NeuronHH()
"""Neuroptimus test case 1's soma: diam 10 µm, L 100 µm, `hh` with NEURON's defaults."""
