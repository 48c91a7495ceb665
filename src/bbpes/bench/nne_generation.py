"""`nne-generation`: the cost of one NNE fitness evaluation (a chunk of genotypes on the
whole training set) in three formulations, as ratios measured in one process.

- `dense`: each genotype's first layer as a dense `(H, 784)` matrix, one GEMM over
  the images (ignores the graph's sparsity: ~10x the arithmetic);
- `whole_layer`: the sparse graph as one batched product over hidden units, the whole
  hidden layer `(H, images, genotypes)` at once (streams through memory);
- `blocked`: `bbpes.models.sparse_mlp.population_logits`, the same products in cache-
  sized blocks of hidden units (what NNE uses).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..learners.nne import random_gene_map
from ..models.sparse_mlp import (
    cross_entropy,
    population_inputs,
    population_logits,
    population_weights,
    random_sparse_mlp,
)
from . import Benchmark


def _seconds(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / repeats


def run(config: dict[str, Any]) -> dict[str, Any]:
    with jax.enable_x64(False):
        return _run(config)


def _run(config: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    n_in, hidden, classes, images = 784, config["hidden"], config["classes"], config["images"]
    c = config["chunk"]
    net = random_sparse_mlp(rng, n_in, hidden, classes, 0.1)
    gene_map = random_gene_map(rng, net.n_links, config["genes"], 0.0025, dtype=np.float32)
    # MNIST-like inputs: about a fifth of the pixels are ink, the border is blank.
    x = rng.uniform(size=(images, n_in)) * (rng.uniform(size=(images, n_in)) < 0.2)
    x.reshape(images, 28, 28)[:, :4] = 0.0
    y = rng.integers(0, classes, images)
    genotypes = jnp.asarray(rng.uniform(size=(c, config["genes"])) < 0.5, jnp.float32)
    labels = jnp.asarray(y)
    x32 = jnp.asarray(x, jnp.float32)

    def mean_loss(logits):  # (images, c, C)
        return cross_entropy(logits, jnp.broadcast_to(labels[:, None], logits.shape[:2])).mean(0)

    @jax.jit
    def dense(genotypes):
        w = gene_map.columns(genotypes).T  # (c, m)
        w1, w2 = jax.vmap(net.split)(w)  # (c, H, 784), (c, H, C)
        hidden_ = jax.nn.relu(jnp.einsum("chi,si->chs", w1, x32))
        return mean_loss(jnp.einsum("chs,cho->sco", hidden_, w2))

    inputs = population_inputs(
        net, x, y, image_block=config["image_block"], hidden_block=config["hidden_block"]
    )
    active = gene_map.rows(np.asarray(inputs.links))

    @jax.jit
    def blocked(genotypes):
        first, output = population_weights(inputs, active.columns(genotypes))

        def block(total, data):
            pixels, block_labels = data
            logits = population_logits(first, output, pixels)
            loss = cross_entropy(logits, jnp.broadcast_to(block_labels[:, None], logits.shape[:2]))
            return total + loss.sum(0), None

        total, _ = jax.lax.scan(block, jnp.zeros(c), (inputs.pixels, inputs.labels))
        return total / images

    sources, slots = net.sources, net.link_of_slot
    pixels_all = x32.T[sources]  # (H, K, images)

    @jax.jit
    def whole_layer(genotypes):
        w = gene_map.columns(genotypes)
        padded = jnp.concatenate([w, jnp.zeros((1, c), w.dtype)])
        hidden_ = jax.nn.relu(jnp.einsum("hks,hkc->hsc", pixels_all, padded[slots]))
        w2 = w[net.n_first :].reshape(hidden, classes, c)
        return mean_loss(jnp.einsum("hsc,hoc->sco", hidden_, w2))

    reference = np.asarray(dense(genotypes))
    seconds = {}
    for name, fn in (("dense", dense), ("whole_layer", whole_layer), ("blocked", blocked)):
        np.testing.assert_allclose(np.asarray(fn(genotypes)), reference, rtol=2e-3)
        seconds[name] = _seconds(fn, genotypes, repeats=config["repeats"])
    evaluations = c * images
    return {
        "seconds_per_chunk": seconds,
        "network_evaluations_per_second": {k: evaluations / s for k, s in seconds.items()},
        "speedup_blocked_vs_dense": seconds["dense"] / seconds["blocked"],
        "speedup_blocked_vs_whole_layer": seconds["whole_layer"] / seconds["blocked"],
        "seconds_per_generation_of_1000_blocked": seconds["blocked"] * 1000 / c,
        "active_links": len(inputs.links),
        "links": net.n_links,
    }


BENCHMARK = Benchmark(
    name="nne-generation",
    summary="NNE population forward pass: dense vs whole-layer vs cache-blocked sparse",
    run=run,
    defaults={
        "hidden": 1000,
        "classes": 5,
        "images": 1000,
        "genes": 5000,
        "chunk": 125,
        "image_block": 100,
        "hidden_block": 10,
        "repeats": 2,
    },
    quick={"hidden": 200, "images": 200, "chunk": 25, "repeats": 1},
)
