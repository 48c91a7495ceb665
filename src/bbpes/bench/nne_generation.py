"""`nne-generation`: the cost of one NNE fitness evaluation (a chunk of genotypes on the
whole training set) in three formulations, as ratios measured in one process.

- `dense`: each genotype's first layer as a dense `(H, 784)` matrix, one GEMM over
  the images (ignores the graph's sparsity: ~10x the arithmetic);
- `whole_layer`: the sparse graph as one batched product over hidden units, the whole
  hidden layer `(H, images, genotypes)` at once (streams through memory);
- `blocked`: `bbpes.models.sparse_mlp.population_logits`, the same products in cache-
  sized blocks of hidden units (what NNE uses; the baseline of the speed target);
- `blocked_bfloat16`: the blocked pass with its products in bfloat16 (float32 sums): a
  dtype check, not used by NNE (losses differ by ~1e-3 relative; on this project's
  AVX-512-BF16 CPU it was slower than float32).

Also reported: the float32 matmul peak of this machine measured in the same command (`bbpes.bench.roofline`), and
each route's achieved FLOP/s as a fraction of it, counting the useful work only
(`2 c S (m_active_first + H C)` per chunk of `c` genotypes on `S` images). CPU seconds
(all threads, `time.process_time`) sit beside the wall seconds: on a shared machine they
move much less with the load.
"""

from __future__ import annotations

from functools import partial
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
from .roofline import matmul_peak
from .timing import Timer, load_average, time_interleaved


def problem(config: dict[str, Any]):
    """`(net, gene_map, x, y, genotypes)`, the same for the same `config` (seed 0): a
    random sparse MLP of 784 inputs, `hidden` units and `classes` outputs, its gene map
    of `genes` genes, `images` MNIST-like images `x (images, 784)` (about a fifth of
    the pixels ink, the top 4 rows blank) with labels `y (images,)`, and a chunk of
    `chunk` binary genotypes `(chunk, genes)` float32."""
    rng = np.random.default_rng(0)
    n_in, images = 784, config["images"]
    net = random_sparse_mlp(rng, n_in, config["hidden"], config["classes"], 0.1)
    gene_map = random_gene_map(rng, net.n_links, config["genes"], 0.0025, dtype=np.float32)
    x = rng.uniform(size=(images, n_in)) * (rng.uniform(size=(images, n_in)) < 0.2)
    x.reshape(images, 28, 28)[:, :4] = 0.0
    y = rng.integers(0, config["classes"], images)
    genotypes = jnp.asarray(rng.uniform(size=(config["chunk"], config["genes"])) < 0.5, jnp.float32)
    return net, gene_map, x, y, genotypes


def run(config: dict[str, Any], *, timer: Timer = time_interleaved) -> dict[str, Any]:
    """Every route timed together by `timer` (wall and CPU seconds: the mean of
    `repeats` calls after a compiling one), after checking that they agree."""
    with jax.enable_x64(False):
        return _run(config, timer)


def _run(config: dict[str, Any], timer: Timer) -> dict[str, Any]:
    hidden, classes, images, c = (
        config["hidden"],
        config["classes"],
        config["images"],
        config["chunk"],
    )
    net, gene_map, x, y, genotypes = problem(config)
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

    def blocked_pass(genotypes, pixels_all, dtype=None):
        first, output = population_weights(inputs, active.columns(genotypes))
        if dtype is not None:
            first, output = jax.tree.map(lambda a: a.astype(dtype), (first, output))

        def block(total, data):
            pixels, block_labels = data
            logits = population_logits(first, output, pixels)
            loss = cross_entropy(logits, jnp.broadcast_to(block_labels[:, None], logits.shape[:2]))
            return total + loss.sum(0), None

        total, _ = jax.lax.scan(block, jnp.zeros(c), (pixels_all, inputs.labels))
        return total / images

    blocked = jax.jit(lambda g: blocked_pass(g, inputs.pixels))
    # the pixels converted once, as NNE would keep them, not in every call
    low = jax.tree.map(lambda a: a.astype(jnp.bfloat16), inputs.pixels)
    blocked_bfloat16 = partial(jax.jit(lambda g, p: blocked_pass(g, p, jnp.bfloat16)), p=low)

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
    routes = {"dense": dense, "whole_layer": whole_layer, "blocked": blocked}
    for fn in routes.values():
        np.testing.assert_allclose(np.asarray(fn(genotypes)), reference, rtol=2e-3)
    bfloat16_error = float(np.max(np.abs(np.asarray(blocked_bfloat16(genotypes)) / reference - 1)))
    routes["blocked_bfloat16"] = blocked_bfloat16
    timed = timer({name: partial(fn, genotypes) for name, fn in routes.items()}, config["repeats"])
    wall = {name: t.mean for name, t in timed.items()}
    cpu = {name: t.cpu_mean for name, t in timed.items()}
    peak = matmul_peak(config["matmul_size"], config["repeats"] + 1, timer=timer)["flops_per_s"]
    evaluations = c * images
    flops = 2.0 * evaluations * len(inputs.links)  # active first-layer links + H x C outputs
    fastest = min(("blocked", "whole_layer", "dense"), key=wall.get)  # float32 routes
    return {
        "load_average": load_average(),
        "seconds_per_chunk": wall,
        "cpu_seconds_per_chunk": cpu,
        "network_evaluations_per_second": {k: evaluations / s for k, s in wall.items()},
        "speedup_blocked_vs_dense": wall["dense"] / wall["blocked"],
        "speedup_blocked_vs_whole_layer": wall["whole_layer"] / wall["blocked"],
        "speedup_fastest_vs_blocked": wall["blocked"] / wall[fastest],
        "speedup_bfloat16_vs_blocked": wall["blocked"] / wall["blocked_bfloat16"],
        "bfloat16_max_relative_loss_error": bfloat16_error,
        "fastest_route": fastest,
        "seconds_per_generation_of_1000_blocked": wall["blocked"] * 1000 / c,
        "seconds_per_generation_of_1000_fastest": wall[fastest] * 1000 / c,
        "matmul_peak_flops_per_s": peak,
        "useful_flops_per_chunk": flops,
        "fraction_of_peak": {k: flops / s / peak for k, s in wall.items()},
        "active_links": len(inputs.links),
        "links": net.n_links,
        "load_average_end": load_average(),
    }


BENCHMARK = Benchmark(
    name="nne-generation",
    summary="NNE population forward pass: dense vs whole-layer vs cache-blocked sparse (and bfloat16), against the matmul peak",
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
        "matmul_size": 2048,
    },
    quick={"hidden": 200, "images": 200, "chunk": 25, "repeats": 1, "matmul_size": 1024},
)
