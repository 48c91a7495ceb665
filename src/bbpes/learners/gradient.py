"""A gradient estimator (BP, adjoint or ES) followed by an optax optimizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import Array

from .base import AbstractLearner


class GradientState(eqx.Module):
    params: Any
    opt_state: Any


class GradientLearner(AbstractLearner):
    """`estimator(params, key, *batch) -> (loss, grads)` (see `bbpes.estimators`) plus an
    optax `optimizer`. With `has_aux`, the estimator returns `((loss, aux), grads)` and
    aux (a dict of scalars) joins the metrics."""

    estimator: Callable[..., tuple[Any, Any]]
    optimizer: optax.GradientTransformation
    has_aux: bool = eqx.field(default=False, static=True)

    def init(self, params: Any) -> GradientState:
        return GradientState(params, self.optimizer.init(params))

    def step(self, state: GradientState, key: Array, *batch: Any) -> tuple[GradientState, dict]:
        value, grads = self.estimator(state.params, key, *batch)
        loss, aux = value if self.has_aux else (value, {})
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        metrics = {"loss": loss, "grad_norm": grad_norm, **aux}
        # A non-finite gradient is not applied; the training loop sees it in the metrics.
        finite = jnp.isfinite(grad_norm)
        new = jax.tree.map(
            lambda a, b: jnp.where(finite, a, b), GradientState(params, opt_state), state
        )
        return new, metrics
