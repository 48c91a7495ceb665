"""`extract` and `extract_arrays`: eFEL's features of a batch of voltage traces, in one
compiled program (`jax.jit` of a `jax.vmap` over traces)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..errors import ConfigError
from . import spike_event, spike_shape, subthreshold  # noqa: F401  (register features)
from ._feature import REGISTRY
from ._grid import Grid, make_grid
from ._trace import Trace, resample
from .settings import FeatureSettings
from .soft import SoftTrace

DEFAULT_SETTINGS = FeatureSettings()

FEATURES: tuple[str, ...] = tuple(REGISTRY)
"""The feature names `extract` computes (eFEL's names)."""

ALIASES: dict[str, str] = {"spike_count": "Spikecount", "spike_count_stimint": "Spikecount_stimint"}
"""eFEL 5's new names of features, accepted too."""


def extract(
    voltage: Array,
    dt: float,
    stim_start: float,
    stim_end: float,
    names: str | Sequence[str],
    *,
    soft: bool = False,
    settings: FeatureSettings = DEFAULT_SETTINGS,
    temperature: float | Array = 1.0,
    time: np.ndarray | None = None,
    deficits: bool = False,
) -> dict[str, Array] | tuple[dict[str, Array], dict[str, Array]]:
    """eFEL's features of every trace in `voltage`.

    **Arguments:**

    - `voltage`: mV, shape `(..., T)`: any batch of traces, sample k at `k * dt` ms.
    - `dt`: ms, the sampling step (a Python float).
    - `stim_start`, `stim_end`: ms, the stimulus interval (Python floats).
    - `names`: feature names from `FEATURES` (eFEL's), or one name.
    - `soft`: False: eFEL's definitions (NaN where eFEL returns None); True: their
      differentiable relaxations (`bbpes.features.soft`), finite everywhere.
    - `settings`: eFEL's settings (`FeatureSettings`, eFEL's defaults).
    - `temperature`: mV, the softness of the soft form (scalar; traced, so a sweep
      reuses one compiled program); ignored by the hard form.
    - `time`: ms, shape `(T,)`, the sample times if not `k * dt` (a recording's own
      time column); a host array, fixed for the compiled program.
    - `deficits`: soft form only: also return, per feature, how far each trace is from
      the spikes the hard value needs (0 when it has them; see `SoftTrace.deficit`).

    **Returns:** `{name: values}`, each of shape `(...)` (the batch shape) and the
    dtype of `voltage`: eFEL's value, or for features eFEL returns per spike
    (`AP_amplitude`, `AHP_depth_abs`...), the mean of eFEL's array, as BluePyOpt scores
    it. With `deficits`, `(values, deficits)`, two such dicts.

    Works under `jax.jit`, `jax.vmap` and `jax.grad` (soft form).
    """
    requested = _check_names(names)
    if deficits and not soft:
        raise ConfigError("deficits=True needs soft=True: the hard form has NaN instead")
    voltage = _as_float(voltage)
    grid = make_grid(voltage.shape[-1], dt, stim_start, stim_end, settings, time)
    canonical = tuple(dict.fromkeys(ALIASES.get(n, n) for n in requested))
    batch = voltage.shape[:-1]
    values, missing = _extract(
        voltage.reshape(-1, voltage.shape[-1]),
        jnp.asarray(temperature, voltage.dtype),
        grid, canonical, soft, settings, deficits,
    )  # fmt: skip
    values = {n: values[ALIASES.get(n, n)].reshape(batch) for n in requested}
    if deficits:
        return values, {n: missing[ALIASES.get(n, n)].reshape(batch) for n in requested}
    return values


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _extract(voltage, temperature, grid: Grid, names, soft, settings, deficits):
    """The compiled program: `voltage` (B, T) -> ({name: (B,)}, {name: (B,)})."""

    def one(v):
        trace = (SoftTrace if soft else Trace)(v, grid, settings, temperature)
        values = {n: REGISTRY[n].soft(trace) if soft else REGISTRY[n].hard(trace) for n in names}
        missing = {n: REGISTRY[n].deficit(trace) for n in names} if deficits else {}
        return values, missing

    return jax.vmap(one)(resample(voltage, grid))


class SpikeArrays(NamedTuple):
    """eFEL's per-spike arrays, padded to `K = settings.max_spikes` along the last axis
    (batch shape `...` in front). Indices are samples of the resampled trace (eFEL's
    indices); entry k is meaningful for k < its count.

    - `peak_indices`, `peak_time` (ms), `peak_voltage` (mV), count `spike_count`;
      `truncated` (bool, `(...)`): more spikes than K.
    - `min_AHP_indices`, count `min_AHP_count`.
    - `AP_begin_indices`, count `AP_begin_count` (0 where eFEL raises).
    - `AP_end_indices`, count `AP_end_count`.
    - `AP_rise_indices`, `AP_fall_indices` with `half_width_valid` (bool).
    - `voltage` (mV, `(..., N)`) and `time` (ms, `(N,)`): the resampled trace.
    - `features`: `{name: (...)}`, the hard values of the features asked for.
    """

    peak_indices: Array
    peak_time: Array
    peak_voltage: Array
    spike_count: Array
    truncated: Array
    min_AHP_indices: Array
    min_AHP_count: Array
    AP_begin_indices: Array
    AP_begin_count: Array
    AP_end_indices: Array
    AP_end_count: Array
    AP_rise_indices: Array
    AP_fall_indices: Array
    half_width_valid: Array
    voltage: Array
    time: Array
    features: dict[str, Array]


def extract_arrays(
    voltage: Array,
    dt: float,
    stim_start: float,
    stim_end: float,
    names: str | Sequence[str] = (),
    *,
    settings: FeatureSettings = DEFAULT_SETTINGS,
    time: np.ndarray | None = None,
) -> SpikeArrays:
    """eFEL's per-spike arrays of every trace (arguments as `extract`), for checks
    against eFEL and for features of your own; with `names`, also those features' hard
    values (`.features`), from the same compiled program."""
    requested = _check_names(names)
    voltage = _as_float(voltage)
    grid = make_grid(voltage.shape[-1], dt, stim_start, stim_end, settings, time)
    canonical = tuple(dict.fromkeys(ALIASES.get(n, n) for n in requested))
    arrays = _arrays(voltage, grid, settings, canonical)
    return arrays._replace(features={n: arrays.features[ALIASES.get(n, n)] for n in requested})


@partial(jax.jit, static_argnums=(1, 2, 3))
def _arrays(voltage, grid: Grid, settings, names):
    batch, n_raw = voltage.shape[:-1], voltage.shape[-1]

    def one(v):
        tr = Trace(v, grid, settings, jnp.ones((), v.dtype))
        begin, n_begin, _ = tr.begin
        end, n_end = tr.end
        rise, fall, valid = tr.half_width
        features = {n: REGISTRY[n].hard(tr) for n in names}
        return (
            tr.peaks.index, tr.peak_time, tr.peak_voltage, tr.peaks.count,
            tr.peaks.truncated, tr.ahp.index, tr.ahp.count, begin, n_begin, end, n_end,
            rise, fall, valid, tr.v,
        ), features  # fmt: skip

    out, features = jax.vmap(one)(resample(voltage.reshape(-1, n_raw), grid))
    out = [x.reshape(batch + x.shape[1:]) for x in out]
    features = {k: x.reshape(batch) for k, x in features.items()}
    return SpikeArrays(*out, jnp.asarray(grid.t, voltage.dtype), features)


def _check_names(names: str | Sequence[str]) -> tuple[str, ...]:
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in REGISTRY and n not in ALIASES]
    if unknown:
        raise ConfigError(
            f"unknown feature(s) {unknown}; bbpes.features computes {', '.join(FEATURES)}"
        )
    return names


def _as_float(voltage) -> Array:
    voltage = jnp.asarray(voltage)
    if not jnp.issubdtype(voltage.dtype, jnp.floating):
        voltage = voltage.astype(float)
    if voltage.ndim < 1:
        raise ConfigError("voltage must have a time axis, shape (..., T)")
    return voltage


def is_per_spike(name: str) -> bool:
    """Whether the feature `name` (or an alias) is read from the per-spike arrays, so
    undefined for a trace with more than `max_spikes` spikes."""
    return REGISTRY[ALIASES.get(name, name)].per_spike
