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
    optax `optimizer`. An estimator made with `has_aux=True` (`bptt`, `es`,
    `forward_gradient`, `ray_es`) returns `((loss, aux), grads)`: the learner sees the
    pair and aux (a dict of scalars) joins the metrics, so `has_aux` is said once, to
    the estimator. (`has_aux` here is optional: None reads it from the estimator's
    output; True or False must agree with it.)

    A step whose loss or gradient is non-finite (an ES population that all diverged,
    a failed ODE solve: the estimators return NaN gradients then) is rejected whole:
    the params and the optimizer state stay as they were, so Adam's moments and step
    count do not move either. Metrics: `loss`, `grad_norm` (global L2 norm), aux.
    """

    estimator: Callable[..., tuple[Any, Any]]
    optimizer: optax.GradientTransformation
    has_aux: bool | None = eqx.field(default=None, static=True)

    def init(self, params: Any) -> GradientState:
        return GradientState(params, self.optimizer.init(params))

    def step(self, state: GradientState, key: Array, *batch: Any) -> tuple[GradientState, dict]:
        value, grads = self.estimator(state.params, key, *batch)
        paired = isinstance(value, tuple)  # (loss, aux); a loss is one array
        if self.has_aux is not None and self.has_aux != paired:
            raise ValueError(
                f"GradientLearner(has_aux={self.has_aux}) but the estimator returns "
                f"{'(loss, aux)' if paired else 'a loss alone'}; leave has_aux out"
            )
        loss, aux = value if paired else (value, {})
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
        new, _ = accept_update(state, GradientState(params, opt_state), metrics)
        return new, metrics
