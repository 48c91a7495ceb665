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

from ..errors import ConfigError
from ..models.sparse_mlp import (
    PopulationInputs,
    SparseMLP,
    cross_entropy,
    population_logits,
    population_weights,
)
from .mnist import batch_indices


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


class ImageBatches(eqx.Module):
    """`batch(i)` for `bbpes.train.train`: generation `i`'s minibatch of training
    images as a `PopulationInputs`, gathered from one layout of the whole set.

    **Fields:** `inputs`, the whole set's layout (`population_inputs(net, x, y,
    image_block=b)`, only a one-batch template when `size < S`); `pixels[g] (S, n_g, hb,
    K_g)`, its pixels image-major (empty when `size = S`); `labels (S,)`; `size`, images per batch (a multiple of `b`, at most `S`); `seed`. Batch `i`
    is `bbpes.tasks.mnist.batch_indices(i, S, size, seed)`: epochs of fresh
    permutations, a function of `i` only (exact resumes). `size = S` is the whole set
    in its own order (the plain NNE's data, bit for bit).
    """

    inputs: PopulationInputs
    pixels: tuple[Array, ...]
    labels: Array
    size: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)

    def __init__(self, inputs: PopulationInputs, size: int, seed: int = 0):
        block = inputs.labels.shape[1]
        if size % block or not 0 < size <= inputs.n_images:
            raise ConfigError(
                f"batch of {size} images must be a multiple of image_block {block} "
                f"and at most the {inputs.n_images} training images"
            )
        self.size, self.seed = size, seed
        self.labels = inputs.labels.reshape(-1)
        # one copy of the pixels: image-major for minibatches, else the layout itself
        self.pixels = _image_major(inputs.pixels) if size < inputs.n_images else ()
        if size < inputs.n_images:  # the layout becomes a template of one batch
            blocks = size // block
            inputs = eqx.tree_at(
                lambda i: (i.pixels, i.labels),
                inputs,
                (tuple(x[:blocks] for x in inputs.pixels), inputs.labels[:blocks]),
            )
        self.inputs = inputs

    def take(self, index: Array) -> PopulationInputs:
        """The layout of the images `index (size,)` (blocks of `b` in that order)."""
        return _take(self, index)

    @property
    def n_images(self) -> int:
        return self.labels.shape[0]

    def __call__(self, i: int) -> tuple[PopulationInputs]:
        if self.size == self.n_images:
            return (self.inputs,)
        index = batch_indices(i, self.n_images, self.size, self.seed)
        return (self.take(jnp.asarray(index, jnp.int32)),)


def _image_major(pixels: tuple[Array, ...]) -> tuple[Array, ...]:
    """`(B, n_g, hb, K_g, b) -> (B b, n_g, hb, K_g)`: one row per image."""
    return tuple(jnp.moveaxis(x, -1, 1).reshape(-1, *x.shape[1:-1]) for x in pixels)


@eqx.filter_jit
def _take(batches: ImageBatches, index: Array) -> PopulationInputs:
    block = batches.inputs.labels.shape[1]
    pixels = batches.pixels or _image_major(batches.inputs.pixels)

    def blocks(x):  # (size, ...) -> (size / b, ..., b)
        return jnp.moveaxis(x[index].reshape(-1, block, *x.shape[1:]), 1, -1)

    return eqx.tree_at(
        lambda inputs: (inputs.pixels, inputs.labels),
        batches.inputs,
        (tuple(blocks(x) for x in pixels), batches.labels[index].reshape(-1, block)),
    )
