"""`strided_take(raw, src, plan)`: `raw[..., src]` for the static, nearly periodic
index arrays of eFEL's resampling, as strided slices instead of a gather.

Why: XLA on CPU lays out a gather's output sample-axis first, and every row-wise
consumer then reads it through a transpose (the whole extraction ran 5-10x slower).
When the resampling ratio is a ratio of small integers, `interp_step / dt = Q / P`,
output sample i = P m + p reads raw sample Q m + c_p + (0 or -1, the float drift of
eFEL's time axis): a few strided slices per residue p, interleaved by a reshape.
Other grids (a recording's irregular time column) fall back to `jnp.take`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
from jax import Array

_MAX_PERIOD = 64


@dataclass(frozen=True, eq=False)
class StridedPlan:
    """Period P, stride Q, and per residue p < P the (first raw index, mask over m)
    pairs: output P m + p reads raw[first + Q m] where mask[m]."""

    period: int
    stride: int
    length: int
    parts: tuple[tuple[tuple[int, np.ndarray], ...], ...]


def plan(src: np.ndarray, ratio: float) -> StridedPlan | None:
    """A `StridedPlan` for `raw[..., src]` (`ratio`: raw samples per output sample), or
    None where `src` is not nearly periodic."""
    n = src.shape[0]
    frac = Fraction(ratio).limit_denominator(_MAX_PERIOD)
    period, stride = frac.denominator, frac.numerator
    if stride < 1 or period > n or abs(stride / period - ratio) > 1e-9 * ratio:
        return None
    parts = []
    for p in range(period):
        base = src[p::period] - stride * np.arange(len(src[p::period]))
        firsts = np.unique(base)
        if firsts.size > 3:
            return None
        parts.append(tuple((int(f), base == f) for f in firsts))
    return StridedPlan(period, stride, n, tuple(parts))


def strided_take(raw: Array, src: np.ndarray, sp: StridedPlan | None) -> Array:
    """`raw[..., src]`, shape (..., N)."""
    if sp is None:
        return jnp.take(raw, src, axis=-1)
    n_raw = raw.shape[-1]
    per = -(-sp.length // sp.period)  # outputs per residue, the last ones padded
    lead = [(0, 0)] * (raw.ndim - 1)
    columns = []
    for parts in sp.parts:
        column = None
        for first, mask in parts:
            index = first + sp.stride * np.arange(mask.size)
            inside = (index >= 0) & (index < n_raw)
            lo, hi = int(np.argmax(inside)), int(mask.size - np.argmax(inside[::-1]))
            piece = raw[..., index[lo] : index[hi - 1] + 1 : sp.stride]
            piece = jnp.pad(piece, [*lead, (lo, per - hi)])
            keep = np.zeros(per, bool)
            keep[: mask.size] = mask & inside
            column = jnp.where(keep, piece, 0.0 if column is None else column)
        columns.append(column)
    if sp.period == 1:
        return columns[0][..., : sp.length]
    out = jnp.stack(columns, axis=-1).reshape((*raw.shape[:-1], per * sp.period))
    return out[..., : sp.length]
