"""Evolution strategies as a gradient estimator (BBPES paper, section 2.3, Algorithm 1).

For the Gaussian-smoothed loss L_sigma(theta) = E_{eps ~ N(0, I)} L(theta + sigma eps)
(Eq. 1), the log-trick (Eqs. 2-6) gives

    grad L_sigma(theta) = E[L(theta + sigma eps) eps] / sigma
                        ~ 1 / (sigma S) sum_s L(theta + sigma eps_s) eps_s.

With mirrored (antithetic) sampling, the samples come in pairs eps, -eps (Salimans et
al. 2017), so the sum becomes sum_k (L(theta + sigma eps_k) - L(theta - sigma eps_k)) eps_k.

Noise is never stored as a samples x params array: sample s draws its noise from
`jax.random.fold_in(key, s // 2)` (or `s` without mirroring), once to evaluate the loss
and again, chunk by chunk, to form the weighted sum.

**Non-finite losses** (a perturbation whose simulation diverged) count as the worst
outcome seen: each is replaced by the largest finite loss of the population before the
gradient is formed, so the update moves away from the diverging direction and the
gradient is always finite. When no sample is finite the gradient is zero (and the
reported loss is not finite, so the training loop rejects the step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.flatten_util import ravel_pytree

Baseline = Literal["mean", "center", "none"]


def centered_ranks(losses: Array) -> Array:
    """Ranks of `losses` (shape `(S,)`) mapped linearly onto [-0.5, 0.5] (Salimans et al.)."""
    ranks = jnp.argsort(jnp.argsort(losses))
    return ranks / jnp.maximum(losses.shape[0] - 1, 1) - 0.5


def replace_nonfinite(losses: Array) -> Array:
    """Replace NaN and inf by the largest finite value (0 if none is finite)."""
    finite = jnp.isfinite(losses)
    worst = jnp.max(jnp.where(finite, losses, -jnp.inf))
    worst = jnp.where(jnp.isfinite(worst), worst, 0.0)
    return jnp.where(finite, losses, worst)


def _chunks(total: int, chunk_size: int | None) -> tuple[int, int]:
    chunk = total if chunk_size is None else max(1, min(int(chunk_size), total))
    return math.ceil(total / chunk), chunk


def sample_noise(key: Array, index: Array, dim: int, antithetic: bool, dtype: Any) -> Array:
    """Noise of sample `index` (an int array): shape `(dim,)`, mirrored in pairs if asked."""
    if antithetic:
        eps = jax.random.normal(jax.random.fold_in(key, index // 2), (dim,), dtype)
        return jnp.where(index % 2 == 0, eps, -eps)
    return jax.random.normal(jax.random.fold_in(key, index), (dim,), dtype)


def population_losses(
    loss_fn: Callable[..., Array],
    flat: Array,
    unravel: Callable[[Array], Any],
    scale: Array,
    key: Array,
    samples: int,
    antithetic: bool,
    chunk_size: int | None,
    args: tuple,
) -> Array:
    """Losses of `samples` perturbations `flat + scale * eps_s`, shape `(samples,)`.

    Evaluated `chunk_size` at a time in one vmapped batch (all at once if None); the
    chunks run one after another under `lax.map`, bounding memory by `chunk_size`.
    """
    n_chunks, chunk = _chunks(samples, chunk_size)

    def one(index):
        eps = sample_noise(key, index, flat.shape[0], antithetic, flat.dtype)
        return loss_fn(unravel(flat + scale * eps), *args)

    indices = jnp.arange(n_chunks * chunk).reshape(n_chunks, chunk)
    losses = jax.lax.map(jax.vmap(one), indices).reshape(-1)
    return losses[:samples]


def weighted_noise_sum(
    weights: Array, key: Array, dim: int, antithetic: bool, chunk_size: int | None, dtype: Any
) -> Array:
    """sum_s weights[s] eps_s, shape `(dim,)`, regenerating the noise chunk by chunk."""
    samples = weights.shape[0]
    n_chunks, chunk = _chunks(samples, chunk_size)
    padded = jnp.zeros(n_chunks * chunk, weights.dtype).at[:samples].set(weights)

    def add_chunk(total, start):
        index = start + jnp.arange(chunk)
        eps = jax.vmap(lambda i: sample_noise(key, i, dim, antithetic, dtype))(index)
        w = jax.lax.dynamic_slice(padded, (start,), (chunk,))
        return total + w @ eps, None

    starts = jnp.arange(n_chunks) * chunk
    total, _ = jax.lax.scan(add_chunk, jnp.zeros(dim, dtype), starts)
    return total


def scale_vector(sigma: float | Any, params: Any, flat: Array) -> Array:
    """`sigma` (a scalar, or a pytree of per-leaf scales like `params`) as a flat vector."""
    leaves = jax.tree.leaves(sigma)
    if len(leaves) == 1 and leaves[0] is sigma and jnp.ndim(sigma) == 0:
        return jnp.full(flat.shape, sigma, flat.dtype)
    per_leaf = jax.tree.map(
        lambda p, s: jnp.broadcast_to(jnp.asarray(s, flat.dtype), jnp.shape(p)), params, sigma
    )
    return ravel_pytree(per_leaf)[0]


def es(
    loss_fn: Callable[..., Any],
    sigma: float | Any,
    samples: int,
    *,
    antithetic: bool = True,
    rank_shaping: bool = False,
    baseline: Baseline = "mean",
    chunk_size: int | None = None,
    has_aux: bool = False,
) -> Callable[..., tuple[Any, Any]]:
    """The ES gradient estimator, with the shape of `jax.value_and_grad`.

    **Arguments:**

    - `loss_fn`: `loss_fn(params, *args) -> scalar` (or `(scalar, aux)` with `has_aux`).
      Any JAX function of a pytree of float arrays; it is never differentiated.
    - `sigma`: standard deviation of the perturbations, a float or a pytree like
      `params` (one scale per leaf, in the units of that leaf).
    - `samples`: number S of perturbed losses per estimate (even when `antithetic`).
    - `antithetic`: mirrored sampling, pairs `+eps`, `-eps` (the paper's choice).
    - `rank_shaping`: replace losses by their centered ranks in [-0.5, 0.5] before
      weighting (robust to outliers; the estimate is then a direction, not L_sigma's
      gradient).
    - `baseline`: what is subtracted from the losses when not mirrored: `"mean"` of the
      population, the `"center"` loss L(theta) (plain weight perturbation), or
      `"none"` (Eq. 6 as written). Mirrored pairs need none.
    - `chunk_size`: how many perturbations are evaluated in one vmapped batch; `None`
      evaluates all S at once. Memory is about `chunk_size` times one evaluation.
    - `has_aux`: `loss_fn` returns `(loss, aux)`; aux is taken at the unperturbed params.

    **Returns:** `f(params, key, *args) -> (loss, grads)` (`((loss, aux), grads)` with
    `has_aux`), where `loss` is L(theta) at the unperturbed params (one extra evaluation)
    and `grads` is a pytree like `params`.
    """
    if samples < 1:
        raise ValueError(f"ES needs at least one sample, got samples={samples}")
    if antithetic and samples % 2:
        raise ValueError(f"mirrored sampling needs an even number of samples, got {samples}")
    if baseline not in ("mean", "center", "none"):
        raise ValueError(f"baseline must be 'mean', 'center' or 'none', got {baseline!r}")

    def value(params, *args):
        return loss_fn(params, *args)[0] if has_aux else loss_fn(params, *args)

    def value_and_grad(params, key, *args):
        flat, unravel = ravel_pytree(params)
        scale = scale_vector(sigma, params, flat)
        center = loss_fn(params, *args)
        center_loss = center[0] if has_aux else center
        losses = population_losses(
            value, flat, unravel, scale, key, samples, antithetic, chunk_size, args
        )
        losses = replace_nonfinite(losses)
        if rank_shaping:
            weights = centered_ranks(losses)
        elif antithetic or baseline == "none":
            weights = losses
        elif baseline == "center":
            weights = losses - jnp.where(jnp.isfinite(center_loss), center_loss, jnp.mean(losses))
        else:
            weights = losses - jnp.mean(losses)
        total = weighted_noise_sum(weights, key, flat.shape[0], antithetic, chunk_size, flat.dtype)
        grads = unravel(total / (scale * samples))
        return center, grads

    return value_and_grad
