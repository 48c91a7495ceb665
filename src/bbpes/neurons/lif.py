"""The leaky integrate-and-fire cell (Lapicque 1907; Dayan & Abbott 2001, section 5.4)
with an absolute refractory period.

    C dV/dt = g_L (E_L - V) + I                                  while V < V_th
    V -> V_reset when V reaches V_th, then V held at V_reset for t_ref

Between spikes the equation is linear, so the stepper integrates it exactly and finds
each threshold crossing in closed form: spike times do not depend on the step size.

**The reset.** The stepper, not the vector field, does the reset. What each method sees:

- `step` (BPTT, ES): exact. The crossing time inside a step is a smooth function of
  the state and the current, and the voltage after the reset and the refractory clock
  depend on it, so backpropagation through `step` carries the gradient of spike
  *times* (as in event-based gradients, Wunderlich & Pehle 2021). Whether a spike
  happens at all is a comparison: a spike appearing or vanishing is a jump in the
  loss with no gradient, and the hard output has zero gradient everywhere.
- `vector_field` (pnde, fnde, any diffrax solve): the subthreshold equation only,
  with no threshold and no reset (dr/dt = ds/dt = 0). A diffrax solve of it never
  spikes: V relaxes to E_L + I / g_L, and the soft output settles at
  T = sigmoid((E_L + I / g_L - V_th) / k_p), a smooth rate-like function of the
  current. An adjoint method therefore computes the exact gradient of that
  leaky-integrator rate network, not of the spiking one; the two agree only below
  threshold. (diffrax events stop a solve; they do not reset and continue one.)

Units: ms, mV, µA/cm², mS/cm², µF/cm².
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .base import AbstractCell, State
from .readout import soft_threshold


class LIF(AbstractCell):
    """A leaky integrate-and-fire cell; every field may be a float or an array (for vmap).

    State is `(V, r, s)`:

    - `V` (mV), the membrane potential, held at `V_reset` while refractory;
    - `r` (ms), the refractory time left at the end of the step. On the step of a spike
      whose refractory period also ended inside that step it is negative: minus the
      time since the period ended. So a spike in the step ending at `t` happened at
      `t - t_ref + r`, exactly;
    - `s`, 1.0 if the cell spiked during the last step, else 0.0.

    The defaults are Dayan & Abbott's (2001, section 5.4): tau_m = C / g_L = 10 ms
    (c_m = 10 nF/mm², r_m = 1 MΩ mm²), E_L = V_reset = -65 mV, V_th = -50 mV; plus an
    absolute refractory period of 2 ms (Brunel 2000). The cell fires for
    I > g_L (V_th - E_L) = 1.5 µA/cm², with inter-spike interval
    T = t_ref + tau_m ln((R I - (V_reset - E_L)) / (R I - (V_th - E_L))), R = 1 / g_L.
    """

    C: float | Array = 1.0  # µF/cm²
    g_L: float | Array = 0.1  # mS/cm²
    E_L: float | Array = -65.0  # mV
    V_th: float | Array = -50.0  # mV
    V_reset: float | Array = -65.0  # mV
    t_ref: float | Array = 2.0  # ms
    k_p: float = 1.0  # mV, softness of the soft spike output

    def rheobase(self) -> float | Array:
        """The smallest constant current (µA/cm²) that makes the cell fire."""
        return self.g_L * (self.V_th - self.E_L)

    def interspike_interval(self, i_app: Array) -> Array:
        """The exact period (ms) of tonic firing at a constant current above rheobase."""
        V_inf = self.E_L + i_app / self.g_L
        tau = self.C / self.g_L
        return self.t_ref + tau * jnp.log((V_inf - self.V_reset) / (V_inf - self.V_th))

    def initial_state(self, shape: tuple[int, ...] = ()) -> State:
        """At rest: `V = E_L`, not refractory, no spike."""
        V = jnp.full(shape, self.E_L, dtype=jnp.result_type(float))
        return V, jnp.zeros_like(V), jnp.zeros_like(V)

    def vector_field(self, state: State, i_app: Array) -> State:
        """The subthreshold equation only: no threshold, no reset (see the module doc)."""
        V, r, s = state
        dV = (self.g_L * (self.E_L - V) + i_app) / self.C
        return dV, jnp.zeros_like(r), jnp.zeros_like(s)

    def step(self, state: State, i_app: Array, dt: float) -> State:
        """Exact integration over `dt` ms, with the threshold crossing found in closed form.

        The step first sits out what is left of the refractory period (`r`, clipped
        to [0, dt]), then relaxes V exactly towards V_inf = E_L + I / g_L over the
        remaining time `f`: V(t) = V_inf + (V - V_inf) exp(-t / tau). If that reaches
        V_th, it does so after `tau ln((V - V_inf) / (V_th - V_inf))`; the cell is reset
        there, held for t_ref, and relaxes again from V_reset for whatever time is left.

        Exact (to rounding) for any dt <= t_ref, where at most one spike fits in a step;
        with a longer dt a second spike inside one step is delayed to the next step.
        Unconditionally stable. Only dt > 0: a reset cannot be run backwards.
        """
        if isinstance(dt, (int, float)) and dt <= 0:
            raise ValueError(f"LIF.step needs dt > 0 (got {dt}): a reset cannot be undone")
        V, r, _ = state
        tau = self.C / self.g_L
        V_inf = self.E_L + i_app / self.g_L
        free = dt - jnp.clip(r, 0.0, dt)  # time in this step after the refractory period
        V_free = V_inf + (V - V_inf) * jnp.exp(-free / tau)
        spiked = V_free >= self.V_th
        # the crossing time; the double `where` keeps log and its gradient finite elsewhere
        rising = spiked & (self.V_th > V)
        ratio = jnp.where(rising, (V - V_inf) / jnp.where(rising, self.V_th - V_inf, 1.0), 1.0)
        after = free - tau * jnp.log(ratio)  # time from the spike to the end of the step
        relaxing = jnp.maximum(after - self.t_ref, 0.0)
        V_spiked = V_inf + (self.V_reset - V_inf) * jnp.exp(-relaxing / tau)
        V_new = jnp.where(spiked, V_spiked, V_free)
        r_new = jnp.where(spiked, self.t_ref - after, jnp.maximum(r - dt, 0.0))
        return V_new, r_new, spiked.astype(V_new.dtype)

    def output(self, state: State, hard: bool = False) -> Array:
        """The spike output in [0, 1].

        `hard`: 1.0 from the step of a spike until the refractory period ends (a pulse
        about t_ref = 2 ms wide whatever dt is, and at least the step of the spike),
        else 0.0; zero gradient. Soft: T(V) = sigmoid((V - V_th) / k_p), which rises as V
        nears threshold and drops to ~0 at the reset, so it leads the hard pulse by a
        few ms; its gradient is the surrogate BPTT sees.
        """
        V, r, s = state
        if hard:
            return jnp.where((s > 0) | (r > 0), 1.0, 0.0).astype(V.dtype)
        return soft_threshold(V, self.V_th, self.k_p)


LEAKY_INTEGRATE_AND_FIRE = LIF()
"""Dayan & Abbott's constants with t_ref = 2 ms: fires above 1.5 µA/cm², 50 spikes/s at 1.8."""


def spike_times(cell: LIF, times: Array, r: Array, s: Array) -> Array:
    """Exact spike times (ms) from a trajectory `(times, V, r, s)` of `simulate`.

    Returns an array of the trajectory's shape holding the spike time at each step
    that ends with `s = 1` and NaN elsewhere; `times` has shape `(n + 1,)`.
    """
    t = jnp.reshape(times, times.shape + (1,) * (r.ndim - 1))
    return jnp.where(s > 0, t - cell.t_ref + r, jnp.nan)
