"""The forward gradient: exact directional derivatives in random directions, by
forward-mode autodiff (Baydin, Pearlmutter, Syme, Wood & Torr 2022, "Gradients without
backpropagation", arXiv 2202.08587).

For a tangent v ~ N(0, I), the directional derivative grad L . v is exact and costs one
`jax.jvp` (the forward pass carrying one tangent alongside it), and

    E[(grad L . v) v] = E[v v^T] grad L = grad L,

so the average over K independent tangents,

    g = (1 / K) sum_k (grad L . v_k) v_k,

is an unbiased estimate of the gradient (the paper's Eq. 1 and Theorem 1, averaged over
K tangents). Its error per coordinate has variance (|grad L|^2 + (grad L)_i^2) / K, so
the error of one estimate falls like 1 / sqrt(K).

Forward mode keeps no trajectory: the tangent is pushed through each step together with
the state and then forgotten, so memory does not grow with the number of steps (unlike
BPTT, which keeps every step's residuals). Tangent k is drawn from
`jax.random.fold_in(key, k)`; tangents are never stored as a K x params array when
chunked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.flatten_util import ravel_pytree

from ..errors import ConfigError


def tangent(key: Array, index: Array, dim: int, dtype: Any) -> Array:
    """Tangent `index` (an int array): a standard normal vector of shape `(dim,)`."""
    return jax.random.normal(jax.random.fold_in(key, index), (dim,), dtype)


def forward_gradient(
    loss_fn: Callable[..., Any],
    tangents: int,
    *,
    chunk_size: int | None = None,
    has_aux: bool = False,
) -> Callable[..., tuple[Any, Any]]:
    """The forward-gradient estimator, with the shape of `jax.value_and_grad`.

    **Arguments:**

    - `loss_fn`: `loss_fn(params, *args) -> scalar` (or `(scalar, aux)` with `has_aux`);
      differentiated in forward mode only (`jax.jvp`).
    - `tangents`: K, the number of random directions per estimate (>= 1).
    - `chunk_size`: how many tangents are pushed through one vmapped forward pass; the
      chunks run one after another, so memory is about `chunk_size` times one forward
      pass with its tangent. `None` pushes all K at once.
    - `has_aux`: `loss_fn` returns `(loss, aux)`; aux is that of the forward pass.

    **Returns:** `f(params, key, *args) -> (loss, grads)` (`((loss, aux), grads)` with
    `has_aux`): `loss` is L(theta) (the jvp's primal output), `grads` a pytree like
    `params`. Cost: K forward passes with a tangent (about 1.5-3 plain forward passes
    each; the primal is shared inside a chunk).
    """
    if isinstance(tangents, bool) or not isinstance(tangents, int) or tangents < 1:
        raise ConfigError(f"forward_gradient needs an integer tangents >= 1, got {tangents!r}")
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size!r}")
    n_chunks = 1 if chunk_size is None else math.ceil(tangents / min(chunk_size, tangents))
    chunk = math.ceil(tangents / n_chunks)  # equal chunks, padding less than one per chunk

    def value_and_grad(params, key, *args):
        flat, unravel = ravel_pytree(params)

        def directional(v):
            def loss_of_flat(x):
                return loss_fn(unravel(x), *args)

            if has_aux:
                value, slope, aux = jax.jvp(loss_of_flat, (flat,), (v,), has_aux=True)
                return (value, aux), slope
            return jax.jvp(loss_of_flat, (flat,), (v,))

        def add_chunk(total, indices):
            vs = jax.vmap(lambda i: tangent(key, i, flat.shape[0], flat.dtype))(indices)
            # the primal does not depend on the tangent: vmap computes it once per chunk
            values, slopes = jax.vmap(directional)(vs)
            real = (indices < tangents).astype(flat.dtype)  # padding tangents weigh 0
            return total + (real * slopes) @ vs, jax.tree.map(lambda v: v[0], values)

        indices = jnp.arange(n_chunks * chunk).reshape(n_chunks, chunk)
        total, values = jax.lax.scan(add_chunk, jnp.zeros_like(flat), indices)
        value = jax.tree.map(lambda v: v[0], values)
        return value, unravel(total / tangents)

    return value_and_grad
