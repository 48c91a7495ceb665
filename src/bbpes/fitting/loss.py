"""The losses of a fit: BluePyOpt's z-scored feature distance, the trace MSE, and
weighted sums of them, each in a hard form (the definition: what scores a fit and what
forward-only signals train on) and a soft form (differentiable, for backprop signals).

A loss takes the voltage a population of models produced under a protocol, shape
`(..., n_sweeps, T)` in mV (sample k at `k * dt` ms), and returns one number per model,
shape `(...)`.

The feature distance is that of eFEL's `get_distance`, which BluePyOpt's `eFELFeature`
scores with: `|value - mean| / std`, and a feature the trace does not produce (no
spike, one spike for an ISI) scores the fixed `penalty` (eFEL's and BluePyOpt's 250).
For a feature whose value is an array (one entry per spike), the value here is the
array's mean (`bbpes.features.extract`, as BluePyOpt's `calculate_feature` reports
it); eFEL's `get_distance` averages `|entry - mean|` over the entries instead, which
is larger when the entries spread. Both are 0 at a perfect fit. BluePyOpt's
single objective is the weighted sum of these scores; `FeatureLoss` returns their
weighted mean (the sum divided by the total weight), so that losses of fits with
different feature sets read on one scale: a fit at one standard deviation on every
feature scores 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import jax.numpy as jnp
from jax import Array

from ..errors import ConfigError
from ..features import FEATURES, FeatureSettings, extract

PENALTY = 250.0
"""The score of a feature the trace cannot produce (eFEL's `error_dist`, BluePyOpt's
`max_score`)."""


@dataclass(frozen=True)
class FeatureTarget:
    """One feature of one sweep, as a recording gives it: its `mean` and `std` (in the
    feature's unit: ms, mV, Hz, a count), and the weight of its score in the loss."""

    feature: str
    sweep: int
    mean: float
    std: float
    weight: float = 1.0

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise ConfigError(f"unknown feature {self.feature!r} (known: {', '.join(FEATURES)})")
        if not (self.std > 0 and self.std == self.std and self.std != float("inf")):
            raise ConfigError(f"feature {self.feature} of sweep {self.sweep}: std must be > 0")
        if not (self.mean == self.mean and abs(self.mean) != float("inf")):
            raise ConfigError(
                f"feature {self.feature} of sweep {self.sweep}: the target has no value "
                "(the recording does not produce it)"
            )
        if self.weight < 0:
            raise ConfigError(f"feature {self.feature}: weight must be >= 0")


def _smooth_abs(x: Array, eps: float = 1e-2) -> Array:
    """|x|, smoothed at 0 (sqrt(x² + eps²) - eps) so that its gradient is defined there."""
    return jnp.sqrt(x * x + eps * eps) - eps


@dataclass(frozen=True)
class FeatureLoss:
    """The weighted mean of the eFEL distances of `targets`.

    - `targets`: the features scored, each of one sweep.
    - `stim_start`, `stim_end`: the step (ms), the same in every sweep.
    - `dt`: the sampling step of the voltage (ms).
    - `settings`: eFEL's settings (threshold, interpolation step...).
    - `penalty`: the score of a feature the trace does not produce.
    - `temperature`: the soft form's smoothing (mV; `bbpes.features.extract`).
    """

    targets: tuple[FeatureTarget, ...]
    stim_start: float
    stim_end: float
    dt: float
    settings: FeatureSettings = field(default_factory=FeatureSettings)
    penalty: float = PENALTY
    temperature: float = 1.0
    soft_means: tuple[float, ...] | None = None

    def __post_init__(self):
        if not self.targets:
            raise ConfigError("a feature loss needs at least one feature target")
        if self.soft_means is not None and len(self.soft_means) != len(self.targets):
            raise ConfigError("soft_means needs one value per feature target")

    def with_soft_targets(self, target_voltage: Array) -> FeatureLoss:
        """This loss with the soft form's targets taken from the soft features of the
        target traces `(n_sweeps, T)` themselves, so that the soft loss is 0 where the
        traces match (the soft features differ from the hard ones by their smoothing)."""
        values = extract(
            jnp.asarray(target_voltage),
            self.dt,
            self.stim_start,
            self.stim_end,
            self.names,
            soft=True,
            settings=self.settings,
            temperature=self.temperature,
        )
        means = tuple(float(values[t.feature][t.sweep]) for t in self.targets)
        return dataclasses.replace(self, soft_means=means)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.feature for t in self.targets))

    def _weights(self) -> Array:
        w = jnp.asarray([t.weight for t in self.targets])
        return w / jnp.maximum(jnp.sum(w), 1e-30)

    def scores(self, voltage: Array) -> Array:
        """The distance of each target, shape `(..., n_targets)` (hard form)."""
        values = extract(
            voltage, self.dt, self.stim_start, self.stim_end, self.names, settings=self.settings
        )
        out = []
        for t in self.targets:
            score = jnp.abs(values[t.feature][..., t.sweep] - t.mean) / t.std
            out.append(jnp.where(jnp.isfinite(score), score, self.penalty))
        return jnp.stack(out, axis=-1)

    def soft_scores(self, voltage: Array) -> Array:
        """A differentiable counterpart of `scores`: the smoothed `|value - mean| / std`
        of each feature's soft value (`bbpes.features.extract(..., soft=True)`), which is
        finite everywhere, capped smoothly at `penalty`; `mean` is the target's soft
        value where `soft_means` gives one (`with_soft_targets`)."""
        values = extract(
            voltage,
            self.dt,
            self.stim_start,
            self.stim_end,
            self.names,
            soft=True,
            settings=self.settings,
            temperature=self.temperature,
        )
        means = self.soft_means or tuple(t.mean for t in self.targets)
        out = []
        for t, mean in zip(self.targets, means):
            z = _smooth_abs((values[t.feature][..., t.sweep] - mean) / t.std)
            out.append(self.penalty * jnp.tanh(z / self.penalty))
        return jnp.stack(out, axis=-1)

    def __call__(self, voltage: Array, soft: bool = False) -> Array:
        scores = self.soft_scores(voltage) if soft else self.scores(voltage)
        return jnp.sum(scores * self._weights(), axis=-1)


