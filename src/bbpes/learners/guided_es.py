"""Guided evolution strategies (Maheswaranathan, Metz, Tucker, Choi & Sohl-Dickstein,
ICML 2019, arXiv 1806.10230, Algorithm 1): ES whose search distribution is stretched
along the subspace of the last k surrogate gradients.

A surrogate gradient is any direction correlated with the true one but cheaper or
better behaved: truncated BPTT (`bptt` of a loss looping with
`bbpes.estimators.backprop.truncated_scan`), BPTT through a surrogate spike derivative
(`bbpes.neurons.readout.surrogate_threshold`), even a forward gradient. Each step:

1. the surrogate gradient at the current parameters joins a buffer of the last k
   (newest first); U (n x k) is an orthonormal basis of the buffer (QR);
2. perturbations are drawn from N(0, sigma^2 Sigma) with

       Sigma = alpha / n I_n + (1 - alpha) / k U U^T                  (Alg. 1)

   as eps = sigma (sqrt(alpha / n) z_n + sqrt((1 - alpha) / k) U z_k), z ~ N(0, I);
3. with P mirrored pairs the gradient estimate is

       g = beta / (2 sigma^2 P) sum_i (L(theta + eps_i) - L(theta - eps_i)) eps_i   (Alg. 1)

   (for a quadratic, exactly beta Sigma grad L in expectation; beta = 2 is the
   paper's choice), handed to an optax optimizer.

Note the paper's scale: E|eps|^2 = sigma^2 (trace Sigma = 1), so sigma is the size of a
whole perturbation, not of one coordinate. `bbpes.estimators.es` with per-weight scale
s explores as far as Guided ES with sigma = s sqrt(n) and alpha = 1.

Before the buffer holds k gradients, U spans those it holds (k in Sigma is then their
number). A surrogate gradient that is not finite, or is exactly zero (BPTT through a
hard threshold), carries no direction and is not buffered; with nothing buffered the
search is isotropic (Sigma = I / n). Non-finite losses are replaced by the worst finite
loss of the population (`bbpes.estimators.es.replace_nonfinite`); when none is finite
the estimate is NaN and the step is rejected (params and optimizer state kept).
Noise is never stored for the whole population: pair i draws its noise from
`jax.random.fold_in(key, i)`, once to evaluate and again, chunk by chunk, to sum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import Array
from jax.flatten_util import ravel_pytree

from ..errors import ConfigError
from ..estimators.es import _chunked, replace_nonfinite
from .base import AbstractLearner


class GuidedESState(eqx.Module):
    """**Fields:** `params` (pytree); `opt_state` (optax); `U_raw`, `(k, n_params)`, the
    last k buffered surrogate gradients (flattened, newest first, unused rows zero);
    `count`, `()` int32, how many surrogate gradients have been buffered in all."""

    params: Any
    opt_state: Any
    U_raw: Array
    count: Array


def guiding_basis(U_raw: Array, count: Array) -> tuple[Array, Array]:
    """An orthonormal basis of the buffered surrogate gradients: `(U, k_used)` with `U`
    of shape `(n, k)` whose first `k_used = min(count, k)` columns span the first rows of
    `U_raw` (QR) and whose other columns are zero."""
    k = U_raw.shape[0]
    q, _ = jnp.linalg.qr(U_raw.T)
    k_used = jnp.minimum(count, k)
    return q * (jnp.arange(k) < k_used).astype(q.dtype), k_used


def guided_noise(key: Array, pair: Array, basis: Array, k_used: Array, alpha: float) -> Array:
    """Pair `pair`'s perturbation for sigma = 1, shape `(n,)`: a draw of N(0, Sigma)
    (module docstring), isotropic (alpha = 1) when `k_used` is 0."""
    n, k = basis.shape
    z_n_key, z_k_key = jax.random.split(jax.random.fold_in(key, pair))
    z_n = jax.random.normal(z_n_key, (n,), basis.dtype)
    z_k = jax.random.normal(z_k_key, (k,), basis.dtype)
    a = jnp.where(k_used > 0, alpha, 1.0)
    return jnp.sqrt(a / n) * z_n + jnp.sqrt((1 - a) / jnp.maximum(k_used, 1)) * (basis @ z_k)


def guided_es_gradient(
    loss_fn: Callable[..., Array],
    params: Any,
    key: Array,
    basis: Array,
    k_used: Array,
    *args: Any,
    sigma: float,
    samples: int,
    alpha: float,
    beta: float = 2.0,
    chunk_size: int | None = None,
) -> tuple[Array, Any]:
    """`(L(theta), g)`: the Guided ES estimate (Alg. 1) from `samples / 2` mirrored pairs
    drawn with the guiding subspace `basis` `(n, k)` (its first `k_used` columns); `g`
    is a pytree like `params`, NaN when no perturbed loss is finite. `chunk_size`
    perturbed losses are evaluated at once (`None`: all)."""
    flat, unravel = ravel_pytree(params)
    pairs = samples // 2
    chunks, valid = _chunked(jnp.arange(pairs), None if chunk_size is None else chunk_size // 2)

    def noise(pair):
        return sigma * guided_noise(key, pair, basis, k_used, alpha)

    def mirrored(pair):
        eps = noise(pair)
        return jnp.stack([loss_fn(unravel(flat + eps), *args), loss_fn(unravel(flat - eps), *args)])

    losses = jax.lax.map(jax.vmap(mirrored), chunks)  # (n_chunks, chunk, 2)
    # padding repeats the last pair, so it changes neither the worst loss nor any()
    clean = replace_nonfinite(losses.reshape(-1)).reshape(losses.shape)
    weights = jnp.where(valid, clean[..., 0] - clean[..., 1], 0.0)

    def add_chunk(total, chunk):
        index, w = chunk
        return total + w @ jax.vmap(noise)(index), None

    total, _ = jax.lax.scan(add_chunk, jnp.zeros_like(flat), (chunks, weights))
    g = beta / (2 * sigma**2 * pairs) * total
    g = jnp.where(jnp.any(jnp.isfinite(losses)), g, jnp.nan)
    return loss_fn(params, *args), unravel(g)


def _cosine(a: Array, b: Array) -> Array:
    norms = jnp.linalg.norm(a) * jnp.linalg.norm(b)
    return jnp.where(norms > 0, a @ b / jnp.where(norms > 0, norms, 1.0), 0.0)


class GuidedES(AbstractLearner):
    """Guided ES with an optax optimizer (module docstring).

    **Arguments:**

    - `loss_fn(params, *batch) -> scalar`: the true loss, only ever evaluated.
    - `surrogate(params, key, *batch) -> (loss, grads)`: any estimator (see
      `bbpes.estimators`), e.g. `bptt(truncated_loss)` or `bptt(surrogate_loss)`.
    - `optimizer`: applied to the Guided ES estimate.
    - `sigma`: size of a whole perturbation (E|eps|^2 = sigma^2), in params units (a
      float, or a scalar array: then it is data to the compiled step, not a constant).
    - `samples`: perturbed losses per step, even (P = samples / 2 mirrored pairs).
    - `alpha`: share of the search variance that is isotropic, in [0, 1].
    - `k`: how many past surrogate gradients span the guiding subspace.
    - `beta`: the estimate's scale (2 in the paper).
    - `chunk_size`: perturbed losses evaluated at once (`None`: all).

    Cost per step: `samples + 1` forward passes and one surrogate gradient. Metrics:
    `loss` (L(theta) before the step), `grad_norm` (of the estimate), and
    `surrogate_cosine` (cosine between the estimate and this step's surrogate gradient;
    0 when the surrogate is zero or not finite).
    """

    loss_fn: Callable[..., Any]
    surrogate: Callable[..., tuple[Any, Any]]
    optimizer: optax.GradientTransformation
    sigma: float | Array
    samples: int = eqx.field(static=True)
    alpha: float = 0.5
    k: int = eqx.field(default=1, static=True)
    beta: float = 2.0
    chunk_size: int | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if isinstance(self.samples, bool) or not isinstance(self.samples, int):
            raise ConfigError(f"guided ES samples must be an integer, got {self.samples!r}")
        if self.samples < 2 or self.samples % 2:
            raise ConfigError(f"guided ES needs an even samples >= 2, got {self.samples}")
        if not isinstance(self.sigma, jax.core.Tracer) and not self.sigma > 0:
            raise ConfigError(f"guided ES sigma must be positive, got {self.sigma}")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"guided ES alpha must be in [0, 1], got {self.alpha}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"guided ES k must be an integer >= 1, got {self.k!r}")
        if not self.beta > 0:
            raise ConfigError(f"guided ES beta must be positive, got {self.beta}")
        if self.chunk_size is not None and self.chunk_size < 2:
            raise ConfigError(f"guided ES chunk_size must be >= 2, got {self.chunk_size}")

    def init(self, params: Any) -> GuidedESState:
        flat, _ = ravel_pytree(params)
        if self.k > flat.shape[0]:
            raise ConfigError(f"guided ES k={self.k} exceeds the {flat.shape[0]} parameters")
        buffer = jnp.zeros((self.k, flat.shape[0]), flat.dtype)
        return GuidedESState(params, self.optimizer.init(params), buffer, jnp.array(0, jnp.int32))

    def step(self, state: GuidedESState, key: Array, *batch: Any) -> tuple[GuidedESState, dict]:
        surrogate_key, es_key = jax.random.split(key)
        _, surrogate_grads = self.surrogate(state.params, surrogate_key, *batch)
        s = ravel_pytree(surrogate_grads)[0].astype(state.U_raw.dtype)
        usable = jnp.all(jnp.isfinite(s)) & jnp.any(s != 0)
        U_raw = jnp.where(usable, jnp.concatenate([s[None], state.U_raw[:-1]]), state.U_raw)
        count = state.count + usable.astype(state.count.dtype)
        basis, k_used = guiding_basis(U_raw, count)
        loss, grads = guided_es_gradient(
            self.loss_fn,
            state.params,
            es_key,
            basis,
            k_used,
            *batch,
            sigma=self.sigma,
            samples=self.samples,
            alpha=self.alpha,
            beta=self.beta,
            chunk_size=self.chunk_size,
        )
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        cosine = _cosine(ravel_pytree(grads)[0], jnp.where(usable, s, 0.0))
        # A non-finite estimate is not applied; the training loop sees it in grad_norm.
        finite = jnp.isfinite(grad_norm)
        params, opt_state = jax.tree.map(
            lambda a, b: jnp.where(finite, a, b),
            (params, opt_state),
            (state.params, state.opt_state),
        )
        metrics = {"loss": loss, "grad_norm": grad_norm, "surrogate_cosine": cosine}
        return GuidedESState(params, opt_state, U_raw, count), metrics
