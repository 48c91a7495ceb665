"""A one-step probe of Metropolis mutation's mean step against the exact gradient: the
prefactor k of the mean-step law (`bbpes.learners.mutation`), fitted from a large
population of walkers at one point (the `neuroevolution-gd` experiment)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .mutation import MetropolisMutation, MutationState, gd_learning_rate, linear_mean_step


def mean_step_probe(
    loss: Callable, params0: Any, beta: float, population: int
) -> Callable[[float, jax.Array], dict[str, float]]:
    """`probe(sigma, key) -> dict`: one mutation step of `population` walkers from
    `params0`; the mean step projected on the exact gradient g gives the prefactor k in
    <dx> = -k g (finite beta, predicted beta sigma^2 / 2) or <dx> = -k g / |g| (beta =
    inf, predicted sigma / sqrt(2 pi)), with its standard error and the exact value for
    a linear loss (`linear_mean_step`). sigma is data, so one compilation serves all."""
    learner = MetropolisMutation(loss, 1.0, beta, population=population)
    flat0, _ = ravel_pytree(params0)
    grad = ravel_pytree(jax.grad(loss)(params0))[0]
    norm = jnp.linalg.norm(grad)
    direction = grad / norm if math.isinf(beta) else grad / norm**2
    base = learner.init(params0)

    @jax.jit
    def projections(population, log_sigma, key):
        state = MutationState(population, jnp.full_like(base.log_sigma, log_sigma))
        new, _ = learner.step(state, key)
        moved = jax.vmap(lambda p: ravel_pytree(p)[0])(new.params) - flat0
        return -moved @ direction

    def probe(sigma: float, key: jax.Array) -> dict[str, float]:
        p = np.asarray(projections(base.params, math.log(sigma), key), np.float64)
        linear = float(linear_mean_step(beta, sigma, norm))
        if math.isinf(beta):
            predicted = sigma / math.sqrt(2 * math.pi)
        else:
            predicted, linear = gd_learning_rate(beta, sigma), linear / float(norm)
        return {
            "fitted": float(np.mean(p)),
            "stderr": float(np.std(p) / math.sqrt(p.size)),
            "predicted": predicted,
            "linear": linear,
        }

    return probe
