"""Action-potential landmarks on one resampled trace, as eFEL finds them
(`cppcore/SpikeShape.cpp`: `__AP_begin_indices`, `__AP_end_indices`,
`__AP_rise_indices`, `__AP_fall_indices`). Padded arrays of `K` entries plus a count,
as in `spikes`; `jax.vmap` them over traces.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ._ops import blocks, compact, cumcount, first_true_in, last_true_in, range_argmin, take
from .spikes import MinAHP, Peaks


def dvdt(v: Array, dt_central: Array) -> Array:
    """eFEL's dV/dt (mV/ms): central differences (v[i+1] - v[i-1]) / 2 over the same of
    the time axis, one-sided at both ends. `v`, `dt_central` (N,)."""
    dv = jnp.concatenate([v[1:2] - v[:1], (v[2:] - v[:-2]) / 2, v[-1:] - v[-2:-1]])
    return dv / dt_central


def ap_begin_indices(
    slope: Array, peaks: Peaks, ahp: MinAHP, stim_start_idx: int, threshold: float, window: int
) -> tuple[Array, Array, Array]:
    """eFEL's `__AP_begin_indices`: for each peak after the stimulus start, searching
    back from the peak to the previous AHP minimum (the first: 2 samples before the
    stimulus start), the last sample j where dV/dt <= `threshold` (mV/ms) and the next
    `window` samples all have dV/dt >= `threshold`; the AP begins at j + 1. Spikes with
    no such j are skipped. Returns `(index (K,), count, ok)`; `ok` False where eFEL
    raises (more peaks than minima).

    eFEL clamps a begin closer than `window` samples to the end of the trace to
    `N - window` and tests the window there; here such a candidate is rejected.
    """
    k = jnp.arange(peaks.index.shape[0])
    sb = stim_start_idx
    first_min = sb - 2 if sb > 1 else max(sb - 1, 0)
    after = peaks.index > sb
    n_peaks, peak_after = compact((k < peaks.count) & after, peaks.index)
    n_ahp, ahp_after = compact((k < ahp.count) & (ahp.index > sb), ahp.index)
    minima = jnp.concatenate([jnp.array([first_min]), ahp_after[:-1]])
    ok = n_ahp + 1 >= n_peaks
    rising = slope >= threshold
    good = slope <= threshold
    for shift in range(1, window + 1):
        good = good & jnp.concatenate([rising[shift:], jnp.zeros(shift, bool)])
    last = last_true_in(cumcount(good), minima, peak_after)
    count, begin = compact((k < n_peaks) & (last >= 0), last + 1)
    return begin, jnp.where(ok, count, 0), ok


def ap_end_indices(
    v_slope: Array, peaks: Peaks, stim_start_idx: int, threshold: float
) -> tuple[Array, Array]:
    """eFEL's `__AP_end_indices`: for each peak after the stimulus start, between it
    (exclusive) and the next such peak (the last: the last sample, exclusive), the first
    steepest fall of V, then the first sample from there whose dV/dt >= `threshold`
    (mV/ms, negative). Peaks without one are skipped. Returns `(index (K,), count)`."""
    n = v_slope.shape[0]
    num = peaks.index.shape[0]
    k = jnp.arange(num)
    n_after, peak_after = compact((k < peaks.count) & (peaks.index > stim_start_idx), peaks.index)
    stop = jnp.where(k + 1 < n_after, jnp.roll(peak_after, -1), n - 1)
    start = peak_after + 1
    _, steepest = range_argmin(blocks(-v_slope), start, stop)
    steepest = jnp.clip(steepest, start, stop)
    found = first_true_in(cumcount(v_slope >= threshold), steepest, stop)
    valid = (k < n_after) & (start < stop) & (found < stop)
    count, end = compact(valid, found)
    return end, count


def half_width_indices(
    v: Array, peaks: Peaks, begin: Array, begin_count: Array, end: Array, end_count: Array
) -> tuple[Array, Array, Array]:
    """eFEL's `AP_rise_indices` and `AP_fall_indices`: for spike i (i < min(#begins,
    #peaks)) at half height h = (v[peak_i] + v[begin_i]) / 2, the first sample closest to
    h in [begin_i, peak_i) and in [peak_i, end_i) (an empty range gives its start).
    Returns `(rise (K,), fall (K,), valid (K,) bool)`; `valid` is all False where eFEL's
    rise indices fail (a peak before its begin, or no spike).

    Where peak_i > end_i eFEL leaves the fall index at 0 (kept here); where there are
    fewer ends than begins eFEL reads past its array (undefined): those spikes are left
    out (`valid` False).
    """
    n = v.shape[0]
    num = peaks.index.shape[0]
    k = jnp.arange(num)
    count = jnp.minimum(begin_count, peaks.count)
    in_range = k < count
    peak = peaks.index
    half = (take(v, peak) + take(v, begin)) / 2
    rise_fails = jnp.any(in_range & (peak < begin))
    marks = jnp.zeros(n + 1, jnp.int32).at[jnp.where(in_range, peak, n)].add(1)
    spike = cumcount(marks[:n] > 0)  # peaks at or before each sample: the next peak's slot
    j = jnp.arange(n)
    # The rise windows [begin_i, peak_i) are disjoint, as are the fall windows
    # [peak_i, end_i): one array each holds every window's |v - h_i|.
    in_rise = (spike < count) & (j >= take(begin, spike))
    in_fall = (spike > 0) & (j < take(end, spike - 1))
    rise_distance = jnp.where(in_rise, jnp.abs(v - take(half, spike)), jnp.inf)
    fall_distance = jnp.where(in_fall, jnp.abs(v - take(half, spike - 1)), jnp.inf)
    _, rise = range_argmin(blocks(-rise_distance), begin, peak)
    _, fall = range_argmin(blocks(-fall_distance), peak, end)
    rise = jnp.where(peak > begin, rise, begin)
    fall = jnp.where(end > peak, fall, peak)
    fall = jnp.where(peak > end, 0, fall)
    valid = in_range & (k < end_count) & ~rise_fails
    return rise, fall, valid
