"""`Trace`: one resampled voltage trace and eFEL's landmarks on it, each computed the
first time a feature asks for it (so an extraction pays only for what its features
need). Inside `jax.vmap`: all arrays are one trace's.
"""

from __future__ import annotations

from functools import cached_property, partial

import jax
import jax.numpy as jnp
from jax import Array

from ._grid import Grid
from ._ops import take
from ._strided import strided_take
from .settings import FeatureSettings
from .shape import ap_begin_indices, ap_end_indices, dvdt, half_width_indices
from .spikes import MinAHP, Peaks, min_ahp_indices, peak_indices


def resample(raw: Array, grid: Grid) -> Array:
    """eFEL's linear resampling of raw traces (B, n_raw) onto `grid.t`: (B, N) mV.

    Call it on the whole batch, outside `jax.vmap` (see `_strided`). The result is
    computed inside a one-trip `while` loop: XLA on CPU otherwise fuses the resampling
    into each of its many consumers and re-reads the raw traces for every one (2-3x
    slower). Differentiable (forward and reverse) through its `custom_jvp`: the
    resampling is linear in `raw`.
    """
    return _materialized(raw, grid)


def _resample(raw: Array, grid: Grid) -> Array:
    dtype = raw.dtype
    y0 = strided_take(raw, grid.src, grid.plans[0])
    y1 = strided_take(raw, grid.src + 1, grid.plans[1])
    slope = (y1 - y0) / jnp.asarray(grid.slope_den, dtype)
    v = y0 + slope * jnp.asarray(grid.offset, dtype)
    if grid.past_end.any():
        v = jnp.where(jnp.asarray(grid.past_end), raw[..., -1:], v)
    return v


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _materialized(raw: Array, grid: Grid) -> Array:
    first = raw.reshape(-1)[0]
    trips = 1 + (first != first).astype(jnp.int32)  # 1, but not known to XLA
    zeros = jnp.zeros((*raw.shape[:-1], grid.n), raw.dtype)
    return jax.lax.fori_loop(0, trips, lambda i, acc: _resample(raw, grid) + acc * 0, zeros)


@_materialized.defjvp
def _materialized_jvp(grid, primals, tangents):
    (raw,), (d_raw,) = primals, tangents
    return _materialized(raw, grid), _resample(d_raw, grid)


class Trace:
    """One trace on the resampled grid: `v` (N,) mV (from `resample`), `t` (N,) ms, and
    eFEL's landmarks as padded per-spike arrays (K = `settings.max_spikes`), built
    lazily.

    `temperature` (mV, a scalar array) is only read by the soft features.
    """

    def __init__(self, v: Array, grid: Grid, settings: FeatureSettings, temperature: Array):
        self.grid = grid
        self.settings = settings
        self.temperature = temperature
        self.v = v
        self.t = jnp.asarray(grid.t, self.v.dtype)
        self.k = jnp.arange(settings.max_spikes)

    # --- spikes -------------------------------------------------------------------
    @cached_property
    def peaks(self) -> Peaks:
        return peak_indices(self.v, self.settings.threshold, self.settings.max_spikes)

    @cached_property
    def spike(self) -> Array:
        """(K,) bool: the slots holding a spike."""
        return self.k < self.peaks.count

    @cached_property
    def peak_time(self) -> Array:
        """(K,) ms, eFEL's `peak_time`."""
        return take(self.t, self.peaks.index)

    @cached_property
    def peak_voltage(self) -> Array:
        """(K,) mV, eFEL's `peak_voltage`."""
        return take(self.v, self.peaks.index)

    @cached_property
    def in_stimulus(self) -> Array:
        """(K,) bool: spikes whose peak time is within [stim_start, stim_end]."""
        pt = self.peak_time
        return self.spike & (pt >= self.grid.stim_start) & (pt <= self.grid.stim_end)

    @cached_property
    def complete(self) -> Array:
        """() bool: every spike fits in the padding (False: hard per-spike features are
        NaN)."""
        return ~self.peaks.truncated

    # --- spike shape --------------------------------------------------------------
    @cached_property
    def ahp(self) -> MinAHP:
        return min_ahp_indices(self.v, self.peaks)

    @cached_property
    def slope(self) -> Array:
        """(N,) mV/ms, eFEL's dV/dt."""
        return dvdt(self.v, jnp.asarray(self.grid.dt_central, self.v.dtype))

    @cached_property
    def begin(self) -> tuple[Array, Array, Array]:
        """eFEL's `AP_begin_indices`: (index (K,), count, ok)."""
        s = self.settings
        return ap_begin_indices(
            self.slope,
            self.peaks,
            self.ahp,
            self.grid.stim_start_idx,
            s.derivative_threshold,
            s.derivative_window,
        )

    @cached_property
    def end(self) -> tuple[Array, Array]:
        """eFEL's `AP_end_indices`: (index (K,), count)."""
        return ap_end_indices(
            self.slope,
            self.peaks,
            self.grid.stim_start_idx,
            self.settings.down_derivative_threshold,
        )

    @cached_property
    def half_width(self) -> tuple[Array, Array, Array]:
        """eFEL's `AP_rise_indices` and `AP_fall_indices`: (rise (K,), fall (K,), valid)."""
        begin, begin_count, _ = self.begin
        end, end_count = self.end
        return half_width_indices(self.v, self.peaks, begin, begin_count, end, end_count)

    # --- subthreshold -------------------------------------------------------------
    def window_mean(self, window: tuple[int, int]) -> Array:
        """Mean of v over samples [start, stop) (static), NaN if empty."""
        start, stop = window
        if stop <= start:
            return jnp.array(jnp.nan, self.v.dtype)
        return jnp.mean(self.v[start:stop])

    @cached_property
    def voltage_base(self) -> Array:
        """() mV, eFEL's `voltage_base`."""
        start, stop = self.grid.vb
        if self.settings.voltage_base_mode == "median" and stop > start:
            return jnp.median(self.v[start:stop])
        return self.window_mean(self.grid.vb)
