"""Fitness shaping for population estimators (ES and its relatives): what multiplies
each member's noise, given the members' losses.

Non-finite losses count as the worst finite loss of the population; ranks are centered
on [-0.5, 0.5] with ties sharing their average rank (Salimans et al. 2017), in the dtype
of the losses. When no member is finite the weights (and the reported loss) are NaN, so
the training loop rejects the step."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array


def centered_ranks(losses: Array) -> Array:
    """Ranks of `losses` (shape `(S,)`, finite) mapped linearly onto [-0.5, 0.5]
    (Salimans et al.), in the dtype of `losses`. Tied losses share their average rank,
    so the ranks always sum to zero."""
    ordered = jnp.sort(losses)
    below = jnp.searchsorted(ordered, losses, side="left")
    upto = jnp.searchsorted(ordered, losses, side="right")
    ranks = (below + upto - 1).astype(losses.dtype) / 2
    return ranks / max(losses.shape[0] - 1, 1) - 0.5


def replace_nonfinite(losses: Array) -> Array:
    """Replace NaN and inf by the largest finite value (0 if none is finite)."""
    finite = jnp.isfinite(losses)
    worst = jnp.max(jnp.where(finite, losses, -jnp.inf))
    worst = jnp.where(jnp.isfinite(worst), worst, 0.0)
    return jnp.where(finite, losses, worst)


def fitness_weights(
    losses: Array, center_loss: Array, *, antithetic: bool, rank_shaping: bool, baseline: str
) -> Array:
    """What multiplies each sample's noise: the losses (shape `(S,)`; non-finite ones
    replaced by the worst finite loss), ranked and/or minus a baseline as configured.
    Shape `(S,)`, the dtype of `losses`; all NaN when no loss is finite."""
    any_finite = jnp.any(jnp.isfinite(losses))
    losses = replace_nonfinite(losses)
    if rank_shaping:
        weights = centered_ranks(losses)
    elif antithetic or baseline == "none":
        weights = losses
    elif baseline == "center":
        weights = losses - jnp.where(jnp.isfinite(center_loss), center_loss, jnp.mean(losses))
    else:
        weights = losses - jnp.mean(losses)
    return jnp.where(any_finite, weights, jnp.nan)


def reported_loss(center_loss: Array, losses: Array) -> Array:
    """The loss an estimate reports: the centre's, or NaN when no sample is finite."""
    return jnp.where(jnp.any(jnp.isfinite(losses)), center_loss, jnp.nan)
