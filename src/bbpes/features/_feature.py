"""`Feature`: one eFEL feature by name, owning its definition (hard and soft), its
fallback where the hard value is undefined, and the spikes it needs. The feature files
(`spike_event`, `spike_shape`, `subthreshold`) register theirs with `@feature(...)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
from jax import Array

from ._trace import Trace

# (trace, soft) -> (value, defined): the value (finite where soft) and whether eFEL
# has one; `soft` selects the smooth readings of `soft.SoftTrace`.
Compute = Callable[[Trace, bool], tuple[Array, Array]]


@dataclass(frozen=True)
class Feature:
    """An eFEL feature: `compute(trace, soft) -> (value, defined)`.

    - `fallback(trace)`: the soft value where the hard one is undefined (finite).
    - `spikes_needed`: spikes eFEL needs for a value (counted in [stim_start, stim_end]
      if `in_stimulus`), the target of the soft form's deficit.
    - `per_spike`: reads the per-spike arrays (the hard value is NaN when a trace has
      more spikes than `max_spikes`).
    """

    name: str
    compute: Compute
    fallback: Callable[[Trace], Array]
    spikes_needed: int
    in_stimulus: bool
    per_spike: bool

    def hard(self, trace: Trace) -> Array:
        """eFEL's value, NaN where eFEL has none."""
        value, defined = self.compute(trace, False)
        if self.per_spike:
            defined = defined & trace.complete
        return jnp.where(defined, value, jnp.nan).astype(trace.v.dtype)

    def soft(self, trace: Trace) -> Array:
        """The smooth relaxation, the fallback where the hard value is undefined."""
        value, defined = self.compute(trace, True)
        return jnp.where(defined, value, self.fallback(trace)).astype(trace.v.dtype)

    def deficit(self, trace: Trace) -> Array:
        """How far the trace is from the spikes this feature needs (`SoftTrace.deficit`)."""
        return trace.deficit(self.spikes_needed, self.in_stimulus)


REGISTRY: dict[str, Feature] = {}


def feature(
    fallback: float | Callable[[Trace], Array] = 0.0,
    spikes_needed: int = 0,
    in_stimulus: bool = False,
    per_spike: bool = True,
) -> Callable[[Compute], Compute]:
    """Register `compute` under its function name (eFEL's feature name)."""

    def register(compute: Compute) -> Compute:
        fb = fallback if callable(fallback) else _constant(fallback)
        REGISTRY[compute.__name__] = Feature(
            compute.__name__, compute, fb, spikes_needed, in_stimulus, per_spike
        )
        return compute

    return register


def _constant(value: float) -> Callable[[Trace], Array]:
    return lambda trace: jnp.asarray(value, trace.v.dtype)
