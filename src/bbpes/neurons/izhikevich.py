"""The Izhikevich cell (Izhikevich 2003, "Simple model of spiking neurons", IEEE Trans.
Neural Networks 14:1569), a cell written only from its equations: it uses
`AbstractCell`'s default step (a Tsit5 step of the vector field after the reset).

    dv/dt = 0.04 v^2 + 5 v + 140 - u + I                                      (Eq. 1)
    du/dt = a (b v - u)                                                       (Eq. 2)
    if v >= 30 mV:  v <- c,  u <- u + d                                       (Eq. 3)

v in mV, t in ms; u and I in mV/ms, which is µA/cm² for a membrane of 1 µF/cm²; a in
1/ms, b in 1/ms, d in mV/ms. The defaults are the paper's regular-spiking cortical
cell (a = 0.02, b = 0.2, c = -65, d = 8); its Fig. 2 gives the other classes.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from .base import AbstractCell, State


class Izhikevich(AbstractCell):
    """An Izhikevich cell; every field may be a float or an array (for vmap).

    State `(v, u)`, from the resting point at I = 0 (v = -70 mV, u = -14 mV/ms with the
    defaults). The reset is applied when a step starts from v >= v_peak, so the step
    that reaches the peak returns it: each spike shows as one state with v >= 30 mV
    (the paper's own order: find fired cells, reset, integrate). Recommended dt: 0.1 ms
    or less (v blows up about 0.3 ms after passing 30 mV).
    """

    a: float | Array = 0.02  # 1/ms, recovery rate
    b: float | Array = 0.2  # 1/ms, sensitivity of u to v
    c: float | Array = -65.0  # mV, reset voltage
    d: float | Array = 8.0  # mV/ms, jump of u at a spike
    v_peak: float | Array = 30.0  # mV, where a spike is cut off

    def initial_state(self, shape: tuple[int, ...] = ()) -> State:
        """The stable rest at I = 0: the lower root of 0.04 v² + (5 - b) v + 140 = 0."""
        rest = (-(5.0 - self.b) - jnp.sqrt((5.0 - self.b) ** 2 - 22.4)) / 0.08
        v = jnp.full(shape, rest, dtype=jnp.result_type(float))
        return v, self.b * v

    def vector_field(self, state: State, i_app: Array) -> State:
        v, u = state
        return 0.04 * v**2 + 5.0 * v + 140.0 - u + i_app, self.a * (self.b * v - u)

    def reset(self, state: State) -> State:
        v, u = state
        fired = v >= self.v_peak
        return jnp.where(fired, self.c, v), jnp.where(fired, u + self.d, u)


IZHIKEVICH = Izhikevich()
"""The regular-spiking cell of Izhikevich (2003): tonic from I = 3.775, 23 spikes/s at 10."""
