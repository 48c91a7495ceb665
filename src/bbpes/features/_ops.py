"""Index primitives for one trace, written for `jax.vmap`: counting, "first sample in a
range where...", per-segment extrema, compaction of padded lists. No Python loop over
samples or spikes: every query is a cumulative count plus a binary search, or one
blocked range query.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

_BLOCK = 32


def cumsum(x: Array) -> Array:
    """Inclusive running sum along the last axis, same shape, float32 or float64.

    A blocked prefix sum: a (32, 32) triangular matmul inside blocks of 32 samples, then
    a cumulative sum of the block totals: several times faster on CPU than `jnp.cumsum`.
    """
    dtype = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    n = x.shape[-1]
    pad = (-n) % _BLOCK
    x = jnp.pad(x.astype(dtype), [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    x = x.reshape((*x.shape[:-1], (n + pad) // _BLOCK, _BLOCK))
    inner = x @ jnp.triu(jnp.ones((_BLOCK, _BLOCK), dtype))
    totals = inner[..., -1]
    offsets = jnp.cumsum(totals, axis=-1) - totals
    out = inner + offsets[..., None]
    return out.reshape((*out.shape[:-2], n + pad))[..., :n]


def cumcount(flags: Array) -> Array:
    """Inclusive running count of a boolean array along its last axis, int32, same shape
    (`cumsum` of 0/1: exact in float32 below 2**24 samples)."""
    return cumsum(flags.astype(jnp.float32)).astype(jnp.int32)


def nth_true(counts: Array, nth: Array) -> Array:
    """Index of the `nth` true sample (1-based), given `counts = cumcount(flags)` of shape
    (N,); N where there are fewer. `nth` any shape, int."""
    return jnp.searchsorted(counts, nth, side="left").astype(jnp.int32)


def count_before(counts: Array, index: Array) -> Array:
    """Number of true samples strictly before `index` (int array, values in [0, N])."""
    n = counts.shape[-1]
    return jnp.where(index > 0, counts[jnp.clip(index - 1, 0, n - 1)], 0)


def first_true_in(counts: Array, start: Array, stop: Array) -> Array:
    """First index i in [start, stop) with flags[i], else `stop` (eFEL's
    `find_if(v.begin() + start, v.begin() + stop, pred)`). Any matching shapes."""
    found = nth_true(counts, count_before(counts, start) + 1)
    return jnp.where(found < stop, found, stop)


def last_true_in(counts: Array, start: Array, stop: Array) -> Array:
    """Last index i in [start, stop) with flags[i], else -1."""
    upto = count_before(counts, stop)
    found = nth_true(counts, upto)
    return jnp.where(upto > count_before(counts, start), found, -1)


class Blocks(NamedTuple):
    """`x` (N,) cut into blocks of 32 samples, `cut` (M, 32) (padded with -inf), and a
    sparse table over the blocks: `best[j]` (M,), the largest value of blocks
    [m, m + 2**j), and `at[j]`, the first index holding it. The precomputation of
    `range_argmax`: O(N + M log M)."""

    cut: Array
    best: tuple[Array, ...]
    at: tuple[Array, ...]
    n: int


def _better(a_best, a_at, b_best, b_at):
    """The larger of two (value, index) pairs, the earlier index on ties."""
    take_b = (b_best > a_best) | ((b_best == a_best) & (b_at < a_at))
    return jnp.where(take_b, b_best, a_best), jnp.where(take_b, b_at, a_at)


def blocks(x: Array) -> Blocks:
    """The `Blocks` of `x` (N,)."""
    n = x.shape[0]
    pad = (-n) % _BLOCK
    cut = jnp.pad(x, (0, pad), constant_values=-jnp.inf).reshape(-1, _BLOCK)
    m = cut.shape[0]
    best = jnp.max(cut, axis=-1)
    first = jnp.min(jnp.where(cut == best[:, None], jnp.arange(_BLOCK), _BLOCK), axis=-1)
    bests, ats = [best], [first + _BLOCK * jnp.arange(m)]
    span = 1
    while 2 * span <= m:
        b, a = bests[-1], ats[-1]
        shifted_b = jnp.concatenate([b[span:], jnp.full(span, -jnp.inf, b.dtype)])
        shifted_a = jnp.concatenate([a[span:], jnp.full(span, n, a.dtype)])
        nb, na = _better(b, a, shifted_b, shifted_a)
        bests.append(nb)
        ats.append(na)
        span *= 2
    return Blocks(cut, tuple(bests), tuple(ats), n)


def range_argmax(b: Blocks, start: Array, stop: Array) -> tuple[Array, Array]:
    """Largest value of `x` over [start, stop) and the first index holding it, for any
    (possibly overlapping) ranges, shapes (K,): eFEL's `max_element` (first maximum).

    The partial first and last blocks of each range are read whole (2 rows of 32
    samples), the whole blocks between through two lookups in the sparse table: no
    scatter, no search. An empty range gives (-inf, N).
    """
    n = b.n
    m_blocks = b.cut.shape[0]
    offsets = jnp.arange(_BLOCK)
    first_block = jnp.clip(start // _BLOCK, 0, m_blocks - 1)
    last_block = jnp.clip((stop - 1) // _BLOCK, 0, m_blocks - 1)

    def partial(block, lo, hi):
        index = block[:, None] * _BLOCK + offsets
        inside = (index >= lo[:, None]) & (index < hi[:, None])
        value = jnp.where(inside, b.cut[block], -jnp.inf)
        best = jnp.max(value, axis=-1)
        at = jnp.min(jnp.where(inside & (value == best[:, None]), index, n), axis=-1)
        return best, at

    best, at = partial(first_block, start, jnp.minimum(stop, (first_block + 1) * _BLOCK))
    best, at = _better(
        best, at, *partial(last_block, jnp.maximum(start, last_block * _BLOCK), stop)
    )
    lo, count = first_block + 1, last_block - first_block - 1  # whole blocks between
    level = jnp.floor(jnp.log2(jnp.maximum(count, 1))).astype(jnp.int32)
    table_best = jnp.stack(b.best)  # (levels, M)
    table_at = jnp.stack(b.at)
    hi = jnp.clip(lo + count - (1 << level), 0, m_blocks - 1)
    lo = jnp.clip(lo, 0, m_blocks - 1)
    for start_block in (lo, hi):
        cand_best = jnp.where(count > 0, table_best[level, start_block], -jnp.inf)
        best, at = _better(best, at, cand_best, table_at[level, start_block])
    empty = stop <= start
    return jnp.where(empty, -jnp.inf, best), jnp.where(empty | (best == -jnp.inf), n, at)


def range_argmin(b: Blocks, start: Array, stop: Array) -> tuple[Array, Array]:
    """Smallest value over [start, stop) and its first index, `b = blocks(-x)`: eFEL's
    `min_element`. An empty range gives (+inf, N)."""
    best, at = range_argmax(b, start, stop)
    return -best, at


def compact(valid: Array, *arrays: Array) -> tuple[Array, ...]:
    """Move the entries where `valid` (K,) to the front, in order: eFEL's `push_back` of
    the entries it keeps. Returns `(count, *arrays)`; the slots from `count` on hold 0
    (masked by `arange(K) < count` downstream)."""
    k = valid.shape[0]
    slot = jnp.where(valid, jnp.cumsum(valid, dtype=jnp.int32) - 1, k)
    out = tuple(jnp.zeros_like(a).at[slot].set(a, mode="drop") for a in arrays)
    return (jnp.sum(valid, dtype=jnp.int32), *out)


def take(x: Array, index: Array) -> Array:
    """`x[index]` with the index clipped into range (padding slots read the edges)."""
    return x[jnp.clip(index, 0, x.shape[0] - 1)]


def masked_mean(x: Array, mask: Array) -> Array:
    """Mean of `x` where `mask`, NaN where nothing is masked in."""
    n = jnp.sum(mask)
    total = jnp.sum(jnp.where(mask, x, 0.0))
    return jnp.where(n > 0, total / jnp.maximum(n, 1), jnp.nan)
