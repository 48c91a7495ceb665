"""A teacher-student regression task: a small tanh network learns a fixed random
teacher network on Gaussian inputs (Whitelam et al., "Correspondence between
neuroevolution and gradient descent"; the `neuroevolution-gd` experiment). A
configuration is a mapping with the keys of that experiment's settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..models.feedforward import FeedForward

NETS = ("shallow", "deep")
"""The students: one hidden layer of `shallow_width`, or `deep_layers` of `deep_width`."""


def teacher_data(config: Mapping[str, Any]) -> tuple[jax.Array, jax.Array]:
    """Inputs X ~ N(0, I), shape (n_data, n_inputs), and the teacher's outputs Y, shape
    (n_data, 1). The teacher is a random one-hidden-layer tanh network."""
    key_teacher, key_inputs = jax.random.split(jax.random.key(config["seed"]))
    teacher = FeedForward(
        (config["n_inputs"], config["teacher_width"], 1),
        key=key_teacher,
        weight_scale=config["teacher_scale"],
    )
    inputs = jax.random.normal(key_inputs, (config["n_data"], config["n_inputs"]))
    return inputs, jax.vmap(teacher)(inputs)


def student(config: Mapping[str, Any], net: str) -> FeedForward:
    """The initial student `net` (one of `NETS`), a tanh network with one output, drawn
    from the key `fold_in(key(seed + 1), NETS.index(net))`."""
    hidden = (
        [config["shallow_width"]]
        if net == "shallow"
        else [config["deep_width"]] * config["deep_layers"]
    )
    key = jax.random.fold_in(jax.random.key(config["seed"] + 1), NETS.index(net))
    return FeedForward((config["n_inputs"], *hidden, 1), key=key)


def mse(params: FeedForward, inputs: jax.Array, targets: jax.Array) -> jax.Array:
    return jnp.mean((jax.vmap(params)(inputs) - targets) ** 2)


def population_evaluator(
    loss: Callable, flat0: jax.Array, watched: np.ndarray, population: bool
) -> Callable[[Any], dict[str, jax.Array]]:
    """`evaluate(params) -> dict`, the held-out record of every history entry: the loss
    over the population (mean, std, min, max; `population=False`: one network, R = 1),
    the loss of the mean weights, the distance of the mean weights from the flat start
    `flat0`, and the weights of the mean network at the flat indices `watched`
    (`w_0`, `w_1`, ...)."""

    @jax.jit
    def evaluate(params):
        stacked = params if population else jax.tree.map(lambda x: x[None], params)
        losses = jax.vmap(loss)(stacked)
        mean = jax.tree.map(lambda x: jnp.mean(x, axis=0), stacked)
        flat = ravel_pytree(mean)[0]
        out = {
            "loss_mean": jnp.mean(losses),
            "loss_std": jnp.std(losses),
            "loss_min": jnp.min(losses),
            "loss_max": jnp.max(losses),
            "loss_at_mean_weights": loss(mean),
            "distance": jnp.linalg.norm(flat - flat0),
        }
        return out | {f"w_{i}": flat[j] for i, j in enumerate(watched)}

    return evaluate
