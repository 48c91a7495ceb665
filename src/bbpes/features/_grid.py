"""The time grid of a feature extraction, computed once per (trace length, dt, stimulus,
settings) on the host with numpy: eFEL's resampling onto `interp_step` and every index
that depends on time only (stimulus start, the windows of `voltage_base`...).

eFEL (`LinearInterpolation` in `cppcore/Utils.cpp`) builds the new time axis by
repeated addition, `x += interp_step`, from the first sample: `np.add.accumulate`
repeats those additions in the same order, so the grid, and every "first sample at or
after t" index, is eFEL's to the last bit in float64.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from ._strided import plan
from .settings import FeatureSettings


@dataclass(frozen=True, eq=False)
class Grid:
    """Static data of one extraction. Equal (and hashed) by `key`, so one compiled program
    serves every call with the same trace length, timing and settings.

    Arrays (numpy, float64 unless said): `t` (N,) ms, the resampled times; `src` (N,)
    int, `slope_den` (N,) ms and `offset` (N,) ms: resampled sample i is
    `y[src] + (y[src + 1] - y[src]) / slope_den * offset`, eFEL's formula, except where
    `past_end` (bool, (N,)): the last raw sample itself; `plans`, the
    `_strided.StridedPlan`s of reading `src` and `src + 1` (None: a gather);
    `dt_central`
    (N,) ms, eFEL's central difference of `t` (the denominator of dV/dt).
    Indices (int): `stim_start_idx`, first sample at or after `stim_start`;
    `vb` and `ssse` and `decay`, (start, stop) of the windows of `voltage_base`,
    `steady_state_voltage_stimend` and `decay_time_constant_after_stim`.
    """

    key: tuple
    n_raw: int
    n: int
    stim_start: float
    stim_end: float
    t: np.ndarray
    src: np.ndarray
    slope_den: np.ndarray
    offset: np.ndarray
    past_end: np.ndarray
    plans: tuple
    dt_central: np.ndarray
    stim_start_idx: int
    vb: tuple[int, int]
    ssse: tuple[int, int]
    decay: tuple[int, int]

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and other.key == self.key

    def first_at_or_after(self, time: float) -> int:
        """Index of the first resampled time >= `time` (N if none): eFEL's
        `find_if(t >= time)`."""
        return int(np.searchsorted(self.t, time, side="left"))


def make_grid(
    n_raw: int,
    dt: float,
    stim_start: float,
    stim_end: float,
    settings: FeatureSettings,
    time: np.ndarray | None = None,
) -> Grid:
    """The `Grid` of traces of `n_raw` samples, sample k at `k * dt` ms (or at `time[k]`
    ms when `time`, shape `(n_raw,)`, is given). Cached."""
    if time is not None:
        time = np.asarray(time, dtype=np.float64)
        if time.shape != (n_raw,):
            raise ConfigError(f"time has shape {time.shape}, the traces have {n_raw} samples")
        digest = hashlib.sha1(time.tobytes()).hexdigest()
        return _grid_from_time(n_raw, digest, stim_start, stim_end, settings, time)
    return _grid_cached(n_raw, float(dt), float(stim_start), float(stim_end), settings)


@lru_cache(maxsize=64)
def _grid_cached(
    n_raw: int, dt: float, stim_start: float, stim_end: float, settings: FeatureSettings
) -> Grid:
    if not dt > 0:
        raise ConfigError(f"dt must be > 0 ms, got {dt}")
    return _build(
        ("dt", n_raw, dt, stim_start, stim_end, settings),
        np.arange(n_raw) * dt,
        stim_start,
        stim_end,
        settings,
    )


_TIME_GRIDS: dict[tuple, Grid] = {}


def _grid_from_time(n_raw, digest, stim_start, stim_end, settings, time) -> Grid:
    key = ("time", n_raw, digest, float(stim_start), float(stim_end), settings)
    if key not in _TIME_GRIDS:
        if np.any(np.diff(time) <= 0):
            raise ConfigError("time must be strictly increasing")
        if len(_TIME_GRIDS) > 64:
            _TIME_GRIDS.clear()
        _TIME_GRIDS[key] = _build(key, time, float(stim_start), float(stim_end), settings)
    return _TIME_GRIDS[key]


def _build(key, x: np.ndarray, stim_start, stim_end, settings: FeatureSettings) -> Grid:
    if x.shape[0] < 3:
        raise ConfigError(f"a trace needs at least 3 samples, got {x.shape[0]}")
    if not stim_end > stim_start:
        raise ConfigError(f"stim_end ({stim_end}) must be after stim_start ({stim_start})")
    step = settings.interp_step
    size = int(np.ceil((x[-1] - x[0]) / step))
    t = np.add.accumulate(np.concatenate([[x[0]], np.full(size, step)]))
    if t[size - 1] >= x[-1]:
        t = t[:size]  # eFEL appends the next point only while short of the last sample
    n = t.shape[0]
    src = np.clip(np.searchsorted(x, t, side="left") - 1, 0, x.shape[0] - 2)
    ratio = step / float(np.median(np.diff(x)))
    last = t > x[-1]  # past the last sample: eFEL takes the last sample itself
    slope_den = x[src + 1] - x[src]
    offset = t - x[src]
    dt_central = np.empty(n)
    dt_central[0] = t[1] - t[0]
    dt_central[1:-1] = (t[2:] - t[:-2]) / 2
    dt_central[-1] = t[-1] - t[-2]

    def first(time: float) -> int:
        return int(np.searchsorted(t, time, side="left"))

    vb_start = first(stim_start * settings.voltage_base_start_perc)
    vb_end_time = stim_start * settings.voltage_base_end_perc
    below = np.nonzero(t[1:] - vb_end_time < settings.precision_threshold)[0]
    vb_stop = int(below[-1]) + 2 if below.size else n
    span = stim_end - stim_start
    ssse = (first(stim_end - 0.1 * span), first(stim_end))
    decay = (
        first(stim_end + settings.decay_start_after_stim),
        first(stim_end + settings.decay_end_after_stim),
    )
    return Grid(
        key=key,
        n_raw=x.shape[0],
        n=n,
        stim_start=stim_start,
        stim_end=stim_end,
        t=t,
        src=src,
        slope_den=slope_den,
        offset=offset,
        past_end=last,
        plans=(plan(src, ratio), plan(src + 1, ratio)),
        dt_central=dt_central,
        stim_start_idx=first(stim_start),
        vb=(vb_start, vb_stop),
        ssse=ssse,
        decay=decay,
    )
