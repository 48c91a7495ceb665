"""The learnable weights of the recurrent network (`bbpes.models.bnn`): the four
arrays, their Gaussian initialisation, and stacking two matrices (dense or `LowRank`)
into one, for a fused product."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from ..estimators.low_rank import LowRank

Matrix = Array | LowRank
"""A weight matrix: a dense array, or a `LowRank` kept factored."""


class Weights(eqx.Module):
    """The learnable parameters, dimensionless (see the module docstring).

    - `w_in`: `(N, D)`, input lines to cells.
    - `w_rec`: `(N, N)`, `w_rec[i, j]` is the weight from cell j to cell i.
    - `w_out`: `(K, N)`, readout.
    - `b_out`: `(K,)`, readout bias.

    The three matrices may be `LowRank` (same shapes) instead of arrays.
    """

    w_in: Matrix
    w_rec: Matrix
    w_out: Matrix
    b_out: Array


def init_weights(
    key: Array,
    n_cells: int,
    n_inputs: int,
    n_outputs: int,
    *,
    in_scale: float = 1.0,
    rec_scale: float = 1.0,
    out_scale: float = 1.0,
    out_bias: float = 0.0,
    dtype: Any = None,
) -> Weights:
    """Gaussian weights: `w_in` with std `in_scale / sqrt(n_inputs)`, `w_rec` with std
    `rec_scale / sqrt(n_cells)`, `w_out` with std `out_scale / sqrt(n_cells)`, every
    `b_out` equal to `out_bias`. The scales are in units of `current_scale` (the input
    and recurrent ones) and of the readout (the output one)."""
    dtype = dtype or jnp.result_type(float)
    k_in, k_rec, k_out = jax.random.split(key, 3)

    def normal(k, shape, std):
        return std * jax.random.normal(k, shape, dtype)

    return Weights(
        w_in=normal(k_in, (n_cells, n_inputs), in_scale / n_inputs**0.5),
        w_rec=normal(k_rec, (n_cells, n_cells), rec_scale / n_cells**0.5),
        w_out=normal(k_out, (n_outputs, n_cells), out_scale / n_cells**0.5),
        b_out=jnp.full((n_outputs,), out_bias, dtype),
    )


def stack_rows(top: Matrix, bottom: Matrix) -> Matrix:
    """`[top; bottom]`, `(m1 + m2, n)`, from `(m1, n)` and `(m2, n)`. Two arrays give
    an array; otherwise a `LowRank` whose base is the stacked bases and whose rank is
    the sum of the two ranks (a dense matrix counts as rank 0): its A is block-diagonal
    `[scale1 A1, 0; 0, scale2 A2]`, its B is `[B1, B2]` and its scale 1."""
    if not isinstance(top, LowRank) and not isinstance(bottom, LowRank):
        return jnp.concatenate([top, bottom], axis=-2)

    def parts(w):
        if isinstance(w, LowRank):
            return w.base, w.scale * w.a, w.b
        m, n = w.shape[-2:]
        return w, jnp.zeros((*w.shape[:-2], m, 0), w.dtype), jnp.zeros((n, 0), w.dtype)

    (base1, a1, b1), (base2, a2, b2) = parts(top), parts(bottom)
    r1, r2 = a1.shape[-1], a2.shape[-1]
    a = jnp.concatenate(
        [
            jnp.concatenate([a1, jnp.zeros((*a1.shape[:-1], r2), a1.dtype)], axis=-1),
            jnp.concatenate([jnp.zeros((*a2.shape[:-1], r1), a2.dtype), a2], axis=-1),
        ],
        axis=-2,
    )
    base = jnp.concatenate([base1, base2], axis=-2)
    return LowRank(base, a, jnp.concatenate([b1, b2], axis=-1), jnp.ones((), base.dtype))
