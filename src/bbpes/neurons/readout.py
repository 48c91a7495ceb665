"""Spike outputs T(V) of the BBPES paper (Eqs. 10 and 11)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import Array

V_T = 10.0  # mV, threshold
K_P = 3.0  # mV, softness


def soft_threshold(V: Array, v_t: float = V_T, k_p: float = K_P) -> Array:
    """T(V) = 1 / (1 + exp(-(V - v_t) / k_p)) (Eq. 11), elementwise; V in mV."""
    return jax.nn.sigmoid((V - v_t) / k_p)


def hard_threshold(V: Array, v_t: float = V_T) -> Array:
    """T(V) = 1 if V >= v_t else 0 (Eq. 10), elementwise; its gradient is zero everywhere."""
    return (v_t <= V).astype(jnp.result_type(V, float))


def surrogate_threshold(V: Array, v_t: float = V_T, slope: float = 1.0) -> Array:
    """The hard threshold of Eq. 10 forward, with the fast-sigmoid surrogate derivative
    backward (Zenke & Ganguli 2018; Neftci, Mostafa & Zenke 2019):

        forward:  T(V) = 1 if V >= v_t else 0
        backward: dT/dV ~ slope / (1 + slope |V - v_t|)^2      (per mV)

    `slope` (1/mV) sets how sharply the surrogate derivative peaks at the threshold.
    Elementwise; V in mV. Differentiable in forward and reverse mode.
    """
    return _surrogate(V, jnp.asarray(v_t, jnp.result_type(V, float)), slope)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _surrogate(V: Array, v_t: Array, slope: float) -> Array:
    return (v_t <= V).astype(jnp.result_type(V, float))


@_surrogate.defjvp
def _surrogate_jvp(slope, primals, tangents):
    V, v_t = primals
    dV, dv_t = tangents
    out = _surrogate(V, v_t, slope)
    derivative = slope / (1.0 + slope * jnp.abs(V - v_t)) ** 2
    return out, (derivative * (dV - dv_t)).astype(out.dtype)
