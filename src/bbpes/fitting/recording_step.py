"""Finding the current step in current-clamp current traces.

`_find_step` gives the step's start and end (ms) and each sweep's amplitude and holding
current (nA) from the current traces of a recording, as described under "The step" in
the docstring of `bbpes.fitting.recordings`; `_step_window` finds the step in one trace.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

_MEDIAN_WIDTH = 5  # samples: removes noise spikes of up to 2 samples
_EDGE = 2  # samples left out at each edge of the step when taking medians
_NOISE_SIGMAS = 6.0  # how far the step must stand out of the sample noise
_STEP_JITTER = 2  # samples: how far apart the sweeps' step edges may be
_BASELINE = 5  # samples at the start of a trace that are at holding


def _find_step(current: np.ndarray, dt: float):
    """(start ms, end ms, amplitudes nA, holding nA) from current traces `(n, T)` in nA."""
    windows = [_step_window(i) for i in current]
    found = [w for w in windows if w is not None]
    if not found:
        raise ConfigError(
            "no current step found in the current traces: give "
            "step=(start_ms, end_ms, amplitudes_nA)"
        )
    ons, offs = np.array(found).T
    if np.ptp(ons) > _STEP_JITTER or np.ptp(offs) > _STEP_JITTER:
        raise ConfigError(
            f"the sweeps' steps start at {sorted(set((ons * dt).tolist()))} ms and end at "
            f"{sorted(set((offs * dt).tolist()))} ms: read them separately, or give step="
        )
    on, off = int(np.median(ons)), int(np.median(offs))
    inner = slice(on + _EDGE, off - _EDGE) if off - on > 2 * _EDGE else slice(on, off)
    amplitudes, holding = [], []
    for i in current:
        rest = np.concatenate([i[: max(on - _EDGE, 0)], i[off + _EDGE :]])
        hold = float(np.median(rest if len(rest) else i[:on]))
        holding.append(hold)
        amplitudes.append(float(np.median(i[inner])) - hold)
    return on * dt, off * dt, tuple(amplitudes), tuple(holding)


def _step_window(i: np.ndarray) -> tuple[int, int] | None:
    """(first sample, one past the last sample) of the step in one trace, or None."""
    pad = _MEDIAN_WIDTH // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(i, pad, "edge"), _MEDIAN_WIDTH)
    smooth = np.median(windows, axis=-1)
    mid = 0.5 * (smooth.min() + smooth.max())
    for _ in range(20):  # two-level split: each level is the median of its side
        low, high = smooth[smooth <= mid], smooth[smooth > mid]
        if not len(low) or not len(high):
            return None
        new = 0.5 * (np.median(low) + np.median(high))
        if new == mid:
            break
        mid = new
    hold, level = (np.median(low), np.median(high))
    # the sample noise (std) from the mean absolute residual: unlike the median absolute
    # deviation it is neither 0 nor a whole level when most samples of a digitised
    # trace repeat
    noise = 1.2533 * np.mean(np.abs(i - np.where(smooth > mid, level, hold)))
    if np.median(smooth[:_BASELINE]) > mid:  # holding is where the trace begins
        hold, level = level, hold
    if abs(level - hold) <= max(_NOISE_SIGMAS * noise, 1e-6):
        return None
    inside = (smooth - hold) * np.sign(level - hold) > 0.5 * abs(level - hold)
    edges_of_runs = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
    starts, stops = edges_of_runs[::2], edges_of_runs[1::2]
    longest = int(np.argmax(stops - starts))
    length = stops[longest] - starts[longest]
    if length < _MEDIAN_WIDTH or length < 0.5 * np.count_nonzero(inside):
        return None  # the samples far from holding are scattered: noise, not a step
    if stops[longest] == len(i):
        return None  # a drift or a step that never ends: no end time to give
    return int(starts[longest]), int(stops[longest])
