"""The linear readout on fixed features: minibatches that depend on the step only and
cover each epoch once, the chunked accuracy equal to the whole one, the loss equal to
scipy's cross-entropy."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax

from bbpes.tasks.readout import FeatureReadout, readout_accuracy, readout_loss


@pytest.fixture
def task():
    rng = np.random.default_rng(0)
    return FeatureReadout(
        rng.normal(size=(23, 6)),
        rng.integers(0, 4, 23),
        rng.normal(size=(17, 6)),
        rng.integers(0, 4, 17),
        batch_size=5,
        seed=3,
    )


def test_minibatches_cover_each_epoch_once_and_repeat_for_a_step(task):
    assert task.steps_per_epoch == 4  # 23 // 5, the partial batch dropped
    seen = np.concatenate([np.asarray(task.batch(i)[0]) for i in range(4)])
    rows = {tuple(r) for r in np.round(seen, 12)}
    assert len(rows) == 20 and rows <= {tuple(r) for r in np.round(task.train_features, 12)}
    np.testing.assert_array_equal(task.batch(2)[0], task.batch(2)[0])
    assert not np.array_equal(task.batch(0)[0], task.batch(4)[0])  # a new epoch reshuffles


def test_accuracy_in_chunks_is_the_whole_accuracy(task):
    w = np.random.default_rng(1).normal(size=(6, 4))
    expected = np.mean(np.argmax(task.test_features @ w, 1) == task.test_labels)
    for chunk in (1, 4, 500):
        assert readout_accuracy(jnp.asarray(w), task.test_features, task.test_labels, chunk) == (
            pytest.approx(expected, abs=1e-12)
        )
    assert task.evaluate(jnp.asarray(w))["accuracy"] == pytest.approx(expected, abs=1e-12)


def test_loss_is_the_mean_cross_entropy(task):
    w = np.random.default_rng(2).normal(size=(6, 4))
    f, y = task.train_features, task.train_labels
    expected = -log_softmax(f @ w, axis=1)[np.arange(len(y)), y].mean()
    assert float(readout_loss(jnp.asarray(w), jnp.asarray(f), jnp.asarray(y))) == pytest.approx(
        expected, rel=1e-10
    )
