"""ES with a black-box loss evaluated on a Ray cluster: the estimator of
`bbpes.estimators.es`, its population sent to a `bbpes.ray_evaluator.RayEvaluator`
(for simulators that are not JAX: Brian2, NEURON)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .estimators.es import Population, check_settings, fitness_weights, reported_loss
from .ray_evaluator import RayEvaluator


def host_losses(evaluator: RayEvaluator, everything: Any, *args: Any) -> tuple[np.ndarray, ...]:
    """The pure_callback body: split the stacked pytree into parameter sets and
    evaluate them. Returns the losses and the counts (retried, failed)."""
    leaves, treedef = jax.tree.flatten(everything)
    leaves = [np.asarray(leaf) for leaf in leaves]
    n = leaves[0].shape[0]
    population = [jax.tree.unflatten(treedef, [leaf[i] for leaf in leaves]) for i in range(n)]
    losses = evaluator.evaluate(population, tuple(np.asarray(a) for a in args))
    counts = np.asarray([evaluator.last.retried, evaluator.last.failed], np.int32)
    return losses, counts


def ray_es(
    evaluator: RayEvaluator,
    sigma: float | Any,
    samples: int,
    *,
    antithetic: bool = True,
    rank_shaping: bool = False,
    baseline: str = "mean",
    rank: int | None = None,
    has_aux: bool = False,
) -> Callable[..., tuple[Any, Any]]:
    """The ES estimator of `bbpes.estimators.es` with the population evaluated by
    `evaluator` (a black-box loss on a Ray cluster).

    `sigma`, `samples`, `antithetic`, `rank_shaping`, `baseline` and `rank` mean what
    they mean in `es` (low-rank members are sent as dense matrices); for the same key
    and a loss that agrees with the JAX one, the loss and gradient are the same. The
    S perturbed parameter sets and the centre (S + 1 x params floats) are formed at
    once and sent to the workers; the centre's loss is returned.

    **Returns:** `f(params, key, *args) -> (loss, grads)`; with `has_aux`,
    `((loss, {"retried": int, "failed": int}), grads)`, the retry counts of this
    estimate (a `GradientLearner` puts them into the history).
    Jittable (the evaluation is a `jax.pure_callback`), not differentiable.
    """
    check_settings(samples, antithetic, baseline, rank, structured=False)
    weigh = partial(
        fitness_weights, antithetic=antithetic, rank_shaping=rank_shaping, baseline=baseline
    )

    def value_and_grad(params, key, *args):
        population = Population(
            params, sigma, key, samples, antithetic=antithetic, rank=rank, table=True
        )
        indices = jnp.arange(samples)
        members = jax.vmap(population.member)(jnp.arange(samples + 1))  # the last: the centre
        shapes = (
            jax.ShapeDtypeStruct((samples + 1,), population.dtype),
            jax.ShapeDtypeStruct((2,), jnp.int32),
        )
        losses, counts = jax.pure_callback(
            partial(host_losses, evaluator), shapes, members, *args, vmap_method="sequential"
        )
        center, losses = losses[-1], losses[:-1]
        grads = population.gradient(weigh(losses, center), indices, paired=antithetic)
        loss = reported_loss(center, losses)
        if has_aux:
            return (loss, {"retried": counts[0], "failed": counts[1]}), grads
        return loss, grads

    return value_and_grad
