"""Spike-shape features (eFEL's `cppcore/SpikeShape.cpp`): the hard form is eFEL's
mean over its per-spike array, the soft form the same mean of the soft per-spike values
(`soft.SoftTrace`). Voltages in mV, durations in ms.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ._feature import feature
from ._ops import compact, cumcount, first_true_in, take
from ._trace import Trace
from .soft import soft_time_above, soft_time_at


def _mean(x: Array, valid: Array) -> tuple[Array, Array]:
    """Mean of x over valid (K,), and whether any is valid."""
    n = jnp.sum(valid)
    return jnp.sum(jnp.where(valid, x, 0.0)) / jnp.maximum(n, 1), n >= 1


def _peak_voltage(tr: Trace, soft: bool) -> Array:
    return tr.soft_peak[0] if soft else tr.peak_voltage


def _stimulus_max(tr: Trace) -> Array:
    """Soft fallback of the amplitude: the soft maximum over the stimulus interval minus
    the voltage at stim_start."""
    return tr.soft_extreme(tr.stimulus_mask, 1.0) - take(tr.v, tr.grid.stim_start_idx)


@feature(fallback=lambda tr: tr.soft_extreme(jnp.ones(tr.v.shape, bool), 1.0), spikes_needed=1)
def AP_height(tr: Trace, soft: bool):
    """Mean peak voltage (eFEL's `peak_voltage`, every spike). Soft fallback: the soft
    maximum of the trace."""
    return _mean(_peak_voltage(tr, soft), tr.spike)


@feature(fallback=_stimulus_max, spikes_needed=1, in_stimulus=True)
def AP_amplitude(tr: Trace, soft: bool):
    """Mean of peak voltage minus the voltage at the AP begin (`AP_begin_indices`, by
    `derivative_threshold`), over the spikes peaking in [stim_start, stim_end]; the
    i-th such peak is paired with the i-th AP begin, as in eFEL. Undefined with more
    such peaks than AP begins. Soft fallback: the soft maximum over the stimulus
    interval minus the voltage at stim_start."""
    begin, n_begin, ok = tr.begin
    m, peak_v = compact(tr.in_stimulus, _peak_voltage(tr, soft))
    value, any_spike = _mean(peak_v - take(tr.v, begin), tr.k < m)
    return value, ok & any_spike & (m <= n_begin)


@feature(spikes_needed=1)
def AP_width(tr: Trace, soft: bool):
    """Mean width at threshold: for each AHP minimum, from the first sample >= threshold
    after the previous minimum (the trace start for the first) to the next sample <=
    threshold, before the minimum. Soft: `interp_step` times the soft count of samples
    above threshold from the sample before the onset to the end. Soft fallback 0."""
    ahp = tr.ahp
    start = jnp.concatenate([jnp.zeros(1, ahp.index.dtype), ahp.index[:-1]])
    stop = ahp.index
    theta = tr.settings.threshold
    counts = cumcount(jnp.stack([tr.v >= theta, tr.v <= theta]))
    onset = first_true_in(counts[0], start, stop)
    end = first_true_in(counts[1], onset, stop)
    if soft:
        width = soft_time_above(tr, jnp.maximum(onset - 1, start), jnp.minimum(end, stop - 1))
    else:
        width = take(tr.t, end) - take(tr.t, onset)
    value, ok = _mean(width, tr.k < ahp.count)
    return value, ok & (tr.peaks.count >= 1)


@feature(spikes_needed=1)
def AP_duration_half_width(tr: Trace, soft: bool):
    """Mean time from the rise to the fall through half height, (peak + AP begin) / 2:
    eFEL's `AP_rise_indices` and `AP_fall_indices`, the samples closest to it between
    AP begin and peak and between peak and AP end. Soft: softmin(|v - h| / tau)-weighted
    times around those samples. Soft fallback 0."""
    rise, fall, valid = tr.half_width
    if soft:
        begin, _, _ = tr.begin
        end, _ = tr.end
        peak = tr.peaks.index
        half = (tr.soft_peak[0] + take(tr.v, begin)) / 2
        width = soft_time_at(tr, fall, peak, end - 1, half) - soft_time_at(
            tr, rise, begin, peak - 1, half
        )
    else:
        width = take(tr.t, fall) - take(tr.t, rise)
    return _mean(width, valid)


def _ahp_voltage(tr: Trace, soft: bool) -> Array:
    return tr.soft_ahp if soft else take(tr.v, tr.ahp.index)


def _stimulus_min(tr: Trace) -> Array:
    return tr.soft_extreme(tr.stimulus_mask, -1.0)


@feature(fallback=_stimulus_min, spikes_needed=1)
def AHP_depth_abs(tr: Trace, soft: bool):
    """Mean AHP minimum voltage (`min_AHP_values`): after each spike, eFEL's first
    minimum before the next spike (see `spikes.min_ahp_indices`). Soft: softmin-weighted
    voltage over the samples leading to each minimum. Soft fallback: the soft minimum
    over the stimulus interval."""
    return _mean(_ahp_voltage(tr, soft), tr.k < tr.ahp.count)


@feature(fallback=lambda tr: _stimulus_min(tr) - tr.voltage_base, spikes_needed=1)
def AHP_depth(tr: Trace, soft: bool):
    """Mean AHP minimum relative to `voltage_base`. Soft fallback: the soft minimum over
    the stimulus interval minus `voltage_base`."""
    value, ok = _mean(_ahp_voltage(tr, soft), tr.k < tr.ahp.count)
    return value - tr.voltage_base, ok
