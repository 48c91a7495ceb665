"""A gradient estimator (BP, adjoint or ES) followed by an optax optimizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import optax
from jax import Array

from .base import AbstractLearner, accept_update


class GradientState(eqx.Module):
    params: Any  # pytree, the model parameters
    opt_state: Any  # the optax optimizer's state (moments, step count...)


class GradientLearner(AbstractLearner):
    """`estimator(params, key, *batch) -> (loss, grads)` (see `bbpes.estimators`) plus an
    optax `optimizer`. With `has_aux`, the estimator returns `((loss, aux), grads)` and
    aux (a dict of scalars) joins the metrics.

    A step whose loss or gradient is non-finite (an ES population that all diverged,
    a failed ODE solve: the estimators return NaN gradients then) is rejected whole:
    the params and the optimizer state stay as they were, so Adam's moments and step
    count do not move either. Metrics: `loss`, `grad_norm` (global L2 norm), aux.
    """

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
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
        new, _ = accept_update(state, GradientState(params, opt_state), metrics)
        return new, metrics
