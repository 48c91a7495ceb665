"""`EfelLoss`: the hard form of `bbpes.fitting.loss.FeatureLoss` computed by the real
`efel` package on numpy traces, for simulators that are not JAX (a NEURON cell in a Ray
worker).

The same definition: each target's score is `|value - mean| / std`, where `value` is
the mean of eFEL's values of the feature in that sweep, or `penalty` (250) where eFEL
has none; the loss is the weighted mean of the scores. eFEL runs with the settings of
the `FeatureSettings` the JAX loss uses. Like the JAX form, a trace with more spikes
than `max_spikes` scores the penalty on the features read from the per-spike arrays
(`Spikecount`, `voltage_base` and the like stay exact); eFEL itself has no such limit.
On the same float64 traces the two agree to eFEL's own agreement with `bbpes.features`
(1e-12 relative; tests/blackbox/test_efel_loss.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fitting.loss import PENALTY, FeatureLoss

EFEL_NAMES = {"Spikecount": "spike_count", "Spikecount_stimint": "spike_count_stimint"}
"""bbpes's feature names that eFEL 5 renamed (the old names warn)."""


@dataclass(frozen=True)
class EfelLoss:
    """The z-scored feature distance of voltage traces, computed by eFEL.

    **Fields:**

    - `targets`: `((feature, sweep, mean, std, weight), ...)`, as the `FeatureTarget`s
      of the JAX loss.
    - `stim_start`, `stim_end`: the step (ms).
    - `dt`: the sampling step of the traces (ms); sample k is at `k * dt`.
    - `settings`: eFEL's settings, `((name, value), ...)` (`FeatureSettings.efel_settings`).
    - `max_spikes`: beyond this many spikes the `per_spike` features score `penalty`.
    - `per_spike`: the features read from per-spike arrays.
    - `penalty`: the score of a feature the trace does not produce.

    Call it on V of shape `(n_sweeps, T)` (mV) for the loss, a float.
    """

    targets: tuple[tuple[str, int, float, float, float], ...]
    stim_start: float
    stim_end: float
    dt: float
    settings: tuple[tuple[str, Any], ...] = ()
    max_spikes: int = 64
    per_spike: frozenset[str] = frozenset()
    penalty: float = PENALTY

    @classmethod
    def from_feature_loss(cls, loss: FeatureLoss) -> EfelLoss:
        """The eFEL twin of the JAX `loss` (its targets, step, settings and penalty)."""
        from ..features import is_per_spike

        return cls(
            targets=tuple((t.feature, t.sweep, t.mean, t.std, t.weight) for t in loss.targets),
            stim_start=float(loss.stim_start),
            stim_end=float(loss.stim_end),
            dt=float(loss.dt),
            settings=tuple(loss.settings.efel_settings().items()),
            max_spikes=int(loss.settings.max_spikes),
            per_spike=frozenset(n for n in loss.names if is_per_spike(n)),
            penalty=float(loss.penalty),
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t[0] for t in self.targets))

    def values(self, voltage: Any) -> dict[str, np.ndarray]:
        """eFEL's value of every feature per sweep: `{name: (n_sweeps,)}`, NaN where it
        has none (or beyond `max_spikes` for a per-spike feature)."""
        import efel

        v = np.asarray(voltage, dtype=np.float64)
        t = np.arange(v.shape[-1]) * self.dt
        traces = [
            {"T": t, "V": sweep, "stim_start": [self.stim_start], "stim_end": [self.stim_end]}
            for sweep in v
        ]
        asked = [EFEL_NAMES.get(n, n) for n in self.names]
        efel.reset()
        try:
            for key, value in self.settings:
                efel.set_setting(key, value)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = efel.get_feature_values(
                    traces, [*asked, "peak_indices"], raise_warnings=False
                )
        finally:
            efel.reset()
        out = {n: np.full(len(traces), np.nan) for n in self.names}
        for k, row in enumerate(found):
            peaks = row["peak_indices"]
            truncated = peaks is not None and len(peaks) > self.max_spikes
            for name, efel_name in zip(self.names, asked):
                x = row[efel_name]
                if x is None or len(x) == 0 or (truncated and name in self.per_spike):
                    continue
                out[name][k] = float(np.mean(x))
        return out

    def scores(self, voltage: Any) -> np.ndarray:
        """The score of each target, shape `(n_targets,)`."""
        values = self.values(voltage)
        out = np.empty(len(self.targets))
        for i, (name, sweep, mean, std, _) in enumerate(self.targets):
            score = abs(values[name][sweep] - mean) / std
            out[i] = score if np.isfinite(score) else self.penalty
        return out

    def __call__(self, voltage: Any) -> float:
        weights = np.asarray([t[4] for t in self.targets], dtype=np.float64)
        weights = weights / max(float(np.sum(weights)), 1e-30)
        return float(np.sum(self.scores(voltage) * weights))
