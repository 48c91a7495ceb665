"""A matrix with a low-rank perturbation, kept factored: W + scale A B^T.

Low-rank ES (EGGROLL, Sarkar et al. 2025, arXiv 2511.16652) perturbs a matrix leaf of
shape `(m, n)` by `sigma A B^T / sqrt(r)` with `A: (m, r)`, `B: (n, r)`. A model that
applies its matrices through `apply` evaluates a whole population of such members as
one shared product with the unperturbed `base` plus rank-r corrections: under
`jax.vmap` over the members, `base` is not batched, so `x @ base.T` is one large
matmul over members x batch.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array


class LowRank(eqx.Module):
    """`base + scale * a @ b.T`, never formed unless `dense()` is called.

    - `base`: `(m, n)`, the unperturbed matrix.
    - `a`: `(m, r)`; `b`: `(n, r)`.
    - `scale`: a scalar (sigma / sqrt(r)).
    """

    base: Array
    a: Array
    b: Array
    scale: Array

    @property
    def shape(self) -> tuple[int, ...]:
        return self.base.shape

    def dense(self) -> Array:
        """The perturbed matrix, `(m, n)`."""
        return self.base + self.scale * (self.a @ self.b.T)


def apply(w: Array | LowRank, x: Array) -> Array:
    """`x @ w.T` for `x: (..., n)` and `w: (m, n)` (a plain array or a `LowRank`): shape
    `(..., m)`. For a `LowRank`, `x @ base.T + scale (x @ b) @ a.T`, which costs
    `(m + n) r` per row instead of forming the perturbed matrix."""
    if isinstance(w, LowRank):
        return x @ w.base.T + w.scale * ((x @ w.b) @ w.a.T)
    return x @ jnp.swapaxes(w, -1, -2)


def densify(tree):
    """`tree` with every `LowRank` leaf replaced by its dense matrix."""

    return jax.tree.map(
        lambda x: x.dense() if isinstance(x, LowRank) else x,
        tree,
        is_leaf=lambda x: isinstance(x, LowRank),
    )
