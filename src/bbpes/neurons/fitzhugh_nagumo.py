"""The FitzHugh-Nagumo cell (FitzHugh 1961, Biophys. J. 1:445; Nagumo, Arimoto &
Yoshizawa 1962) with FitzHugh's constants a = 0.7, b = 0.8, eps = 0.08.

    tau dv/dt = v - v^3 / 3 - w + I
    tau dw/dt = eps (v + a - b w)

v (a voltage-like variable), w (a recovery variable) and I are dimensionless; tau
(ms) is the only dimensional constant: it says how many milliseconds one unit of the
model's own time is, so that the cell runs on the same clock (ms) as every other cell.
With tau = 1 ms the spikes are about 10 ms wide and a tonic train at I = 0.5 has a
period of 39.5 ms (26 spikes in the first second), close to the Morris-Lecar cell's time scale.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .base import AbstractCell, State
from .readout import hard_threshold, soft_threshold


class FitzHughNagumo(AbstractCell):
    """A FitzHugh-Nagumo cell; every field may be a float or an array (for vmap).

    State is `(v, w)`, both dimensionless; `i_app` is dimensionless too (the unit of
    FitzHugh's I, not µA/cm²). With the defaults the cell rests at v = -1.1994,
    w = -0.6243; a current step from rest gives one onset spike from I = 0.144 and a
    tonic train for 0.324 < I < 1.468 (measured over 1 s with scipy); see docs/neurons.md.
    """

    a: float | Array = 0.7  # dimensionless
    b: float | Array = 0.8  # dimensionless
    eps: float | Array = 0.08  # dimensionless, recovery rate (FitzHugh's 1/c² = 1/12.5)
    tau: float | Array = 1.0  # ms per unit of the model's time
    v_rest: float | Array = -1.199408035244035  # rest at I = 0: v - v³/3 = (v + a) / b
    v_t: float = 1.0  # spike-output threshold (dimensionless), the analogue of V_T = 10 mV
    k_p: float = 0.1  # spike-output softness (dimensionless), the analogue of K_p = 3 mV

    def initial_state(self, shape: tuple[int, ...] = ()) -> State:
        """The resting state at I = 0: `v = v_rest`, `w = (v_rest + a) / b`."""
        v = jnp.full(shape, self.v_rest, dtype=jnp.result_type(float))
        return v, (v + self.a) / self.b

    def vector_field(self, state: State, i_app: Array) -> State:
        v, w = state
        dv = (v - v**3 / 3.0 - w + i_app) / self.tau
        dw = self.eps * (v + self.a - self.b * w) / self.tau
        return dv, dw

    def step(self, state: State, i_app: Array, dt: float) -> State:
        """A staggered, linearly implicit trapezoidal step.

        `w` lives on half steps, as in the Morris-Lecar leapfrog: `(v_n, w_{n+1/2})`
        becomes `(v_{n+1}, w_{n+3/2})`. With h = dt / tau, f = v - v³/3 - w + I and
        its derivative J = 1 - v², both at `(v_n, w_{n+1/2})`:

            v_{n+1}   = v_n + h f / (1 - h J / 2)          (one Newton step of the trapezoid)
            w_{n+3/2} = (w_{n+1/2} (1 - h eps b / 2) + h eps (v_{n+1} + a)) / (1 + h eps b / 2)

        The w update is the exact trapezoid (w is linear) with v at the midpoint. Both
        updates are second order. The v update is A-stable where J < 0 (|v| > 1, where
        the cubic is stiff) and needs h < 2 / J <= 2 where J > 0, so any dt < 2 tau
        (2 ms at the default tau) is stable; spike times over 1 s are within 0.1 ms
        of scipy at dt = 0.1 ms, the recommended step (docs/neurons.md).
        """
        v, w = state
        h = dt / self.tau
        f = v - v**3 / 3.0 - w + i_app
        v_new = v + h * f / (1.0 - 0.5 * h * (1.0 - v * v))
        r = 0.5 * h * self.eps * self.b
        w_new = (w * (1.0 - r) + h * self.eps * (v_new + self.a)) / (1.0 + r)
        return v_new, w_new

    def output(self, state: State, hard: bool = False) -> Array:
        """T(v) with the threshold `v_t` and softness `k_p` of the model's own scale."""
        v = self.voltage(state)
        return hard_threshold(v, self.v_t) if hard else soft_threshold(v, self.v_t, self.k_p)


FITZHUGH_NAGUMO = FitzHughNagumo()
"""FitzHugh's constants, tau = 1 ms: tonic for 0.324 < I < 1.468, 26 spikes/s at I = 0.5."""
