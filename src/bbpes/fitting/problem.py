"""A fit: a cell, the parameters of it that are fitted (bounded, transformed), a
current-clamp protocol, and a loss on the voltage it produces. Every learning signal
trains the same thing: the unconstrained vector `z` (shape `(n,)`) that
`ParameterSpace.to_values` maps into the bounds.

`Fit.forms()` gives the loss in the forms of `bbpes.signals.LossForms`: `loss`, the
hard loss (eFEL's features, the definition that scores a fit; what forward-only
signals train on), and `surrogate_loss`, the soft one (differentiable features: what
`bptt_surrogate` and guided ES's guiding gradient use). Plain `bptt` differentiates
the hard loss: piecewise constant in the features, so its gradient is zero or
meaningless except through the trace MSE, and the leaderboard shows that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..neurons.base import AbstractCell
from ..signals import LossForms
from .parameters import ParameterSpace
from .protocol import CurrentClamp, simulate, simulate_population


@dataclass(frozen=True, eq=False)  # compared by identity: `jitted` caches per fit
class Fit:
    """One fitting problem.

    - `name`: what it is called in outputs.
    - `cell`: the model, its unfitted fields at their values.
    - `space`: the fitted fields with bounds, units and transforms.
    - `protocol`: the sweeps simulated (`record_every` sets the sampling of the traces
      the loss sees; the target traces, where there are any, have the same sampling).
    - `loss`: `loss(voltage (..., n_sweeps, T), soft) -> (...)`, a `FeatureLoss`,
      `TraceMSE` or `WeightedLoss` of `bbpes.fitting.loss`.
    - `target`: the target traces `(n_sweeps, T)` (mV), for figures (and the MSE).
    - `truth`: the ground-truth values `(n,)` in the units of `space`, or None (a
      recording).
    - `notes`: for the reader of the outputs.
    """

    name: str
    cell: AbstractCell
    space: ParameterSpace
    protocol: CurrentClamp
    loss: Callable[..., Array]
    target: np.ndarray | None = None
    truth: tuple[float, ...] | None = None
    notes: str = ""
    target_seconds: float | None = None  # sweep duration of the target, if it differs
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def dt_recorded(self) -> float:
        """The sampling step of the simulated traces (ms)."""
        return self.protocol.dt * self.protocol.record_every

    def voltage(self, z: Array) -> Array:
        """The traces of the model at unconstrained `z` `(n,)`: `(n_sweeps, T)` mV."""
        return simulate(self.space.cell(self.cell, self.space.to_values(z)), self.protocol)

    def population_voltage(self, z: Array) -> Array:
        """The traces of a population `z` `(P, n)`: `(P, n_sweeps, T)` mV."""
        return simulate_population(
            self.space.cells(self.cell, self.space.to_values(z)), self.protocol
        )

    def hard_loss(self, z: Array) -> Array:
        """The loss that scores a fit (eFEL's features), a scalar, at `z` `(n,)`, plus
        the `edge_penalty` of `z`."""
        return self.loss(self.voltage(z), False) + edge_penalty(self.space, z)

    def soft_loss(self, z: Array) -> Array:
        """The differentiable counterpart of `hard_loss`."""
        return self.loss(self.voltage(z), True) + edge_penalty(self.space, z)

    def population_loss(self, z: Array) -> Array:
        """`hard_loss` of each member of `z` `(P, n)` in one program: `(P,)`."""
        return self.loss(self.population_voltage(z), False) + edge_penalty(self.space, z)

    def forms(self) -> LossForms:
        """The loss in the forms every signal of `bbpes.signals` may ask for."""
        return LossForms(loss=self.hard_loss, surrogate_loss=self.soft_loss)

    def values(self, z: Array) -> np.ndarray:
        """The parameter values (units of `space`) at `z`."""
        return np.asarray(self.space.to_values(jnp.asarray(z)), dtype=np.float64)

    def relative_errors(self, values: Any) -> np.ndarray | None:
        """`|value / truth - 1|` per parameter, or None without a ground truth."""
        if self.truth is None:
            return None
        truth = np.asarray(self.truth, dtype=np.float64)
        return np.abs(np.asarray(values, dtype=np.float64) / truth - 1.0)

    def recovered(self, values: Any, tolerance: float = 0.01) -> bool | None:
        """Whether every parameter is within `tolerance` (relative) of the truth."""
        errors = self.relative_errors(values)
        return None if errors is None else bool(np.all(errors <= tolerance))

    def initial(self, key: Array) -> Array:
        """A start drawn uniformly in the bounds (log-uniformly on log-scaled ones), as
        `z` `(n,)`: the same for every signal given the key."""
        return self.space.to_unconstrained(self.space.sample(key, ()))


EDGE = 4.6
"""|z| beyond which a logit-transformed parameter is within 1% (of its log-range, for
`loglogit`) of a bound: `logit(0.99)`."""


def edge_penalty(space, z: Array) -> Array:
    """`sum (|z_i| - EDGE)²` over the logit-transformed parameters whose `|z_i|` exceeds
    `EDGE`, shape `z.shape[:-1]`.

    A logit transform flattens towards the bounds: past `EDGE` a parameter barely moves
    with `z`, so the loss is flat there and a search that strays into that tail stays
    (CMA-ES was seen stuck at gl = 1.000000e-5, its lower bound, on 4 of 10 seeds of
    test case 1). This is the usual remedy (the bound penalty of Hansen's CMA-ES code):
    no effect inside `|z| <= EDGE`, a slope back inside beyond it."""
    mask = jnp.asarray([p.transform in ("logit", "loglogit") for p in space.parameters])
    excess = jnp.where(mask, jnp.maximum(jnp.abs(z) - EDGE, 0.0), 0.0)
    return jnp.sum(excess * excess, axis=-1)


@functools.lru_cache(maxsize=32)
def jitted(fit: Fit, what: str) -> Callable:
    """`jax.jit` of one of `fit`'s functions, made once per fit and process, so that
    its compiled program serves every later call (a resume, a report, another method):
    `"hard"` (`hard_loss`), `"hard_many"` (it vmapped over a leading axis), `"soft"`,
    `"values"` (`space.to_values`), `"voltage"`."""
    fn = {
        "hard": fit.hard_loss,
        "hard_many": jax.vmap(fit.hard_loss),
        "soft": fit.soft_loss,
        "values": fit.space.to_values,
        "voltage": fit.voltage,
    }[what]
    return jax.jit(fn)
