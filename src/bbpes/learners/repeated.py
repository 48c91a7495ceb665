"""Several steps of one learner per training-loop iteration, in one `lax.scan`: a curve
of thousands of small steps recorded as a history of a few hundred entries.

Each inner step is guarded on its own (`accept_update`): a non-finite inner step keeps
the state it started from and the scan goes on from there.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .base import AbstractLearner, accept_update


class Repeated(AbstractLearner):
    """`times` steps of `inner` per training-loop iteration; inner step j uses
    `fold_in(key, j)` and the same `batch`.

    Metrics: `loss`, the loss before the first inner step; `rejected`, how many inner
    steps were rejected; every other metric of `inner`, averaged over the accepted
    inner steps (NaN if none was).
    """

    inner: AbstractLearner
    times: int = eqx.field(static=True)

    def init(self, params: Any) -> Any:
        return self.inner.init(params)

    def params(self, state: Any) -> Any:
        return self.inner.params(state)

    def step(self, state: Any, key: jax.Array, *batch: Any) -> tuple[Any, dict]:
        def body(state, j):
            new, metrics = self.inner.step(state, jax.random.fold_in(key, j), *batch)
            new, ok = accept_update(state, new, metrics)
            return new, (metrics, ok)

        state, (metrics, ok) = jax.lax.scan(body, state, jnp.arange(self.times))
        accepted = jnp.sum(ok)

        def mean(v):
            total = jnp.sum(jnp.where(ok, v, 0.0))
            return jnp.where(accepted > 0, total / jnp.maximum(accepted, 1), jnp.nan)

        out = {k: v[0] if k == "loss" else mean(v) for k, v in metrics.items()}
        return state, {**out, "rejected": self.times - accepted}
