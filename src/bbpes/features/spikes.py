"""Spike detection on one resampled trace, as eFEL does it (`cppcore/SpikeEvent.cpp`
`__peak_indices`, `cppcore/SpikeShape.cpp` `__min_AHP_indices`).

Every function takes one trace (shape (N,), mV, on the grid of `_grid.Grid`) and
returns padded arrays of `K = settings.max_spikes` entries with a count: entry k is
meaningful for k < count. `jax.vmap` them over traces.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from ._ops import blocks, compact, cumcount, first_true_in, nth_true, range_argmax, take


class Peaks(NamedTuple):
    """eFEL's `peak_indices`: the first maximum of each excursion above threshold.

    `index` (K,) int, samples; `count` () int, spikes kept (at most K); `total` () int,
    spikes in the trace (exact even beyond K: eFEL's `Spikecount`); `up` and `down`
    (K,) int, the upward and downward threshold crossings that bound each spike
    (eFEL's pairs `upVec[k]`, `dnVec[k]`); `open_up` () int, the first upward crossing
    left without a downward one (a spike cut by the end of the trace), N if none.
    """

    index: Array
    count: Array
    total: Array
    up: Array
    down: Array
    open_up: Array

    @property
    def truncated(self) -> Array:
        """True where the trace has more spikes than `max_spikes`."""
        return self.total > self.index.shape[0]


def peak_indices(v: Array, threshold: float, max_spikes: int) -> Peaks:
    """eFEL's `__peak_indices` with `strict_stiminterval` False.

    Upward crossings are samples i with v[i] > threshold > v[i-1], downward ones
    v[i] < threshold < v[i-1]; downward crossings before the first upward one are
    dropped, the k-th upward crossing is paired with the k-th downward one (extra
    upward ones at the end, a spike still above threshold when the trace ends, are
    dropped) and the spike is the first maximum of v over [up_k, down_k].
    """
    n = v.shape[0]
    k = jnp.arange(max_spikes)
    above = v > threshold
    below = v < threshold
    up = jnp.zeros(n, bool).at[1:].set(above[1:] & below[:-1])
    down = jnp.zeros(n, bool).at[1:].set(below[1:] & above[:-1])
    counts = cumcount(jnp.stack([up, down]))
    n_up, n_down = counts[0, -1], counts[1, -1]
    ups = nth_true(counts[0], k + 1)
    downs_before = jnp.where(n_up > 0, take(counts[1], ups[0]), 0)
    downs = nth_true(counts[1], downs_before + k + 1)
    total = jnp.where(n_down > 0, jnp.minimum(n_up, n_down - downs_before), 0)
    open_up = jnp.where(n_up > total, nth_true(counts[0], total + 1), n)
    _, first_max = range_argmax(blocks(v), ups, downs + 1)
    valid = (k < total) & (downs >= ups)
    count, index, ups, downs = compact(valid, first_max, ups, downs)
    total = jnp.where(total > max_spikes, total, count)
    return Peaks(index, count, total, ups, downs, open_up)


class MinAHP(NamedTuple):
    """eFEL's `min_AHP_indices`: `index` (K,) int and `count` () int (0: eFEL fails)."""

    index: Array
    count: Array


def min_ahp_indices(v: Array, peaks: Peaks) -> MinAHP:
    """eFEL's `__min_AHP_indices` with `strict_stiminterval` False.

    Between each peak and the next (the last: to the end of the trace), eFEL's
    `first_min_element`: the first sample m that is lower than every sample since the
    peak and has its next two samples not lower (v[m+1] >= v[m] and v[m+2] >= v[m]),
    else the first lowest sample. The first m with those two neighbours not lower is
    always such a running minimum, and without one the lowest sample is one of the
    last two, so no search over the segment is needed. A minimum at the very last
    sample is dropped, as eFEL does.
    """
    n = v.shape[0]
    k = jnp.arange(peaks.index.shape[0])
    rises = jnp.zeros(n, bool).at[: n - 2].set((v[1:-1] >= v[:-2]) & (v[2:] >= v[:-2]))
    start = peaks.index
    stop = jnp.where(k + 1 < peaks.count, jnp.roll(peaks.index, -1), n)
    found = first_true_in(cumcount(rises), start, jnp.maximum(stop - 2, start))
    last_two = jnp.where(take(v, stop - 2) <= take(v, stop - 1), stop - 2, stop - 1)
    fallback = jnp.where(stop - start >= 2, last_two, start)
    index = jnp.where(found < stop - 2, found, fallback)
    valid = (k < peaks.count) & (index != n - 1)
    count, index = compact(valid, index)
    return MinAHP(index, count)
