"""Backpropagation through time: autodiff through the simulation loop.

`bptt(loss_fn)` is `jax.value_and_grad` with the estimator signature. How much memory
it needs is decided by how `loss_fn` loops over time: through `jax.lax.scan` every
step's residuals are kept (memory linear in the number of steps); through
`checkpointed_scan` only segment boundaries are kept and each segment is recomputed
during the backward pass (memory ~ 2 sqrt(steps) states, one more forward pass of work).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def bptt(loss_fn: Callable[..., Any], *, has_aux: bool = False) -> Callable[..., tuple[Any, Any]]:
    """Exact gradient by reverse-mode autodiff.

    **Arguments:** `loss_fn(params, *args) -> scalar` (or `(scalar, aux)` with `has_aux`).

    **Returns:** `f(params, key, *args) -> (loss, grads)`; `key` is unused and only there
    so that every estimator has the same signature.
    """
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=has_aux)

    def estimate(params, key, *args):
        del key
        return value_and_grad(params, *args)

    return estimate


def checkpointed_scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    *,
    segment: int | None = None,
) -> tuple[Any, Any]:
    """`jax.lax.scan` whose reverse-mode memory grows like sqrt(length), not length.

    The steps are grouped in segments of `segment` steps (default ceil(sqrt(length)));
    the outer scan keeps only the carry at segment boundaries and each segment is
    rematerialised (`jax.checkpoint`) when the gradient is taken. Same signature and
    results as `jax.lax.scan(f, init, xs, length)`.
    """
    if xs is not None:
        length = jax.tree.leaves(xs)[0].shape[0]
    if length is None:
        raise ValueError("checkpointed_scan needs xs or length")
    seg = segment or max(1, math.isqrt(length - 1) + 1)
    n_seg, rest = divmod(length, seg)

    def split(tree, start, stop, shape):
        return jax.tree.map(lambda x: x[start:stop].reshape(*shape, *x.shape[1:]), tree)

    @jax.checkpoint
    def run_segment(carry, xs_seg):
        return jax.lax.scan(f, carry, xs_seg, length=seg)

    main_xs = None if xs is None else split(xs, 0, n_seg * seg, (n_seg, seg))
    carry, ys = jax.lax.scan(run_segment, init, main_xs, length=n_seg)
    ys = jax.tree.map(lambda y: y.reshape(n_seg * seg, *y.shape[2:]), ys)
    if rest:
        rest_xs = None if xs is None else split(xs, n_seg * seg, length, (rest,))
        carry, ys_rest = jax.lax.scan(f, carry, rest_xs, length=rest)
        ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ys, ys_rest)
    return carry, ys
