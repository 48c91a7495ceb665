"""Spike outputs T(V) of the BBPES paper (Eqs. 10 and 11)."""

from __future__ import annotations

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
