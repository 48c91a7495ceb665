"""Evolution strategies as a gradient estimator (BBPES paper, section 2.3, Algorithm 1).

For the Gaussian-smoothed loss L_sigma(theta) = E_{eps ~ N(0, I)} L(theta + sigma eps)
(Eq. 1), the log-trick (Eqs. 2-6) gives

    grad L_sigma(theta) = E[L(theta + sigma eps) eps] / sigma
                        ~ 1 / (sigma S) sum_s L(theta + sigma eps_s) eps_s.

With mirrored (antithetic) sampling, the samples come in pairs eps, -eps (Salimans et
al. 2017), so the sum becomes sum_k (L(theta + sigma eps_k) - L(theta - sigma eps_k)) eps_k.

**Low-rank ES** (EGGROLL, Sarkar et al. 2025, arXiv 2511.16652): with `rank=r`, every
matrix leaf `(m, n)` is perturbed by `sigma E` with `E = A B^T / sqrt(r)`, `A: (m, r)`,
`B: (n, r)` standard normal. E has the covariance of Gaussian noise
(E[E_ij E_kl] = delta_ik delta_jl), so the same estimator, with eps replaced by E,
estimates the same gradient (exactly in expectation on a quadratic); each member costs
`(m + n) r` random numbers per matrix instead of `m n`, and a model that applies its
matrices with `low_rank.apply` evaluates a member as the shared product plus a rank-r
correction (`structured=True`).

Sample s draws its noise from `jax.random.fold_in(key, s // 2)` (or `s` without
mirroring) (`Population`). When the whole population is evaluated in one batch, the
S/2 draws are made once and serve the members and the weighted sum; with `chunk_size`
(or a mesh) no more than a chunk of noise exists at once: it is drawn to evaluate the
chunk and again, chunk by chunk, to form the sum. The unperturbed (centre) params are
one more member of the population, with zero noise, evaluated in the same vmapped
chunks, so one estimate is one pass of the simulation.

**Non-finite losses** (a perturbation whose simulation diverged) count as the worst
outcome seen: each is replaced by the largest finite loss of the population before the
gradient is formed, so the update moves away from the diverging direction. With
`rank_shaping`, tied losses get their average rank, so a mirrored pair that both
diverge contributes exactly zero. **When no perturbed member is finite** the gradient is
NaN and the reported loss is NaN (even if the centre's loss is finite): the whole step
is non-finite, and the training loop and `GradientLearner` reject it (params and
optimizer state unchanged). Otherwise the reported loss is the centre's loss, finite or
not (with `center=False`, the mean of the finite perturbed losses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from numbers import Integral
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import Array
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ..errors import ConfigError
from .fitness import centered_ranks as centered_ranks
from .fitness import fitness_weights as fitness_weights
from .fitness import replace_nonfinite as replace_nonfinite
from .fitness import reported_loss as reported_loss
from .low_rank import LowRank

Baseline = Literal["mean", "center", "none"]


def check_settings(
    samples: int, antithetic: bool, baseline: str, rank: int | None, structured: bool
) -> None:
    """Raise `ConfigError` (one line) for settings `es` cannot run."""
    if samples < 1:
        raise ConfigError(f"ES needs at least one sample, got samples={samples}")
    if antithetic and samples % 2:
        raise ConfigError(f"mirrored sampling needs an even number of samples, got {samples}")
    if baseline not in ("mean", "center", "none"):
        raise ConfigError(f"baseline must be 'mean', 'center' or 'none', got {baseline!r}")
    if rank is not None and (not isinstance(rank, Integral) or isinstance(rank, bool) or rank < 1):
        raise ConfigError(f"rank must be a positive integer or None, got {rank!r}")
    if structured and rank is None:
        raise ConfigError("structured=True needs a rank (low-rank ES)")


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


def _scan(body: Callable, carry: Any, chunks: Any) -> tuple[Any, Any]:
    """`lax.scan(body, carry, chunks)`, or one plain call of `body` when there is a
    single chunk (no loop around the simulation's own time loop)."""
    if jax.tree.leaves(chunks)[0].shape[0] > 1:
        return jax.lax.scan(body, carry, chunks)
    carry, out = body(carry, jax.tree.map(lambda x: x[0], chunks))
    return carry, jax.tree.map(lambda x: x[None], out)


class Population:
    """The ES population of one estimate around `params`: sample `s < samples` is
    `params + sigma eps_s`, index `samples` (and above) the centre, with zero noise.

    **Arguments:** `params` (a pytree of float arrays), `sigma` (a float, or a pytree like
    `params` with one scale per leaf, in that leaf's units; a scalar for every matrix
    leaf when `rank` is set), `key`, `samples` (S), `antithetic`, `rank` (None: full
    rank; r: every leaf of ndim 2 perturbed by `sigma A B^T / sqrt(r)`).

    The noise of a sample is one standard normal vector of length `dim` (the sizes of
    the full-rank leaves plus `(m + n) r` per low-rank matrix: A's `m r` entries, then
    B's `n r`): draw j is `normal(fold_in(key, j))`, and sample s uses draw `s // 2`
    (mirrored, the odd sample with the opposite sign; for a matrix, A's sign, so that
    A B^T flips) or `s`. Draws are made on demand, or, with `table`, once for the whole
    population (`(draws, dim)` floats, reused for the members and the gradient).
    """

    def __init__(self, params, sigma, key, samples, *, antithetic=True, rank=None, table=False):
        leaves, self.treedef = jax.tree.flatten(params)
        self.leaves = [jnp.asarray(leaf) for leaf in leaves]
        self.dtype = jnp.result_type(*self.leaves)
        self.key, self.samples, self.antithetic, self.rank = key, samples, antithetic, rank
        sigma_leaves = jax.tree.leaves(sigma)
        if len(sigma_leaves) == 1 and sigma_leaves[0] is sigma and jnp.ndim(sigma) == 0:
            scales = [sigma] * len(leaves)
        else:
            scales = self.treedef.flatten_up_to(sigma)
        self.scales, self.layout, offset = [], [], 0
        for leaf, scale in zip(self.leaves, scales, strict=True):
            scale = jnp.asarray(scale, self.dtype)
            low_rank = rank is not None and leaf.ndim == 2
            if low_rank and scale.ndim:
                raise ConfigError(
                    f"low-rank ES needs one scalar sigma per matrix leaf, got shape {scale.shape}"
                )
            self.scales.append(scale if scale.ndim == 0 else jnp.broadcast_to(scale, leaf.shape))
            self.layout.append((offset, low_rank))
            offset += sum(leaf.shape) * rank if low_rank else leaf.size
        self.dim = offset
        self.draws = samples // 2 if antithetic else samples
        self.table = jax.vmap(self._draw)(jnp.arange(self.draws)) if table else None

    def _draw(self, j: Array) -> Array:
        return jax.random.normal(jax.random.fold_in(self.key, j), (self.dim,), self.dtype)

    def noise(self, index: Array) -> tuple[Array, Array]:
        """`(eps, sign)` of member `index` (an int array): eps `(dim,)`, sign +-1 for a
        sample (mirrored pairs: + then -), 0 for the centre."""
        j = index // 2 if self.antithetic else index
        sign = jnp.where(index % 2 == 0, 1, -1) if self.antithetic else 1
        eps = self._draw(j) if self.table is None else self.table[jnp.minimum(j, self.draws - 1)]
        return eps, jnp.where(index < self.samples, sign, 0).astype(self.dtype)

    def _factors(self, eps: Array, leaf: Array, offset: int) -> tuple[Array, Array]:
        """A `(..., m, r)` and B `(..., n, r)` of a matrix leaf, from eps `(..., dim)`."""
        (m, n), r = leaf.shape, self.rank
        a = eps[..., offset : offset + m * r].reshape(*eps.shape[:-1], m, r)
        b = eps[..., offset + m * r : offset + (m + n) * r].reshape(*eps.shape[:-1], n, r)
        return a, b

    def member(self, index: Array, structured: bool = False) -> Any:
        """The params of member `index`, a pytree like `params`. With `structured`, each
        low-rank matrix leaf is a `LowRank(leaf, sign A, B, sigma / sqrt(r))` (for
        `low_rank.apply`); else every leaf is a dense array."""
        eps, sign = self.noise(index)
        out = []
        for leaf, scale, (offset, low_rank) in zip(self.leaves, self.scales, self.layout):
            if low_rank:
                a, b = self._factors(eps, leaf, offset)
                w = LowRank(
                    leaf,
                    (sign * a).astype(leaf.dtype),
                    b.astype(leaf.dtype),
                    (scale / math.sqrt(self.rank)).astype(leaf.dtype),
                )
                out.append(w if structured else w.dense())
            else:
                e = eps[offset : offset + leaf.size].reshape(leaf.shape)
                out.append((leaf + scale * (sign * e)).astype(leaf.dtype))
        return self.treedef.unflatten(out)

    def gradient(
        self, weights: Array, indices: Array, chunk_size: int | None = None, *, paired=False
    ) -> Any:
        """`1 / (sigma S) sum_s weights[s] sign_s E_s` over the members `indices` (shape
        `(n,)`, with `weights` `(n,)`): a pytree like `params`. E_s is eps's leaf, or
        `A B^T / sqrt(r)` for a low-rank matrix. `paired`: `indices` are whole mirrored
        pairs (2k, 2k + 1, in order), so each pair's draw is used once, weighted by the
        difference. Without a table the noise is regenerated `chunk_size` draws at a
        time (all at once if None): never more than `chunk_size x dim` of it, nor a
        `(chunk, m, n)` array for a low-rank matrix."""
        if paired:
            weights, indices = weights[0::2] - weights[1::2], indices[0::2]
        chunks, valid = _chunked(indices, chunk_size)
        padded = jnp.pad(weights.astype(self.dtype), (0, valid.size - weights.shape[0]))

        def add_chunk(totals, chunk):
            index, w = chunk
            eps, sign = jax.vmap(self.noise)(index)
            ws = w * sign
            new = []
            for total, leaf, (offset, low_rank) in zip(totals, self.leaves, self.layout):
                if low_rank:
                    a, b = self._factors(eps, leaf, offset)
                    new.append(total + jnp.einsum("cmr,cnr->mn", a * ws[:, None, None], b))
                else:
                    e = eps[:, offset : offset + leaf.size]
                    new.append(total + (ws @ e).reshape(leaf.shape))
            return new, None

        zeros = [jnp.zeros(leaf.shape, self.dtype) for leaf in self.leaves]
        totals, _ = _scan(add_chunk, zeros, (chunks, padded.reshape(chunks.shape)))
        grads = []
        for total, leaf, scale, (_, low_rank) in zip(totals, self.leaves, self.scales, self.layout):
            norm = scale * self.samples * (math.sqrt(self.rank) if low_rank else 1)
            grads.append((total / norm).astype(leaf.dtype))
        return self.treedef.unflatten(grads)


def _evaluate(
    one: Callable, indices: Array, center: int, chunk_size: int | None, has_aux: bool
) -> tuple[Array, Any]:
    """Losses of the members `indices` (shape `(n,)`) and the aux of member `center`.

    `one(index) -> (loss, aux)`. Evaluated `chunk_size` at a time in one vmapped batch
    (all at once if None); the chunks run one after another under `lax.scan`, bounding
    memory by `chunk_size`. Only the centre's aux is kept."""
    chunks, _ = _chunked(indices, chunk_size)

    def chunk_losses(kept, chunk):
        losses, aux = jax.vmap(one)(chunk)
        if has_aux:
            hit = chunk == center
            at = jnp.argmax(hit)
            kept = jax.tree.map(lambda k, a: jnp.where(hit[at], a[at], k), kept, aux)
        return kept, losses

    kept = None
    if has_aux:
        shapes = jax.eval_shape(one, indices[0])[1]
        kept = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    kept, losses = _scan(chunk_losses, kept, chunks)
    return losses.reshape(-1)[: indices.shape[0]], kept


def es(
    loss_fn: Callable[..., Any],
    sigma: float | Any,
    samples: int,
    *,
    antithetic: bool = True,
    rank_shaping: bool = False,
    baseline: Baseline = "mean",
    rank: int | None = None,
    structured: bool = False,
    center: bool = True,
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
    - `rank`: None for full-rank noise; r for low-rank ES: each matrix leaf (ndim 2,
      `(m, n)`) is perturbed by `sigma A B^T / sqrt(r)`, `A: (m, r)`, `B: (n, r)`;
      other leaves as without it. Its sigma must be a scalar.
    - `structured`: (with `rank`) `loss_fn` receives each matrix leaf as a
      `bbpes.estimators.low_rank.LowRank` (apply it with `low_rank.apply`: one product
      shared by the population plus rank-r corrections); False gives it the dense
      perturbed matrix (works with any loss).
    - `center`: evaluate the unperturbed params too, as one more member of the
      population, and report its loss (S + 1 evaluations). False: S evaluations, and
      the reported loss is the mean of the finite perturbed losses (an estimate of
      L_sigma); not with `has_aux` or `baseline="center"`.
    - `chunk_size`: how many members are evaluated in one vmapped batch; `None`
      evaluates all S + 1 (the samples and the centre) at once, drawing the noise once
      (S/2 x params floats, mirrored) for the members and the gradient. With chunks,
      memory is about `chunk_size` times one evaluation and the noise is regenerated.
    - `has_aux`: `loss_fn` returns `(loss, aux)`; aux is taken at the unperturbed params.
    - `mesh`: a one-axis `jax.sharding.Mesh` (e.g. `bbpes.parallel.population_mesh()`):
      the samples are split over its devices (several GPUs, or hosts under
      `jax.distributed`), each evaluating its share plus the centre chunk by chunk; the
      gradient is the same as without a mesh, to float rounding. `samples` must divide
      evenly.

    **Returns:** `f(params, key, *args) -> (loss, grads)` (`((loss, aux), grads)` with
    `has_aux`), where `loss` is L(theta) at the unperturbed params and `grads` is a
    pytree like `params`. See the module docstring for non-finite losses.
    """
    check_settings(samples, antithetic, baseline, rank, structured)
    if mesh is not None and (len(mesh.axis_names) != 1 or samples % mesh.size):
        raise ConfigError(
            f"mesh must have one axis whose size divides samples={samples}, got {dict(mesh.shape)}"
        )
    if not center and (has_aux or baseline == "center"):
        raise ConfigError("center=False cannot give aux or a centre baseline: keep center=True")
    weigh = partial(
        fitness_weights, antithetic=antithetic, rank_shaping=rank_shaping, baseline=baseline
    )
    share = samples if mesh is None else samples // mesh.size
    table = mesh is None and (chunk_size is None or chunk_size >= samples + center)
    paired = antithetic and share % 2 == 0  # every device holds whole mirrored pairs

    def value_and_grad(params, key, *args):
        population = Population(
            params, sigma, key, samples, antithetic=antithetic, rank=rank, table=table
        )

        def one(index):
            out = loss_fn(population.member(index, structured), *args)
            return out if has_aux else (out, None)

        def local(my_samples, gather=lambda x: x, my_slice=lambda w: w):
            extra = jnp.full(int(center), samples, my_samples.dtype)  # the centre, if asked
            indices = jnp.concatenate([my_samples, extra])
            losses, aux = _evaluate(one, indices, samples, chunk_size, has_aux)
            everyone = gather(losses[:share])
            center_loss = losses[share] if center else jnp.nan
            weights = my_slice(weigh(everyone, center_loss))
            grads = population.gradient(weights, my_samples, chunk_size, paired=paired)
            if not center:
                finite = jnp.isfinite(everyone)
                center_loss = jnp.sum(jnp.where(finite, everyone, 0)) / jnp.sum(finite)
            return reported_loss(center_loss, everyone), aux, grads

        indices = jnp.arange(samples)
        loss, aux, grads = local(indices) if mesh is None else _sharded(local, indices, mesh)
        return ((loss, aux) if has_aux else loss), grads

    return value_and_grad


def _sharded(local: Callable, indices: Array, mesh: Mesh) -> tuple[Array, Any, Any]:
    """`local` over the sample `indices` split along the mesh's one axis: every device
    evaluates its own samples and the centre, the (small) vector of losses is gathered
    so that every device forms the same fitness weights, and the gradients of the
    devices' shares are added."""
    axis = mesh.axis_names[0]
    per_device = indices.shape[0] // mesh.size

    def on_device(my_indices):
        def my_slice(weights):
            start = jax.lax.axis_index(axis) * per_device
            return jax.lax.dynamic_slice(weights, (start,), (per_device,))

        gather = partial(jax.lax.all_gather, axis_name=axis, tiled=True)
        loss, aux, grads = local(my_indices, gather, my_slice)
        return loss, aux, jax.lax.psum(grads, axis)

    return jax.shard_map(on_device, mesh=mesh, in_specs=P(axis), out_specs=P(), check_vma=False)(
        indices
    )
