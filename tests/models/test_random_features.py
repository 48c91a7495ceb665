"""The fixed random ReLU layer of the dopaminergic nets, with and without a k-cap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.models.random_features import RandomFeatures, cap_and_rectify, compute_features


def test_kaiming_uniform_weights_and_relu():
    layer = RandomFeatures(784, 500, key=jax.random.key(0))
    w = np.asarray(layer.weight)
    bound = np.sqrt(6 / 784)
    assert w.shape == (500, 784) and np.abs(w).max() <= bound
    assert w.var() == pytest.approx(bound**2 / 3, rel=0.02)
    x = jax.random.uniform(jax.random.key(1), (4, 784))
    np.testing.assert_allclose(layer(x), np.maximum(np.asarray(x) @ w.T, 0), rtol=1e-12)


def test_k_cap_keeps_the_k_most_driven_units():
    layer = RandomFeatures(30, 50, key=jax.random.key(0), k=7)
    x = jax.random.normal(jax.random.key(1), (3, 30))
    out = np.asarray(layer(x))
    drive = np.asarray(x @ layer.weight.T)
    for row, d in zip(out, drive):
        top = np.argsort(d)[-7:]
        assert np.count_nonzero(row) <= 7
        np.testing.assert_allclose(row[top], np.maximum(d[top], 0))
    with pytest.raises(ValueError, match="k-cap"):
        RandomFeatures(30, 5, key=jax.random.key(0), k=6)


def test_features_in_chunks_equal_the_whole():
    layer = RandomFeatures(10, 6, key=jax.random.key(2))
    x = np.asarray(jax.random.uniform(jax.random.key(3), (11, 10)))
    whole = np.asarray(layer(jnp.asarray(x)))
    np.testing.assert_allclose(compute_features(layer, x, chunk=4), whole, rtol=1e-12)
    half = compute_features(layer, x, chunk=4, dtype=np.float16)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, whole, rtol=1e-3, atol=1e-3)


def test_capped_features_in_chunks_equal_the_layer():
    """The host's cap (np.partition) keeps exactly the units the layer's lax.top_k
    keeps, ties included."""
    layer = RandomFeatures(12, 40, key=jax.random.key(4), k=5)
    x = np.asarray(jax.random.normal(jax.random.key(5), (9, 12)))
    whole = np.asarray(layer(jnp.asarray(x)))
    np.testing.assert_allclose(compute_features(layer, x, chunk=4), whole, rtol=1e-12)
    assert np.all(np.count_nonzero(whole, axis=1) <= 5)
    drive = np.array([[3.0, 1.0, 2.0, 2.0, -1.0], [-3.0, -1.0, 0.5, -2.0, -0.5]])
    expected = np.array([[3.0, 0.0, 2.0, 2.0, 0.0], [0.0, 0.0, 0.5, 0.0, 0.0]])
    np.testing.assert_array_equal(cap_and_rectify(drive, 2), expected)
    np.testing.assert_array_equal(cap_and_rectify(drive, 0), np.maximum(drive, 0))