@dataclass(frozen=True)
class TraceMSE:
    """The mean squared difference (mV²) between the voltage and a target trace of the
    same shape `(n_sweeps, T)`; `scale` (mV) divides the difference first, so that
    `TraceMSE(scale=s)` reads in units of s²."""

    target: Array
    scale: float = 1.0

    def __call__(self, voltage: Array, soft: bool = False) -> Array:
        target = jnp.asarray(self.target, voltage.dtype)
        if voltage.shape[-2:] != target.shape:
            raise ConfigError(
                f"trace MSE: the model's traces {voltage.shape[-2:]} and the target's "
                f"{target.shape} differ in shape (sweeps, samples)"
            )
        return jnp.mean(jnp.square((voltage - target) / self.scale), axis=(-2, -1))


@dataclass(frozen=True)
class WeightedLoss:
    """`sum_k weights[k] * terms[k](voltage)`: e.g. features and a trace MSE together."""

    terms: tuple[FeatureLoss | TraceMSE, ...]
    weights: tuple[float, ...]

    def __post_init__(self):
        if len(self.terms) != len(self.weights) or not self.terms:
            raise ConfigError("a weighted loss needs one weight per term, at least one term")

    def __call__(self, voltage: Array, soft: bool = False) -> Array:
        return sum(w * term(voltage, soft) for term, w in zip(self.terms, self.weights))


def feature_targets(
    values: dict[str, Array],
    *,
    relative_std: float = 0.05,
    floors: dict[str, float] | None = None,
    sweeps: Sequence[int] | None = None,
) -> tuple[FeatureTarget, ...]:
    """Targets from the feature values of a reference (a ground-truth simulation, one
    recording per sweep): `values[name]` of shape `(n_sweeps,)`, NaN where the sweep does
    not produce the feature (left out). The std of each is `relative_std * |mean|`, at
    least the feature's floor (`floors`, default `STD_FLOORS`), and 1 mV for absolute
    voltages (`ABSOLUTE_STD`): what a fit without recorded repeats takes as its
    tolerance."""
    floors = {**STD_FLOORS, **(floors or {})}
    out = []
    for name, v in values.items():
        v = [float(x) for x in jnp.atleast_1d(v)]
        for k, x in enumerate(v):
            if sweeps is not None and k not in sweeps:
                continue
            if x == x:
                std = ABSOLUTE_STD.get(name) or max(relative_std * abs(x), floors.get(name, 1e-3))
                out.append(FeatureTarget(name, k, x, std))
    return tuple(out)


ABSOLUTE_STD = {
    "voltage_base": 1.0,
    "steady_state_voltage_stimend": 1.0,
    "AHP_depth_abs": 1.0,
}
"""mV: the std of the features that are absolute voltages. A std relative to the value
would measure them from 0 mV, an arbitrary origin (5% of a -65 mV rest is 3 mV, which
let fits with the resting potential 7 mV off score under 2.5); 1 mV is a recording's
typical spread from repeat to repeat."""


STD_FLOORS = {
    "Spikecount": 0.5,
    "mean_frequency": 0.5,
    "time_to_first_spike": 0.5,
    "AP_amplitude": 0.5,
    "AP_height": 0.5,
    "AP_width": 0.05,
    "AP_duration_half_width": 0.05,
    "AHP_depth_abs": 0.5,
    "ISI_CV": 0.01,
    "inv_first_ISI": 0.5,
    "voltage_base": 0.5,
    "steady_state_voltage_stimend": 0.5,
}
"""The smallest std of a ground-truth target, per feature (its unit): half a spike,
half a ms, half a mV, half a Hz; 0.05 ms for widths."""
