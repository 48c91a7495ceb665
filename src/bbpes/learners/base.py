"""The learner protocol shared by every way of training: gradient estimators with an
optax optimizer, and update rules that are not gradients (NNE, dopamine, mutation).

A learner is an immutable configuration (an equinox module); its state is an explicit
value, in the style of evosax's `init` / `ask` / `tell`:

    state = learner.init(params)
    state, metrics = learner.step(state, key, *batch)   # metrics: dict of scalars, "loss" first
    params = learner.params(state)

`step` must be a pure JAX function (it is jitted once by the training loop).
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jax import Array


class AbstractLearner(eqx.Module):
    @abc.abstractmethod
    def init(self, params: Any) -> Any:
        """The learner state that starts from `params` (a pytree of arrays)."""

    @abc.abstractmethod
    def step(self, state: Any, key: Array, *batch: Any) -> tuple[Any, dict[str, Array]]:
        """One update from the data `batch`; returns the new state and scalar metrics
        that include `"loss"` (the loss before the update)."""

    def params(self, state: Any) -> Any:
        """The model parameters held by `state`."""
        return state.params
