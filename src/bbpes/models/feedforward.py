"""A small fully connected network (an equinox pytree whose every leaf is a weight or a
bias), for experiments that mutate, perturb or differentiate all of its parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array


class FeedForward(eqx.Module):
    """sizes = (n_in, n_hidden_1, ..., n_out): `len(sizes) - 2` hidden layers with
    `activation`, a linear output layer.

    Weights are drawn as N(0, weight_scale^2 / fan_in) (LeCun normal), biases are zero.
    `__call__` maps one input of shape `(n_in,)` to shape `(n_out,)`; `jax.vmap` it over a
    batch. Every array field is a parameter, so `jax.tree.leaves(model)` lists the
    parameter groups (weight, bias of layer 1, weight, bias of layer 2, ...).
    """

    weights: list[Array]  # layer l: (sizes[l + 1], sizes[l])
    biases: list[Array]  # layer l: (sizes[l + 1],)
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        key: Array,
        activation: Callable[[Array], Array] = jnp.tanh,
        weight_scale: float = 1.0,
        dtype=None,
    ):
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must hold at least an input and an output size, got {sizes}")
        dtype = dtype or jnp.result_type(float)
        keys = jax.random.split(key, len(sizes) - 1)
        self.weights = [
            weight_scale / jnp.sqrt(n_in) * jax.random.normal(k, (n_out, n_in), dtype)
            for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
        ]
        self.biases = [jnp.zeros(n_out, dtype) for n_out in sizes[1:]]
        self.activation = activation

    def __call__(self, x: Array) -> Array:
        for weight, bias in zip(self.weights[:-1], self.biases[:-1]):
            x = self.activation(weight @ x + bias)
        return self.weights[-1] @ x + self.biases[-1]

    @property
    def depth(self) -> int:
        """The number of hidden layers."""
        return len(self.weights) - 1
