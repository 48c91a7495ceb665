"""Several runs of the spiral task trained as the members of one `Ensemble`: the task
a configuration describes, one initial vector field per run, each run's minibatches
and the full-trajectory MAE of every run (used by the `spiral` and `spiral-scaling`
experiments; a configuration is a mapping with the keys of `spiral`'s settings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..models.neural_ode import NeuralODE, spiral_field
from .spiral import Spiral


def make_task(config: Mapping[str, Any]) -> Spiral:
    """The `Spiral` of the settings `n_points`, `t_end`, `batch_size`, `batch_time`,
    `tol` (rtol = atol) and `max_steps`."""
    return Spiral(
        n_points=config["n_points"],
        t_end=config["t_end"],
        batch_size=config["batch_size"],
        batch_time=config["batch_time"],
        rtol=config["tol"],
        atol=config["tol"],
        max_steps=config["max_steps"],
    )


def stacked_fields(hidden: int, seeds: Sequence[int], base_key: Array) -> NeuralODE:
    """One freshly initialised field (`hidden` tanh units) per seed, drawn from
    `fold_in(base_key, seed)`, stacked along a leading axis `len(seeds)`."""
    fields = [spiral_field(hidden, key=jax.random.fold_in(base_key, s)) for s in seeds]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *fields)


def stacked_batches(task: Spiral, seeds: Sequence[int], base_key: Array) -> Callable:
    """`batch(i)`: member m's minibatch of step i (start points `(M, B, 2)`, targets
    `(M, T, B, 2)`), drawn from `fold_in(fold_in(base_key, seed_m), i)` only (so members
    with one seed see the same data, and resuming is exact)."""
    seeds = jnp.asarray(seeds)

    @jax.jit
    def batch(i):
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(base_key, s), i))(seeds)
        return jax.vmap(task.sample_batch)(keys)

    return batch


def member_maes(task: Spiral) -> Callable[[NeuralODE], dict[str, float]]:
    """`evaluate(stacked fields) -> {"mae": mean over the finite ones, "mae_m": member
    m's}`: the full-trajectory MAE from y(0) of each member (`inf` for a failed solve)."""

    @eqx.filter_jit
    def maes(fields):
        return jax.vmap(task.mae)(fields)

    def evaluate(fields):
        values = np.asarray(maes(fields))
        finite = values[np.isfinite(values)]
        out = {"mae": float(np.mean(finite)) if finite.size else float("inf")}
        out.update({f"mae_{m}": float(v) for m, v in enumerate(values)})
        return out

    return evaluate
