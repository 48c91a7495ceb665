"""Neuroevolution by conditioned stochastic mutation: a population of independent
Metropolis walkers on the weights, and the gradient-descent rule their mean obeys.

One step of one individual (Whitelam et al., "Correspondence between neuroevolution and
gradient descent"): propose x' = x + e with e ~ N(0, sigma^2 I) on every parameter at
once, and accept it with the Metropolis probability

    p = min(1, exp(-beta (L(x') - L(x))));

beta = inf accepts exactly the proposals that do not increase the loss. For small sigma
the mean step is a gradient step (derivation in docs/neuroevolution.md):

    finite beta:  <dx> = -(beta sigma^2 / 2) grad L        (+ white noise, variance sigma^2)
    beta = inf:   <dx> = -(sigma / sqrt(2 pi)) grad L / |grad L|

`corresponding_optimizer(beta, sigma)` is the optax rule with that mean step, and
`linear_mean_step` the exact mean step on a linear loss, which joins the two laws.

A population of R independent individuals is one learner state (every params leaf
carries a leading axis R) and one vmapped step, so averaging over realisations costs a
batch dimension, not a Python loop.

**Adaptive variant** (`adaptive=True`): each parameter group (one array leaf of the
params pytree, e.g. a weight matrix or a bias vector) has its own scale sigma_g. The
move is still one joint proposal on all parameters; in the same vmapped call each group
is also probed alone (x + e restricted to the group) and its Metropolis acceptance
probability a_g drives log sigma_g += adapt_rate (a_g - target_acceptance), a
Robbins-Monro rule in the spirit of adaptive Metropolis-within-Gibbs (Roberts &
Rosenthal 2009). It costs one more loss evaluation per group and step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.flatten_util import ravel_pytree

from .base import AbstractLearner


def corresponding_optimizer(beta: float, sigma: float) -> optax.GradientTransformation:
    """The gradient-descent rule whose step is the small-sigma mean mutation step.

    Finite `beta`: `optax.sgd(beta sigma^2 / 2)`; `beta = inf`: normalised gradient descent,
    the gradient divided by its global norm, then `optax.sgd(sigma / sqrt(2 pi))`.
    """
    if math.isinf(beta):
        return optax.chain(
            optax.normalize_by_update_norm(eps=0.0), optax.sgd(sigma / math.sqrt(2 * math.pi))
        )
    return optax.sgd(gd_learning_rate(beta, sigma))


def gd_learning_rate(beta: float, sigma: float) -> float:
    """beta sigma^2 / 2: the learning rate of the finite-beta law (loss^-1 x params^2)."""
    return beta * sigma**2 / 2


def linear_mean_step(beta: Array, sigma: Array, grad_norm: Array) -> Array:
    """|<dx>| for a linear loss L = g.x with |g| = `grad_norm`; <dx> points along -g.

    With z = beta sigma |g|, the exact value is beta sigma^2 |g| exp(z^2 / 2) Phi(-z)
    (Phi: the standard normal CDF): beta sigma^2 |g| / 2 for z << 1 (the finite-beta law)
    and sigma / sqrt(2 pi) for z >> 1 (the beta = inf law), a clipped gradient step.
    """
    z = beta * sigma * grad_norm
    tail = jnp.exp(0.5 * z**2 + jax.scipy.special.log_ndtr(-z))  # exp(z^2/2) Phi(-z)
    finite = jnp.isfinite(z)
    safe = jnp.where(finite, z * tail, 0.0)
    return jnp.where(finite, sigma * safe, sigma / math.sqrt(2 * math.pi))


def linear_acceptance(beta: Array, sigma: Array, grad_norm: Array) -> Array:
    """Acceptance rate on a linear loss: 1/2 + exp(z^2 / 2) Phi(-z), z = beta sigma |g|."""
    z = beta * sigma * grad_norm
    tail = jnp.exp(0.5 * z**2 + jax.scipy.special.log_ndtr(-z))
    return jnp.where(jnp.isfinite(z), 0.5 + tail, 0.5)


def acceptance_probability(beta: Array, delta_loss: Array) -> Array:
    """min(1, exp(-beta dL)); 0 for a non-finite dL. Written so that beta = inf and
    dL = 0 give 1 (not inf * 0 = nan)."""
    raised = jnp.where(delta_loss > 0, jnp.exp(-beta * jnp.maximum(delta_loss, 0.0)), 1.0)
    return jnp.where(jnp.isfinite(delta_loss), raised, 0.0)


class MutationState(eqx.Module):
    params: Any  # pytree; every leaf has shape (R, *leaf shape)
    log_sigma: Array  # (R, G): log mutation scale per individual and parameter group


class MetropolisMutation(AbstractLearner):
    """R independent Metropolis mutation walkers, stepped in one vmapped call.

    **Arguments:**

    - `loss_fn(params, *batch) -> scalar`: the loss of one network (unbatched params).
    - `sigma`: initial (for `adaptive`, else fixed) mutation scale, in parameter units.
    - `beta`: inverse temperature (loss^-1); `inf` accepts only non-increasing moves.
    - `population`: R, the number of independent individuals.
    - `adaptive`, `target_acceptance`, `adapt_rate`, `sigma_min`, `sigma_max`: the
      adaptive variant (see the module docstring); sigma_g stays in [sigma_min, sigma_max].

    `init(params)` copies one network's params to all R individuals; `params(state)`
    returns the population (leading axis R). `step` reports the mean loss over the
    population before the move (`loss`), its spread (`loss_std`, `loss_min`,
    `loss_max`), the fraction of individuals that moved (`acceptance`), and the mean
    mutation scale (`sigma`).
    """

    loss_fn: Callable[..., Array]
    sigma: float
    beta: float = math.inf
    population: int = eqx.field(default=1, static=True)
    adaptive: bool = eqx.field(default=False, static=True)
    target_acceptance: float = 0.25
    adapt_rate: float = 0.05
    sigma_min: float = 1e-8
    sigma_max: float = 10.0

    def init(self, params: Any) -> MutationState:
        population = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (self.population, *jnp.shape(x))), params
        )
        return self.init_population(population)

    def init_population(self, population: Any) -> MutationState:
        """The state of individuals already stacked along a leading axis R."""
        groups = len(jax.tree.leaves(population))
        dtype = jnp.result_type(*jax.tree.leaves(population))
        log_sigma = jnp.full((self.population, groups), math.log(self.sigma), dtype)
        return MutationState(population, log_sigma)

    def step(self, state: MutationState, key: Array, *batch: Any) -> tuple[MutationState, dict]:
        example = jax.tree.map(lambda x: x[0], state.params)
        flat, unravel = ravel_pytree(example)
        sizes = [jnp.size(x) for x in jax.tree.leaves(example)]
        group_of = jnp.asarray(np.repeat(np.arange(len(sizes)), sizes))  # (D,) group index
        # One draw for the whole population: far cheaper to compile than a key per walker.
        key_noise, key_accept = jax.random.split(key)
        noise = jax.random.normal(key_noise, (self.population, flat.size), flat.dtype)
        noise = noise * jnp.exp(state.log_sigma)[:, group_of]
        uniform = jax.random.uniform(key_accept, (self.population,), flat.dtype)

        def walker(params, noise, uniform, log_sigma):
            x = ravel_pytree(params)[0]
            loss = self.loss_fn(params, *batch)
            delta = self.loss_fn(unravel(x + noise), *batch) - loss
            accept = uniform < acceptance_probability(self.beta, delta)
            if self.adaptive:
                log_sigma = self._adapted(x, noise, unravel, group_of, loss, log_sigma, batch)
            return unravel(jnp.where(accept, x + noise, x)), log_sigma, loss, accept

        params, log_sigma, loss, accepted = jax.vmap(walker)(
            state.params, noise, uniform, state.log_sigma
        )
        # statistics of the walkers whose loss is finite: one walker on a diverging batch
        # must not make the whole population's step look non-finite (the loop would
        # reject every walker's move); `nonfinite_walkers` counts the others
        finite = jnp.isfinite(loss)
        count = jnp.sum(finite)
        mean = jnp.sum(jnp.where(finite, loss, 0.0)) / jnp.maximum(count, 1)
        metrics = {
            "loss": jnp.where(count > 0, mean, jnp.inf),
            "loss_std": jnp.sqrt(
                jnp.sum(jnp.where(finite, (loss - mean) ** 2, 0.0)) / jnp.maximum(count, 1)
            ),
            "loss_min": jnp.min(jnp.where(finite, loss, jnp.inf)),
            "loss_max": jnp.max(jnp.where(finite, loss, -jnp.inf)),
            "nonfinite_walkers": jnp.sum(~finite),
            "acceptance": jnp.mean(accepted),
            "sigma": jnp.mean(jnp.exp(log_sigma)),
        }
        return MutationState(params, log_sigma), metrics

    def _adapted(self, x, noise, unravel, group_of, loss, log_sigma, batch):
        """log sigma_g moved by adapt_rate (a_g - target), a_g from a probe of group g alone."""

        def probe(group):
            moved = x + jnp.where(group_of == group, noise, 0.0)
            return acceptance_probability(self.beta, self.loss_fn(unravel(moved), *batch) - loss)

        rates = jax.vmap(probe)(jnp.arange(log_sigma.shape[0]))
        log_sigma = log_sigma + self.adapt_rate * (rates - self.target_acceptance)
        return jnp.clip(log_sigma, math.log(self.sigma_min), math.log(self.sigma_max))
