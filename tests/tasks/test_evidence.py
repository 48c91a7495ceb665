"""The evidence-integration task: trial generator, loss (Eq. 12) and decisions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.models.bnn import RecurrentNetwork, WindowReadout, init_weights
from bbpes.neurons import NON_EXPLOSIVE
from bbpes.tasks.evidence import (
    EvidenceTask,
    decisions,
    sample_trials,
    squared_error,
    window_majority_accuracy,
)


def counts_of(tokens: np.ndarray) -> np.ndarray:
    return np.stack([(tokens == k).sum(axis=1) for k in (1, 2, 3)], axis=1)


def test_labels_are_the_strict_majority_type():
    tokens, labels = sample_trials(5000, seed=3)
    assert tokens.shape == (5000, 50) and labels.shape == (5000,)
    assert tokens.min() == 0 and tokens.max() == 3
    counts = counts_of(tokens)
    top = np.sort(counts, axis=1)
    assert np.all(top[:, -1] > top[:, -2]), "a tie was generated"
    np.testing.assert_array_equal(labels, np.argmax(counts, axis=1))
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.all(np.abs(np.bincount(labels) / 5000 - 1 / 3) < 0.03)


def test_trials_are_reproducible_from_seeds():
    a = sample_trials(64, seed=[7, 2, 0, 5])
    b = sample_trials(64, seed=[7, 2, 0, 5])
    c = sample_trials(64, seed=[7, 2, 0, 6])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    t1, t2 = EvidenceTask.from_seed(4), EvidenceTask.from_seed(4)
    np.testing.assert_array_equal(t1.codes, t2.codes)
    assert not np.array_equal(t1.codes, EvidenceTask.from_seed(5).codes)


def test_sampling_probabilities_and_weak_evidence():
    tokens, labels = sample_trials(20_000, seed=0, p_null=0.25, p_favoured=0.4)
    assert np.mean(tokens == 0) == pytest.approx(0.25, abs=0.01)
    # the majority of the type of each input: favoured 0.4, the others 0.175 each
    shares = np.sort(counts_of(tokens) / 50, axis=1).mean(axis=0)
    assert shares[-1] == pytest.approx(0.4, abs=0.02)
    # integration is needed: the end of the stream alone decides far worse
    assert window_majority_accuracy(tokens, labels, 10) < 0.8
    assert window_majority_accuracy(tokens, labels, 50) == 1.0
    with pytest.raises(ValueError, match="bad probabilities"):
        sample_trials(4, 0, p_null=0.7, p_favoured=0.5)


def test_inputs_are_the_codes_of_the_tokens_held_in_order():
    task = EvidenceTask.from_seed(1, input_dim=16, n_inputs=7)
    assert set(np.unique(task.codes)) <= {0.0, 1.0} and task.codes.shape == (4, 16)
    assert len({tuple(row) for row in np.asarray(task.codes)}) == 4
    tokens, _ = task.trials(5, 2)
    x = task.inputs(jnp.asarray(tokens))
    assert x.shape == (7, 5, 16)
    for b in range(5):
        for k in range(7):
            np.testing.assert_array_equal(x[k, b], task.codes[tokens[b, k]])


def test_loss_is_the_windowed_squared_error_of_the_readout_trajectory():
    """Eq. 12 from the window statistics equals the direct mean over the window of
    |W_out T(V) + b - onehot|^2 computed step by step; the decision is the argmax of the
    window mean."""
    task = EvidenceTask.from_seed(0, input_dim=8, n_inputs=4, hold=1.0, window=1.5, dt=0.1)
    net = RecurrentNetwork(NON_EXPLOSIVE, i_app=90.0, current_scale=100.0, dt=0.1)
    w = init_weights(jax.random.key(1), 6, 8, 3, in_scale=2.0, rec_scale=2.0)
    tokens, labels = task.trials(3, 9)
    x = task.inputs(jnp.asarray(tokens))
    state = net.initial_state((3,), 6)
    ys = []
    for k in range(4):
        drive = net.input_current(w, x[k])
        for _ in range(10):
            state, y = net.step(w, state, drive)
            ys.append(y)
    window = jnp.stack(ys[-15:])  # (15, 3, 3)
    target = jax.nn.one_hot(labels, 3)
    direct = jnp.mean(jnp.sum((window - target) ** 2, axis=-1), axis=0)
    readout = task.readout(net, w, jnp.asarray(tokens))
    np.testing.assert_allclose(readout.mean, jnp.mean(window, axis=0), rtol=1e-10)
    np.testing.assert_allclose(squared_error(readout, labels), direct, rtol=1e-10)
    loss = task.loss(net, w, jnp.asarray(tokens), jnp.asarray(labels))
    assert loss == pytest.approx(float(jnp.mean(direct)), rel=1e-10)
    assert task.accuracy(net, w, tokens, labels) == pytest.approx(
        float(np.mean(np.argmax(np.mean(window, axis=0), axis=-1) == labels))
    )


def test_decisions_pick_the_largest_mean_readout():
    readout = WindowReadout(jnp.array([[0.1, 0.9, 0.0], [2.0, -1.0, 1.0]]), jnp.zeros(2))
    np.testing.assert_array_equal(decisions(readout), [1, 0])
    perfect = WindowReadout(jnp.eye(3), jnp.ones(3))
    np.testing.assert_allclose(squared_error(perfect, jnp.arange(3)), 0.0, atol=1e-12)
