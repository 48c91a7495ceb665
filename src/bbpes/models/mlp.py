"""A multilayer perceptron whose every leaf is a trainable array.

`equinox.nn.MLP` keeps its activation as a pytree leaf (a function), so it cannot be
flattened into one parameter vector as ES needs (`jax.flatten_util.ravel_pytree`).
Here the activation is a static name, and the module itself is the parameter pytree:
ES, optax and checkpoints all take it as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
}


class MLP(eqx.Module):
    """`x -> W_n act(... act(W_1 x + b_1) ...) + b_n`, linear output.

    **Fields:** `layers`, a tuple of `eqx.nn.Linear` (weights `(out, in)`, biases `(out,)`);
    `activation`, the name of the hidden nonlinearity (a key of `ACTIVATIONS`).

    `__call__` takes one input of shape `(in_size,)` and returns `(out_size,)`; use
    `jax.vmap` for a batch.
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int,
        hidden: Sequence[int],
        activation: str = "tanh",
        *,
        key: Array,
        weight_std: float | None = None,
    ):
        """**Arguments:**

        - `in_size`, `out_size`: input and output widths; `hidden`: the width of each
          hidden layer (empty for a linear map).
        - `activation`: a key of `ACTIVATIONS`.
        - `key`: PRNG key (keyword-only).
        - `weight_std`: if given, weights are drawn from N(0, weight_std^2) and biases are
          zero (the torchdiffeq spiral demo's init); otherwise equinox's default
          (uniform in +-1/sqrt(fan_in)).
        """
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        sizes = [in_size, *hidden, out_size]
        keys = jax.random.split(key, len(sizes) - 1)
        layers = []
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:]):
            layer = eqx.nn.Linear(n_in, n_out, key=k)
            if weight_std is not None:
                weight = weight_std * jax.random.normal(k, layer.weight.shape, layer.weight.dtype)
                layer = eqx.tree_at(
                    lambda lin: (lin.weight, lin.bias), layer, (weight, jnp.zeros_like(layer.bias))
                )
            layers.append(layer)
        self.layers = tuple(layers)
        self.activation = activation

    def __call__(self, x: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)
