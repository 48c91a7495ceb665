"""A learner whose hyperparameters are data: every value of a sweep, and every seed,
runs one compiled step (`bbpes.train.CompiledStep.serves`). Built by
`bbpes.signals.tunable_learner` for any named signal."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..errors import ConfigError
from .base import AbstractLearner


class Tunable(AbstractLearner):
    """A learner whose hyperparameters are data (`tunable_learner`).

    `make(hyper) -> learner` runs inside every `init`, `step` and `params` with `hyper`
    (a dict of scalar arrays, e.g. `{"lr": 1e-3, "sigma": 0.02}`), so the compiled step
    takes them as arguments, not constants: every value of a sweep and every seed runs
    one compiled step (`bbpes.train.CompiledStep.serves`). `with_hyper` is the same
    learner at other values; the numbers are those of the learner `make` builds.
    """

    make: Callable[[Mapping[str, Any]], AbstractLearner] = eqx.field(static=True)
    hyper: dict[str, jax.Array]

    def init(self, params: Any) -> Any:
        return self.make(self.hyper).init(params)

    def step(self, state: Any, key: jax.Array, *batch: Any) -> tuple[Any, dict]:
        return self.make(self.hyper).step(state, key, *batch)

    def params(self, state: Any) -> Any:
        return self.make(self.hyper).params(state)

    def with_hyper(self, **values: float) -> Tunable:
        """This learner at the hyperparameters `values` (others as they were)."""
        unknown = sorted(set(values) - set(self.hyper))
        if unknown:
            raise ConfigError(f"not a hyperparameter of this learner: {', '.join(unknown)}")
        new = {k: jnp.asarray(values.get(k, v), v.dtype) for k, v in self.hyper.items()}
        return Tunable(self.make, new)
