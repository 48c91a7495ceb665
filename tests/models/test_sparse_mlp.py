"""The sparse NNE network: link numbering, and the population forward pass against a
plain dense forward pass of each network."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.models.sparse_mlp import (
    cross_entropy,
    population_inputs,
    population_logits,
    population_weights,
    random_sparse_mlp,
)


@pytest.fixture
def net():
    return random_sparse_mlp(np.random.default_rng(0), 12, 7, 3, 0.4)


def test_links_split_and_join(net):
    rng = np.random.default_rng(1)
    adjacency = np.asarray(net.mask()) == 1
    assert net.n_first == adjacency.sum()
    assert net.n_links == net.n_first + 7 * 3
    weights = jnp.asarray(rng.normal(size=net.n_links))
    w1, w2 = net.split(weights)
    assert np.all(np.asarray(w1)[~adjacency] == 0)
    np.testing.assert_array_equal(net.join(w1, w2), weights)
    x = jnp.asarray(rng.uniform(size=(4, 12)))
    expected = np.maximum(np.asarray(x) @ np.asarray(w1).T, 0) @ np.asarray(w2)
    np.testing.assert_allclose(net.logits(weights, x), expected, rtol=1e-12)


@pytest.mark.parametrize("image_block, hidden_block, buckets", [(6, 1, 1), (3, 2, 3), (2, 4, 8)])
def test_population_logits_equal_each_network_alone(net, image_block, hidden_block, buckets):
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(6, 12)) * (rng.uniform(size=(6, 12)) < 0.6)
    x[:, 3] = 0.0  # a pixel that is zero in every image: its links are left out
    y = rng.integers(0, 3, 6)
    inputs = population_inputs(
        net, x, y, image_block=image_block, hidden_block=hidden_block, buckets=buckets
    )
    _, sources = net.edges()
    active = np.any(x != 0, axis=0)[sources]
    assert not active.all() and len(inputs.links) == active.sum() + 7 * 3
    weights = rng.normal(size=(5, net.n_links))  # five networks
    first, output = population_weights(inputs, jnp.asarray(weights[:, np.asarray(inputs.links)].T))
    blocks = [tuple(p[b] for p in inputs.pixels) for b in range(6 // image_block)]
    got = np.concatenate([np.asarray(population_logits(first, output, p)) for p in blocks])
    assert got.shape == (6, 5, 3)
    for k in range(5):
        np.testing.assert_allclose(got[:, k], net.logits(jnp.asarray(weights[k]), x), rtol=1e-10)


def test_cross_entropy():
    logits = jnp.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    expected = -np.log(np.exp([2.0, 0.0]) / np.exp(logits).sum(1))
    np.testing.assert_allclose(cross_entropy(logits, jnp.array([1, 2])), expected, rtol=1e-12)


def test_bfloat16_products_are_summed_in_float32(net):
    """bfloat16 pixels and weights: each product is exact in float32, so logits summed in
    float32 equal the float64 logits of the rounded inputs to float32 rounding (a
    bfloat16 sum would be off by ~1e-3)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(4, 12)) * (rng.uniform(size=(4, 12)) < 0.6)
    inputs = population_inputs(net, x, rng.integers(0, 3, 4), image_block=4, hidden_block=2)
    weights = jnp.asarray(rng.normal(size=(len(inputs.links), 3)))
    first, output = population_weights(inputs, weights)
    pixels = tuple(p[0] for p in inputs.pixels)
    low = [tuple(a.astype(jnp.bfloat16) for a in part) for part in (first, output, pixels)]
    got = population_logits(*low)
    assert got.dtype == jnp.float32
    exact = population_logits(*[tuple(a.astype(jnp.float64) for a in part) for part in low])
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-6)
