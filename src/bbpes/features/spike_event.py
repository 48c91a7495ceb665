"""Spike-timing features (eFEL's `cppcore/SpikeEvent.cpp` and `pyfeatures/isi.py`).

Each function computes one trace's `(value, defined)`; `soft` reads the soft peak times
(`soft.SoftTrace.soft_peak`) and soft spike counts instead of the hard ones. Times in ms,
frequencies in Hz. eFEL counts spikes in the whole trace unless said.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ._feature import feature
from ._ops import compact, take
from ._trace import Trace


def _times(tr: Trace, soft: bool) -> Array:
    """(K,) ms, the peak times (soft: softmax-weighted)."""
    return tr.soft_peak[1] if soft else tr.peak_time


def _isi(tr: Trace, soft: bool) -> tuple[Array, Array]:
    """eFEL's `all_ISI_values`: (K,) ms, entry k the interval from spike k to k + 1, and
    its (K,) validity."""
    t = _times(tr, soft)
    return jnp.roll(t, -1) - t, tr.k < tr.peaks.count - 1


def _safe(x: Array, ok: Array) -> Array:
    """`x` where `ok`, else 1: a denominator that keeps the unused branch finite."""
    return jnp.where(ok, x, 1.0)


def _stimulus_duration(tr: Trace) -> Array:
    return jnp.asarray(tr.grid.stim_end - tr.grid.stim_start, tr.v.dtype)


@feature(per_spike=False)
def Spikecount(tr: Trace, soft: bool):
    """Number of spikes in the whole trace (eFEL's `spike_count`: the length of
    `peak_indices`; exact beyond `max_spikes`). Soft: the sum of soft upward threshold
    crossings, the total rise of sigmoid((v - threshold) / tau)."""
    value = tr.soft_count if soft else tr.peaks.total.astype(tr.v.dtype)
    return value, jnp.array(True)


@feature()
def Spikecount_stimint(tr: Trace, soft: bool):
    """Number of spikes whose peak time is in [stim_start, stim_end]. Soft: the sum of
    soft upward crossings at times in that interval."""
    value = tr.soft_count_stimulus if soft else jnp.sum(tr.in_stimulus).astype(tr.v.dtype)
    return value, jnp.array(True)


@feature(fallback=_stimulus_duration, spikes_needed=1)
def time_to_first_spike(tr: Trace, soft: bool):
    """First peak time minus stim_start (ms; negative for a spike before the stimulus).
    Undefined without spikes; soft fallback: stim_end - stim_start."""
    return _times(tr, soft)[0] - tr.grid.stim_start, tr.peaks.count >= 1


@feature(fallback=_stimulus_duration, spikes_needed=1)
def time_to_last_spike(tr: Trace, soft: bool):
    """Last peak time minus stim_start (ms). Undefined without spikes; soft fallback:
    stim_end - stim_start."""
    last = take(_times(tr, soft), tr.peaks.count - 1)
    return last - tr.grid.stim_start, tr.peaks.count >= 1


@feature(spikes_needed=1, in_stimulus=True)
def mean_frequency(tr: Trace, soft: bool):
    """Spikes in [stim_start, stim_end] times 1000 over (last such peak time -
    stim_start) (Hz); 0 when the trace spikes only outside that interval; undefined
    without spikes. Soft: the soft count of crossings in the interval over the soft
    last peak time; fallback 0 Hz."""
    stim_start = tr.grid.stim_start
    inside = tr.in_stimulus
    m = jnp.sum(inside)
    last = jnp.max(jnp.where(inside, _times(tr, soft), -jnp.inf))
    count = tr.soft_count_stimulus if soft else m.astype(tr.v.dtype)
    span = last - stim_start
    value = jnp.where(m > 0, count * 1000.0 / _safe(span, m > 0), 0.0)
    defined = (tr.peaks.count >= 1) & jnp.where(m > 0, span != 0, stim_start != 0)
    return value, defined


def _isi_values(tr: Trace, soft: bool) -> tuple[Array, Array]:
    """The ISIs eFEL's `ISI_values` and `ISI_CV` use: the first one dropped if
    `ignore_first_ISI`."""
    isi, valid = _isi(tr, soft)
    if tr.settings.ignore_first_ISI:
        valid = valid & (tr.k >= 1)
    return isi, valid


@feature(fallback=_stimulus_duration, spikes_needed=3)
def ISI_values(tr: Trace, soft: bool):
    """Mean inter-spike interval (ms), without the first one if `ignore_first_ISI`.
    Soft fallback: stim_end - stim_start."""
    isi, valid = _isi_values(tr, soft)
    n = jnp.sum(valid)
    return jnp.sum(jnp.where(valid, isi, 0.0)) / _safe(n, n > 0), n >= 1


@feature(spikes_needed=4)
def ISI_CV(tr: Trace, soft: bool):
    """Coefficient of variation of the ISIs (standard deviation with ddof 1 over the
    mean), without the first ISI if `ignore_first_ISI`; needs two ISIs. Soft fallback
    0."""
    isi, valid = _isi_values(tr, soft)
    n = jnp.sum(valid)
    ok = n >= 2
    mean = jnp.sum(jnp.where(valid, isi, 0.0)) / _safe(n, ok)
    var = jnp.sum(jnp.where(valid, (isi - mean) ** 2, 0.0)) / _safe(n - 1, ok)
    return jnp.sqrt(jnp.where(ok, var, 1.0)) / _safe(mean, ok), ok


@feature(spikes_needed=2)
def inv_first_ISI(tr: Trace, soft: bool):
    """1000 over the first ISI (Hz). Soft fallback 0 Hz."""
    isi, _ = _isi(tr, soft)
    ok = tr.peaks.count >= 2
    return 1000.0 / _safe(isi[0], ok), ok


@feature(spikes_needed=4, in_stimulus=True)
def adaptation_index2(tr: Trace, soft: bool):
    """Mean of (ISI_i - ISI_{i-1}) / (ISI_i + ISI_{i-1}) over the spikes in
    [stim_start, stim_end] after the first one; needs four spikes there. Soft
    fallback 0."""
    m, t = compact(tr.in_stimulus, _times(tr, soft))
    isi = jnp.roll(t, -1) - t  # isi[i]: spike i to i + 1 of those in the stimulus
    prev = jnp.roll(isi, 1)
    terms = (tr.k >= 2) & (tr.k <= m - 2)  # ISIs between spikes 1..m-1, from the second
    ok = (tr.peaks.count >= 4) & (m >= 4)
    ratio = (isi - prev) / _safe(isi + prev, terms)
    return jnp.sum(jnp.where(terms, ratio, 0.0)) / _safe(m - 3, ok), ok
