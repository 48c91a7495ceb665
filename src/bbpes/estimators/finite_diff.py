"""Reference estimators that only evaluate the loss: central finite differences, and
plain weight perturbation (Widrow & Lehr 1990; Jabri & Flower 1992)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .es import es


def finite_difference(
    loss_fn: Callable[..., Any], eps: float = 1e-4, *, chunk_size: int | None = None
) -> Callable[..., tuple[Any, Any]]:
    """Central differences (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps) for every
    coordinate i: 2 x (number of params) loss evaluations, `chunk_size` at a time.

    **Returns:** `f(params, key, *args) -> (loss, grads)`; `key` is unused.
    """

    def estimate(params, key, *args):
        del key
        flat, unravel = ravel_pytree(params)
        dim = flat.shape[0]
        chunk = dim if chunk_size is None else min(chunk_size, dim)

        def partial(i):
            e = jnp.zeros_like(flat).at[i].set(eps)
            return (loss_fn(unravel(flat + e), *args) - loss_fn(unravel(flat - e), *args)) / (
                2 * eps
            )

        n_chunks = -(-dim // chunk)
        index = jnp.minimum(jnp.arange(n_chunks * chunk), dim - 1).reshape(n_chunks, chunk)
        grads = jax.lax.map(jax.vmap(partial), index).reshape(-1)[:dim]
        return loss_fn(params, *args), unravel(grads)

    return estimate


def weight_perturbation(
    loss_fn: Callable[..., Any], sigma: float | Any, samples: int = 1, **kwargs: Any
) -> Callable[..., tuple[Any, Any]]:
    """Weight perturbation: g = mean_s (L(theta + sigma eps_s) - L(theta)) eps_s / sigma.

    One-sided and unmirrored: ES with `antithetic=False, baseline="center"`, so L(theta)
    is the centre member of the population (evaluated in the same batch as the S
    perturbations; S + 1 evaluations). `kwargs` go to `es` (e.g. `chunk_size`, `rank`,
    `mesh`). A non-finite L(theta) falls back to the population's mean as baseline, and
    the step reports it as non-finite (see `bbpes.estimators.es`).
    """
    return es(loss_fn, sigma, samples, antithetic=False, baseline="center", **kwargs)
