"""Backpropagation through time: autodiff through the simulation loop.

`bptt(loss_fn)` is `jax.value_and_grad` with the estimator signature. How much memory
it needs is decided by how `loss_fn` loops over time: through `jax.lax.scan` every
step's residuals are kept (memory linear in the number of steps); through
`checkpointed_scan` only segment boundaries are kept and each segment is recomputed
during the backward pass (memory ~ 2 sqrt(steps) states, one more forward pass of work);
through `truncated_scan` the gradient flows only through the last `keep` steps (truncated
BPTT: a biased surrogate gradient whose memory grows with `keep`, not with the steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ..errors import ConfigError


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


_TRUNCATING = [0]
"""How many `truncated_scan` bodies are being traced right now (a trace-time counter):
a `truncated_scan` called inside another one's body is a plain `lax.scan`."""


def truncated_scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    *,
    keep: int,
) -> tuple[Any, Any]:
    """`jax.lax.scan` whose reverse-mode gradient flows only through its last `keep`
    steps: truncated backpropagation through time (Williams & Peng 1990), a biased but
    bounded-memory surrogate gradient.

    The first `length - keep` steps run as a plain scan whose results (the carry that
    enters the last `keep` steps and their `ys`) are `lax.stop_gradient`-ed; the last
    `keep` steps are a plain scan that reverse mode differentiates as usual. So the
    gradient is that of the last `keep` steps with their entering carry held fixed, and
    reverse-mode memory grows with `keep`, not with `length`. Forward values are those
    of `jax.lax.scan` exactly; `keep >= length` is `jax.lax.scan` (the full gradient).

    **Nesting:** only the outermost `truncated_scan` truncates. One called inside its
    body is a plain `jax.lax.scan`, so a model that passes the same `scan` to an outer
    and an inner loop (`bbpes.models.bnn.RecurrentNetwork.run`: input slots x steps per
    slot) is truncated in the outer loop's steps (the last `keep` input slots, each
    differentiated through all of its steps).

    **Arguments:** as `jax.lax.scan(f, init, xs, length)`; `keep` (>= 1) the number of
    final steps the gradient flows through.

    **Returns:** `(carry, ys)` as `jax.lax.scan`.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"truncated_scan needs an integer keep >= 1, got {keep!r}")
    if xs is not None:
        length = jax.tree.leaves(xs)[0].shape[0]
    if length is None:
        raise ValueError("truncated_scan needs xs or length")
    if _TRUNCATING[0]:
        return jax.lax.scan(f, init, xs, length=length)
    _TRUNCATING[0] += 1  # while f is traced, so that scans inside it stay whole
    try:
        if keep >= length:
            return jax.lax.scan(f, init, xs, length=length)
        cut = length - keep
        head_xs = None if xs is None else jax.tree.map(lambda x: x[:cut], xs)
        tail_xs = None if xs is None else jax.tree.map(lambda x: x[cut:], xs)
        head = jax.lax.stop_gradient(jax.lax.scan(f, init, head_xs, length=cut))
        carry, ys_tail = jax.lax.scan(f, head[0], tail_xs, length=keep)
    finally:
        _TRUNCATING[0] -= 1
    ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), head[1], ys_tail)
    return carry, ys
