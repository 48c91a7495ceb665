"""`SoftTrace`: the smooth pieces of the soft features.

The soft form keeps eFEL's discrete landmarks (which samples are peaks, AP begins,
AHP minima: piecewise constant in the voltage) and reads smooth values around them,
with a temperature `tau` in mV; every relaxation tends to the hard value as tau -> 0
on well-resolved spikes:

- threshold crossings: `c_j = relu(s_j - s_{j-1})` with `s = sigmoid((v - theta) /
  tau)`, the rises of a soft "above threshold": one per upward crossing as tau -> 0,
  a fraction for a bump that stops short of threshold (no double counting while v
  lingers near it); their sum (without a spike cut by the end of the trace) is the
  soft spike count.
- peak voltage and time: softmax(v / tau)-weighted voltage and time over the samples
  within `WINDOW` of the peak inside its excursion above threshold.
- AHP minimum: softmin(v / tau)-weighted voltage over the `WINDOW` samples up to the
  minimum, from the peak on.
- time above threshold: `interp_step * sum_j sigmoid((v_j - theta) / tau)` over eFEL's
  samples from onset to end, widened by the sample before the onset (within the
  spike's range), so that the crossings carry gradient.
- half-height crossing times: softmin(|v - h| / tau)-weighted times around eFEL's rise
  and fall samples.

Gradients flow through the voltages those read; the landmarks themselves carry none.
"""

from __future__ import annotations

from functools import cached_property

import jax
import jax.numpy as jnp
from jax import Array

from ._ops import cumsum, take
from ._trace import Trace

WINDOW = 10  # samples on each side of a landmark that its soft value reads


def window_weights(
    v: Array, center: Array, lo: Array, hi: Array, scale: Array, sign: float
) -> tuple[Array, Array]:
    """Softmax weights of `sign * v / scale` over the samples within `WINDOW` of each
    `center` (K,) and inside [lo, hi] (K,) (the center itself always counts, so the
    weights are finite). Returns `(index (K, 2W+1), weight (K, 2W+1))`."""
    offsets = jnp.arange(-WINDOW, WINDOW + 1)
    index = jnp.clip(center[:, None] + offsets, 0, v.shape[0] - 1)
    inside = (index >= lo[:, None]) & (index <= hi[:, None]) | (offsets == 0)
    weight = jax.nn.softmax(jnp.where(inside, sign * v[index] / scale, -jnp.inf), axis=-1)
    return index, weight


class SoftTrace(Trace):
    """A `Trace` with the soft pieces listed in the module docstring (temperature
    `self.temperature`, mV)."""

    @cached_property
    def above(self) -> Array:
        """(N,) sigmoid((v - theta) / tau): how far above threshold each sample is."""
        return jax.nn.sigmoid((self.v - self.settings.threshold) / self.temperature)

    @cached_property
    def crossing(self) -> Array:
        """(N,) soft upward threshold crossings (0 at the first sample), masked from a
        spike cut by the end of the trace on (eFEL counts a spike once it comes back
        down)."""
        c = jax.nn.relu(self.above[1:] - self.above[:-1])
        keep = jnp.arange(1, self.v.shape[0]) < self.peaks.open_up
        return jnp.concatenate([jnp.zeros(1, self.v.dtype), jnp.where(keep, c, 0.0)])

    @cached_property
    def soft_count(self) -> Array:
        """() soft number of spikes in the whole trace."""
        return jnp.sum(self.crossing)

    @cached_property
    def soft_count_stimulus(self) -> Array:
        """() soft number of spikes in [stim_start, stim_end]: the soft crossings at times
        in that interval, except that a detected spike's own crossing counts where its
        peak time is (eFEL's rule)."""
        g = self.grid
        inside = (g.t >= g.stim_start) & (g.t <= g.stim_end)
        count = jnp.sum(jnp.where(jnp.asarray(inside), self.crossing, 0.0))
        up = self.peaks.up
        by_time = take(jnp.asarray(inside), up)
        fix = jnp.where(self.spike, self.in_stimulus.astype(self.v.dtype) - by_time, 0.0)
        return count + jnp.sum(fix * take(self.crossing, up))

    @cached_property
    def soft_peak(self) -> tuple[Array, Array]:
        """(voltage (K,) mV, time (K,) ms) of each spike, softmax-weighted."""
        p = self.peaks
        index, weight = window_weights(self.v, p.index, p.up, p.down, self.temperature, 1.0)
        return jnp.sum(weight * self.v[index], -1), jnp.sum(weight * self.t[index], -1)

    @cached_property
    def soft_ahp(self) -> Array:
        """(K,) mV, each AHP minimum, softmin-weighted over the samples before it."""
        a = self.ahp.index
        lo = jnp.maximum(self.peaks.index, a - WINDOW)
        index, weight = window_weights(self.v, a, lo, a, self.temperature, -1.0)
        return jnp.sum(weight * self.v[index], -1)

    @cached_property
    def above_cumsum(self) -> Array:
        """(N,) running sum of `above`."""
        return cumsum(self.above)

    def soft_extreme(self, mask: Array, sign: float) -> Array:
        """Softmax(sign * v / tau)-weighted voltage over the samples in `mask` (N,) (a
        smooth max for sign 1, min for -1)."""
        w = jax.nn.softmax(jnp.where(mask, sign * self.v / self.temperature, -jnp.inf))
        return jnp.sum(jnp.where(mask, w * self.v, 0.0))

    @cached_property
    def stimulus_mask(self) -> Array:
        g = self.grid
        mask = (g.t >= g.stim_start) & (g.t <= g.stim_end)
        if not mask.any():
            mask[min(g.stim_start_idx, g.n - 1)] = True
        return jnp.asarray(mask)

    def deficit(self, needed: int, in_stimulus: bool) -> Array:
        """() How far a trace is from having `needed` spikes (in the stimulus interval if
        `in_stimulus`): `relu(needed - soft count) + relu(theta - max v) / tau`, the
        second term only while no sample reaches threshold. 0 for `needed` 0."""
        if needed == 0:
            return jnp.zeros((), self.v.dtype)
        count = self.soft_count_stimulus if in_stimulus else self.soft_count
        mask = self.stimulus_mask if in_stimulus else jnp.ones(self.v.shape, bool)
        top = jnp.max(jnp.where(mask, self.v, -jnp.inf))
        gap = jax.nn.relu(self.settings.threshold - top) / self.temperature
        return jax.nn.relu(needed - count) + gap


def soft_time_at(tr: SoftTrace, center: Array, lo: Array, hi: Array, level: Array) -> Array:
    """(K,) ms: softmin(|v - level| / tau)-weighted time over the samples within `WINDOW`
    of `center` inside [lo, hi]: where v passes `level` (K,) near `center`."""
    offsets = jnp.arange(-WINDOW, WINDOW + 1)
    index = jnp.clip(center[:, None] + offsets, 0, tr.v.shape[0] - 1)
    inside = (index >= lo[:, None]) & (index <= hi[:, None]) | (offsets == 0)
    distance = jnp.abs(tr.v[index] - level[:, None]) / tr.temperature
    weight = jax.nn.softmax(jnp.where(inside, -distance, -jnp.inf), axis=-1)
    return jnp.sum(weight * tr.t[index], -1)


def soft_time_above(tr: SoftTrace, start: Array, stop: Array) -> Array:
    """(K,) ms: soft time above threshold over samples [start, stop] (K,) each."""
    c = tr.above_cumsum
    inside = take(c, stop) - jnp.where(start > 0, take(c, start - 1), 0.0)
    return tr.settings.interp_step * jnp.where(stop >= start, inside, 0.0)
