"""The learner protocol shared by every way of training: gradient estimators with an
optax optimizer, and update rules that are not gradients (NNE, dopamine, mutation).

A learner is an immutable configuration (an equinox module); its state is an explicit
value, in the style of evosax's `init` / `ask` / `tell`:

    state = learner.init(params)
    state, metrics = learner.step(state, key, *batch)   # metrics: dict of scalars, "loss" first
    params = learner.params(state)

`step` must be a pure JAX function (the training loop jits it, with the learner as an
argument, so one compilation serves every call with the same learner).

A step fails when it produces a non-finite value: `accept_update` is the one rule that
decides it and, for a failed step, keeps the whole previous state (parameters and the
optimizer's or the rule's own state alike), so that a diverging step never moves
anything. The training loop applies it to every step; learners made of several
learners (`Ensemble`, `Repeated`) apply it to each member or inner step.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

GUARDED_METRICS = ("loss", "grad_norm")
"""The metrics that must be finite for a step to be accepted (where a learner reports them)."""


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


def finite_tree(tree: Any) -> Array:
    """True (a scalar bool array) when every inexact array leaf of `tree` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if eqx.is_inexact_array(x)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def accept_update(state: Any, new: Any, metrics: dict[str, Array]) -> tuple[Any, Array]:
    """`(new, True)` when the step from `state` to `new` is finite, else `(state, False)`.

    Finite means: every inexact array of `new` (parameters, optimizer moments, step
    sizes...) and the `GUARDED_METRICS` that `metrics` holds (`loss`, `grad_norm`).
    A rejected step returns `state` itself, bit for bit. Works under `jax.vmap` (one
    decision per member) and `jax.lax.scan`."""
    ok = finite_tree(new)
    for name in GUARDED_METRICS:
        if name in metrics:
            ok = ok & jnp.all(jnp.isfinite(metrics[name]))
    kept = jax.tree.map(lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, state)
    return kept, ok
