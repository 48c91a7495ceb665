"""NNE's losses on MNIST against a dense reference: the clipped fitness of a population
of genotypes and the sparse network's test accuracy, each computed independently from
the dense weights `W x` with scipy's log-softmax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax

from bbpes.errors import ConfigError
from bbpes.learners.nne import random_gene_map
from bbpes.models.sparse_mlp import population_inputs, random_sparse_mlp
from bbpes.tasks.mnist import MnistData
from bbpes.tasks.mnist_nne import (
    ClippedFitness,
    DenseSplit,
    ImageBatches,
    accuracy_fn,
    generation_images,
    masked_initial_params,
    masked_logits,
    masked_loss,
    mlp_loss,
)
from bbpes.tasks.mnist_nne_setup import nne_evaluator


def dense_logits(net, weights, x):
    """Logits `(B, C)` from link weights `(m,)`, written out with numpy."""
    w1, w2 = (np.asarray(w, np.float64) for w in net.split(jnp.asarray(weights)))
    return np.maximum(x @ w1.T, 0.0) @ w2


def problem(seed=0, images=12, pixels=20, hidden=7, classes=3, genes=40):
    rng = np.random.default_rng(seed)
    net = random_sparse_mlp(rng, pixels, hidden, classes, 0.4)
    x = rng.random((images, pixels)) * (rng.random((images, pixels)) < 0.7)  # some zero pixels
    y = rng.integers(0, classes, images)
    gene_map = random_gene_map(rng, net.n_links, genes, 0.2)
    return rng, net, x, y, gene_map


def test_clipped_fitness_is_the_mean_clipped_margin_of_each_genotype():
    rng, net, x, y, gene_map = problem()
    inputs = population_inputs(net, x, y, image_block=4, hidden_block=3)
    alpha2 = float(np.log(3) ** 2)
    fitness = ClippedFitness(gene_map.rows(np.asarray(inputs.links)), alpha2)
    genotypes = (rng.random((5, gene_map.n_genes)) < 0.5).astype(np.float64)
    delta, loss = fitness(jnp.asarray(genotypes), inputs)
    for i, genotype in enumerate(genotypes):
        weights = np.asarray(gene_map(jnp.asarray(genotype)))
        ce = -log_softmax(dense_logits(net, weights, x), axis=1)[np.arange(len(y)), y]
        np.testing.assert_allclose(float(loss[i]), ce.mean(), rtol=1e-10)
        np.testing.assert_allclose(float(delta[i]), np.maximum(0.0, alpha2 - ce).mean(), rtol=1e-10)


def test_accuracy_of_a_sparse_network_is_that_of_its_dense_weights():
    rng, net, x, y, _ = problem(seed=1, images=40)
    weights = rng.normal(size=net.n_links)
    expected = np.mean(np.argmax(dense_logits(net, weights, x), 1) == y)
    assert float(accuracy_fn(net, x, y)(jnp.asarray(weights))) == pytest.approx(expected, abs=1e-6)
    assert 0 < expected < 1  # a test that could tell a wrong argmax from a right one


def test_the_sgd_baseline_trains_the_edges_only():
    _, net, x, y, _ = problem(seed=2)
    params = masked_initial_params(net, 0.4, jax.random.key(0))
    mask = np.asarray(net.mask())
    assert np.all(np.asarray(params["w1"])[mask == 0] == 0)
    grads = jax.grad(masked_loss)(params, net.mask(), jnp.asarray(x), jnp.asarray(y))
    assert np.all(np.asarray(grads["w1"])[mask == 0] == 0)  # no gradient off the edges
    # the masked network is the sparse network with the same weights on its edges
    w1 = np.asarray(params["w1"])
    weights = net.join(jnp.asarray(w1), params["w2"])
    np.testing.assert_allclose(
        np.asarray(masked_logits(params, net.mask(), jnp.asarray(x))),
        dense_logits(net, np.asarray(weights), x),
        rtol=1e-10,
    )


def test_nne_and_the_dense_mlp_see_the_same_images_at_every_step():
    """Generation i's fitness of a genotype (on `ImageBatches(i)`) is the dense loss of
    its weights on `DenseSplit.batch(i)`'s images, which are the images
    `generation_images` names: a different image set would give another loss."""
    rng, net, x, y, gene_map = problem(seed=2, images=24)
    inputs = population_inputs(net, x, y, image_block=4, hidden_block=3)
    fitness = ClippedFitness(gene_map.rows(np.asarray(inputs.links)), float(np.log(3) ** 2))
    genotype = (rng.random((1, gene_map.n_genes)) < 0.5).astype(np.float64)
    weights = np.asarray(gene_map(jnp.asarray(genotype[0])))
    nne, dense = ImageBatches(inputs, 8, seed=5), DenseSplit(x, y, x, y, 8, seed=5)
    seen = []
    for i in range(4):  # the 24 images are 3 batches: crosses an epoch
        index = generation_images(i, 24, 8, 5)
        bx, by = dense.batch(i)
        np.testing.assert_array_equal(np.asarray(bx), x[index])
        np.testing.assert_array_equal(np.asarray(by), y[index])
        ce = -log_softmax(dense_logits(net, weights, x[index]), axis=1)[np.arange(8), y[index]]
        _, loss = fitness(jnp.asarray(genotype), *nne(i))
        np.testing.assert_allclose(float(loss[0]), ce.mean(), rtol=1e-10)
        seen.append(index)
    assert sorted(np.concatenate(seen[:3])) == list(range(24))  # one epoch: every image once
    assert not np.array_equal(seen[0], seen[3])  # a fresh permutation in the next epoch


def test_the_whole_set_is_every_image_in_order():
    assert list(generation_images(7, 10, 10, 3)) == list(range(10))


def test_the_dense_mlp_loss_and_accuracy_are_its_logits():
    _, _, x, y, _ = problem(seed=3, images=30)
    task = DenseSplit(x, y, x, y, 10)
    model = task.initial_model(6, 3, jax.random.key(0))
    logits = np.asarray(jax.vmap(model)(jnp.asarray(x)), np.float64)
    ce = -log_softmax(logits, axis=1)[np.arange(len(y)), y]
    assert float(mlp_loss(model, jnp.asarray(x), jnp.asarray(y))) == pytest.approx(ce.mean())
    expected = np.mean(np.argmax(logits, 1) == y)
    assert float(task.evaluate(model)["accuracy"]) == pytest.approx(expected)
    assert len(jax.tree.leaves(model)) == 4  # two layers with biases: dense weights and biases
    with pytest.raises(ConfigError, match="at most the 30 training images"):
        DenseSplit(x, y, x, y, 31)


def test_the_nne_evaluation_reads_the_genotypes_of_p_and_counts_alleles_near_fixation():
    rng, net, x, y, gene_map = problem(seed=2, images=30, genes=8)
    data = MnistData(x[:10], y[:10], x[10:], y[10:], (0, 1, 2), "synthetic", "standard")
    p = jnp.asarray([0.0005, 0.25, 0.5, 0.995, 0.65, 0.15, 0.92, 0.58])
    drawn = jnp.asarray(rng.random((3, 8)) < 0.5, p.dtype)

    def dense_accuracy(genotype):
        weights = np.asarray(gene_map(jnp.asarray(genotype, p.dtype)))
        return np.mean(dense_logits(net, weights, x[10:]).argmax(1) == y[10:])

    out = nne_evaluator(net, gene_map, data, lambda q: drawn)(p)
    assert float(out["accuracy"]) == pytest.approx(dense_accuracy([0, 0, 0, 1, 1, 0, 1, 1]))
    assert float(out["accuracy_mean_weights"]) == pytest.approx(dense_accuracy(p))
    assert out["accuracy_sampled"] == pytest.approx(np.mean([dense_accuracy(g) for g in drawn]))
    # distances from fixation, sorted: 5e-4, 5e-3, 0.08, 0.15, 0.25, 0.35, 0.42, 0.5
    within = {0.001: 1 / 8, 0.01: 2 / 8, 0.1: 3 / 8, 0.2: 4 / 8, 0.3: 5 / 8, 0.4: 6 / 8, 0.5: 1.0}
    for distance, fraction in within.items():
        assert float(out[f"alleles_within_{distance:g}"]) == pytest.approx(fraction), distance
    assert "accuracy_sampled" not in nne_evaluator(net, gene_map, data, None)(p)
