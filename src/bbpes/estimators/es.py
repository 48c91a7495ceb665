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
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

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


def _chunked(indices: Array, chunk_size: int | None) -> tuple[Array, Array]:
    """`indices` (shape `(n,)`) padded and reshaped to `(n_chunks, chunk)`, and the mask
    of real (not padding) entries in the same shape. As few chunks as `chunk_size`
    allows, of equal size, so the padding is less than one per chunk (50 in chunks of
    at most 20: 3 of 17, not 3 of 20)."""
    n = indices.shape[0]
    n_chunks = 1 if chunk_size is None else math.ceil(n / max(1, min(int(chunk_size), n)))
    chunk = math.ceil(n / n_chunks)
    padded = n_chunks * chunk
    valid = jnp.arange(padded) < n
    indices = jnp.concatenate([indices, jnp.full(padded - n, indices[-1], indices.dtype)])
    return indices.reshape(-1, chunk), valid.reshape(-1, chunk)


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
    indices: Array,
    antithetic: bool,
    chunk_size: int | None,
    args: tuple,
) -> Array:
    """Losses of the perturbations `flat + scale * eps_s` for the sample indices
    `indices` (shape `(n,)`), returned with shape `(n,)`.

    Evaluated `chunk_size` at a time in one vmapped batch (all at once if None); the
    chunks run one after another under `lax.map`, bounding memory by `chunk_size`.
    """

    def one(index):
        eps = sample_noise(key, index, flat.shape[0], antithetic, flat.dtype)
        return loss_fn(unravel(flat + scale * eps), *args)

    chunks, _ = _chunked(indices, chunk_size)
    return jax.lax.map(jax.vmap(one), chunks).reshape(-1)[: indices.shape[0]]


def weighted_noise_sum(
    weights: Array,
    key: Array,
    indices: Array,
    dim: int,
    antithetic: bool,
    chunk_size: int | None,
    dtype: Any,
) -> Array:
    """sum_s weights[s] eps_{indices[s]}, shape `(dim,)`, regenerating the noise chunk
    by chunk (never more than `chunk_size x dim` of it at once)."""
    chunks, valid = _chunked(indices, chunk_size)
    padded_weights = jnp.zeros(valid.size, weights.dtype).at[: weights.shape[0]].set(weights)

    def add_chunk(total, chunk):
        index, w = chunk
        eps = jax.vmap(lambda i: sample_noise(key, i, dim, antithetic, dtype))(index)
        return total + w @ eps, None

    total, _ = jax.lax.scan(
        add_chunk, jnp.zeros(dim, dtype), (chunks, padded_weights.reshape(chunks.shape))
    )
    return total


def fitness_weights(
    losses: Array, center_loss: Array, *, antithetic: bool, rank_shaping: bool, baseline: str
) -> Array:
    """What multiplies each sample's noise: the losses (non-finite ones replaced by the
    worst finite loss), ranked and/or minus a baseline as configured. Shape `(S,)`."""
    losses = replace_nonfinite(losses)
    if rank_shaping:
        return centered_ranks(losses)
    if antithetic or baseline == "none":
        return losses
    if baseline == "center":
        return losses - jnp.where(jnp.isfinite(center_loss), center_loss, jnp.mean(losses))
    return losses - jnp.mean(losses)


def sharded_sum(local_sum: Callable[..., Array], indices: Array, mesh: Mesh) -> Array:
    """`local_sum` over the sample `indices` split along the mesh's one axis: every
    device evaluates its own samples, the (small) vector of losses is gathered so that
    every device forms the same fitness weights, and the partial noise sums are added."""
    axis = mesh.axis_names[0]
    per_device = indices.shape[0] // mesh.size

    def on_device(my_indices):
        def my_slice(weights):
            start = jax.lax.axis_index(axis) * per_device
            return jax.lax.dynamic_slice(weights, (start,), (per_device,))

        gather = partial(jax.lax.all_gather, axis_name=axis, tiled=True)
        return jax.lax.psum(local_sum(my_indices, gather, my_slice), axis)

    return jax.shard_map(on_device, mesh=mesh, in_specs=P(axis), out_specs=P(), check_vma=False)(
        indices
    )


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
    mesh: Mesh | None = None,
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
    - `mesh`: a one-axis `jax.sharding.Mesh` (e.g. `bbpes.parallel.population_mesh()`):
      the population is split over its devices (several GPUs, or hosts under
      `jax.distributed`), each evaluating its share chunk by chunk; the gradient is the
      same as without a mesh, to float rounding. `samples` must divide evenly.

    **Returns:** `f(params, key, *args) -> (loss, grads)` (`((loss, aux), grads)` with
    `has_aux`), where `loss` is L(theta) at the unperturbed params (one extra evaluation)
    and `grads` is a pytree like `params`.
    """
    if samples < 1:
        raise ValueError(f"ES needs at least one sample, got samples={samples}")
    if antithetic and samples % 2:
        raise ValueError(f"mirrored sampling needs an even number of samples, got {samples}")
    if mesh is not None and (len(mesh.axis_names) != 1 or samples % mesh.size):
        raise ValueError(
            f"mesh must have one axis whose size divides samples={samples}, got {dict(mesh.shape)}"
        )
    if baseline not in ("mean", "center", "none"):
        raise ValueError(f"baseline must be 'mean', 'center' or 'none', got {baseline!r}")

    def value(params, *args):
        return loss_fn(params, *args)[0] if has_aux else loss_fn(params, *args)

    def value_and_grad(params, key, *args):
        flat, unravel = ravel_pytree(params)
        scale = scale_vector(sigma, params, flat)
        center = loss_fn(params, *args)
        center_loss = center[0] if has_aux else center
        weigh = partial(
            fitness_weights, antithetic=antithetic, rank_shaping=rank_shaping, baseline=baseline
        )

        def local_sum(indices, gather=lambda x: x, my_slice=lambda w: w):
            losses = population_losses(
                value, flat, unravel, scale, key, indices, antithetic, chunk_size, args
            )
            weights = my_slice(weigh(gather(losses), center_loss))
            return weighted_noise_sum(
                weights, key, indices, flat.shape[0], antithetic, chunk_size, flat.dtype
            )

        indices = jnp.arange(samples)
        total = local_sum(indices) if mesh is None else sharded_sum(local_sum, indices, mesh)
        grads = unravel(total / (scale * samples))
        return center, grads

    return value_and_grad
