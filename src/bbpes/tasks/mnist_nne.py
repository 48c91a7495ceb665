"""The losses of neural net evolution on MNIST ("Biologically plausible neural networks
via evolutionary dynamics and dopaminergic plasticity", section 3.1): the clipped
fitness of a population of genotypes, the test accuracy of one sparse network, and the
loss of the same sparse architecture with every weight free (the SGD baseline).

Shapes: `m` links (weights) of a `SparseMLP` with H hidden units, C classes and
`n_inputs` pixels; `n` genes; `c` genotypes evaluated at once.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..models.sparse_mlp import (
    PopulationInputs,
    SparseMLP,
    cross_entropy,
    population_logits,
    population_weights,
)


class ClippedFitness(eqx.Module):
    """Section 3.1: `delta_x = mean over S of max(0, alpha^2 - CE)`, with
    `alpha = log(classes)` the loss of a uniform guess.

    **Fields:** `gene_map`, a `bbpes.learners.nne.GeneMap` restricted to the rows of `W`
    for `PopulationInputs.links`; `alpha_squared`. Called as
    `fitness(genotypes (c, n), inputs)` it returns `(delta (c,), mean cross-entropy (c,))`.
    """

    gene_map: Any
    alpha_squared: float

    def __call__(self, genotypes: Array, inputs: PopulationInputs) -> tuple[Array, Array]:
        first, output = population_weights(inputs, self.gene_map.columns(genotypes))

        def image_block(totals, block):
            pixels, labels = block
            logits = population_logits(first, output, pixels)
            loss = cross_entropy(logits, jnp.broadcast_to(labels[:, None], logits.shape[:2]))
            fitness = jnp.maximum(0.0, self.alpha_squared - loss)
            return (totals[0] + fitness.sum(0), totals[1] + loss.sum(0)), None

        zeros = jnp.zeros(genotypes.shape[0], first[0].dtype)
        (fitness, loss), _ = jax.lax.scan(
            image_block, (zeros, zeros), (inputs.pixels, inputs.labels)
        )
        return fitness / inputs.n_images, loss / inputs.n_images


def accuracy_fn(net: SparseMLP, test_x: np.ndarray, test_y: np.ndarray):
    """`weights (m,) -> test accuracy` of one network on `test_x (N, n_inputs)`, jitted."""
    x, y = jnp.asarray(test_x), jnp.asarray(test_y)
    return jax.jit(lambda weights: jnp.mean(jnp.argmax(net.logits(weights, x), -1) == y))


def masked_initial_params(net: SparseMLP, edge_prob: float, key: Array) -> dict[str, Array]:
    """Every weight of the architecture, free: `{"w1": (H, n_inputs) He uniform over the
    mean fan-in (zero off the edges), "w2": (H, C) uniform(+-1/sqrt(H))}`."""
    mask = net.mask()
    k1, k2 = jax.random.split(key)
    bound1 = np.sqrt(6.0 / (net.n_inputs * edge_prob))
    bound2 = 1.0 / np.sqrt(net.n_hidden)
    return {
        "w1": jax.random.uniform(k1, mask.shape, minval=-bound1, maxval=bound1) * mask,
        "w2": jax.random.uniform(k2, (net.n_hidden, net.n_classes), minval=-bound2, maxval=bound2),
    }


def masked_logits(params: dict[str, Array], mask: Array, x: Array) -> Array:
    """Logits `(B, C)` of the sparse ReLU network whose first layer is `w1 * mask`."""
    return jax.nn.relu(x @ (params["w1"] * mask).T) @ params["w2"]


def masked_loss(params: dict[str, Array], mask: Array, x: Array, y: Array) -> Array:
    """Mean cross-entropy of `masked_logits` on `x (B, n_inputs)`, labels `y (B,)`."""
    return jnp.mean(cross_entropy(masked_logits(params, mask, x), y))
