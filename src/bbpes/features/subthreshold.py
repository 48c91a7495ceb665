"""Subthreshold features (eFEL's `cppcore/Subthreshold.cpp`): averages and a fit over
windows fixed by the stimulus times. Already differentiable: the soft form is the hard
one. Voltages in mV, times in ms.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._feature import feature
from ._trace import Trace


def _first_sample(tr: Trace):
    return tr.v[0]


@feature(fallback=_first_sample, per_spike=False)
def voltage_base(tr: Trace, soft: bool):
    """Mean (or median, `voltage_base_mode`) voltage from `voltage_base_start_perc *
    stim_start` to `voltage_base_end_perc * stim_start` (default the last 10% before
    the stimulus). Undefined (soft: the first sample) when that window holds no
    sample."""
    start, stop = tr.grid.vb
    return tr.voltage_base, jnp.array(stop > start)


@feature(fallback=_first_sample, per_spike=False)
def steady_state_voltage_stimend(tr: Trace, soft: bool):
    """Mean voltage over the last 10% of the stimulus, [stim_end - 0.1 (stim_end -
    stim_start), stim_end). Undefined (soft: the first sample) when empty."""
    start, stop = tr.grid.ssse
    return tr.window_mean(tr.grid.ssse), jnp.array(stop > start)


@feature(per_spike=False)
def decay_time_constant_after_stim(tr: Trace, soft: bool):
    """|1 / slope| of a straight-line fit of log|v - v(stim_start)| against time over
    [stim_end + decay_start_after_stim, stim_end + decay_end_after_stim) (ms).
    The fit is centred (the same slope as eFEL's sums, without their cancellation in
    float32). Undefined (soft: 0) when that window is empty."""
    g = tr.grid
    start, stop = g.decay
    if stop <= start or g.stim_start_idx >= g.n:
        return jnp.zeros((), tr.v.dtype), jnp.array(False)
    x = g.t[start:stop] - np.mean(g.t[start:stop])
    y = jnp.log(jnp.abs(tr.v[start:stop] - tr.v[g.stim_start_idx]))
    y = y - jnp.mean(y)
    denom = float(np.sum(x * x))
    if denom == 0.0:
        return jnp.zeros((), tr.v.dtype), jnp.array(False)
    slope = jnp.sum(jnp.asarray(x, tr.v.dtype) * y) / denom
    return jnp.abs(1.0 / slope), jnp.array(True)
