"""The losses of neural net evolution on MNIST ("Biologically plausible neural networks
via evolutionary dynamics and dopaminergic plasticity", section 3.1): the clipped
fitness of a population of genotypes, the test accuracy of one sparse network, the
loss of the same sparse architecture with every weight free (the SGD baseline), and a
dense MLP of the same layer sizes on the same images (`DenseSplit`, what ES trains).

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
from ..models.mlp import MLP
from ..models.sparse_mlp import (
    PopulationInputs,
    SparseMLP,
    cross_entropy,
    population_logits,
    population_weights,
)
from ..signals import LossForms
from .mnist import batch_indices


def generation_images(i: int, n_images: int, size: int, seed: int) -> np.ndarray:
    """The indices `(size,)` of the training images of generation (step) `i`: every
    image in order when `size == n_images`, else `batch_indices(i, n_images, size,
    seed)` (epochs of fresh permutations). `ImageBatches` and `DenseSplit` both draw
    their images here, so NNE and ES see the same images at every step."""
    if size == n_images:
        return np.arange(n_images)
    return batch_indices(i, n_images, size, seed)


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
    is `generation_images(i, S, size, seed)`: epochs of fresh
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
        index = generation_images(i, self.n_images, self.size, self.seed)
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


def mlp_loss(model: MLP, x: Array, y: Array) -> Array:
    """Mean cross-entropy of `model` (a `bbpes.models.mlp.MLP`) on `x (B, n_inputs)`,
    integer labels `y (B,)`: a scalar."""
    return jnp.mean(cross_entropy(jax.vmap(model)(x), y))


@eqx.filter_jit
def _mlp_accuracy(model: MLP, x: Array, y: Array) -> Array:
    return jnp.mean(jnp.argmax(jax.vmap(model)(x), -1) == y)


class DenseSplit(eqx.Module):
    """A dense ReLU MLP `n_inputs-H-C` (with biases) trained on NNE's split: generation
    `i`'s training images are `generation_images(i, S, size, seed)`, the images
    `ImageBatches(inputs, size, seed)` gives NNE at generation `i`.

    **Fields:** `train_x (S, n_inputs)`, `train_y (S,)`, `test_x (M, n_inputs)`,
    `test_y (M,)` (device arrays); `size`, images per step (`<= S`); `seed`.
    `loss_forms()` offers `mlp_loss` to `bbpes.signals.make_learner`; `batch(i)` is
    `(x (size, n_inputs), y (size,))`; `evaluate(model)` is `{"accuracy": test
    accuracy}`; `initial_model(hidden, key)` is equinox's default initialisation."""

    train_x: Array
    train_y: Array
    test_x: Array
    test_y: Array
    size: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)

    def __init__(self, train_x, train_y, test_x, test_y, size: int, seed: int = 0):
        if not 0 < size <= len(train_x):
            raise ConfigError(f"batch of {size} images: at most the {len(train_x)} training images")
        self.train_x, self.train_y = jnp.asarray(train_x), jnp.asarray(train_y)
        self.test_x, self.test_y = jnp.asarray(test_x), jnp.asarray(test_y)
        self.size, self.seed = size, seed

    def initial_model(self, hidden: int, classes: int, key: Array) -> MLP:
        return MLP(self.train_x.shape[1], classes, [hidden], "relu", key=key)

    def loss_forms(self) -> LossForms:
        return LossForms(loss=mlp_loss)

    def batch(self, i: int) -> tuple[Array, Array]:
        index = jnp.asarray(generation_images(i, self.train_x.shape[0], self.size, self.seed))
        return self.train_x[index], self.train_y[index]

    def evaluate(self, model: MLP) -> dict[str, Array]:
        return {"accuracy": _mlp_accuracy(model, self.test_x, self.test_y)}
