"""The dopamine rule (section 3.2): both readings against a direct computation, one
example at a time, and what each does to the correct output."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.learners.dopamine import Dopamine, plasticity_gate


def printed_formula(loss, error_squared, epsilon0):
    """The paper's displayed ratio, evaluated where it is defined."""
    a, b = 0.25 - error_squared, loss - epsilon0
    return np.maximum(0, a) * np.maximum(0, b) / (a * b)


def test_formula_gate_is_the_printed_ratio():
    error_squared = np.array([0.01, 0.2, 0.3, 0.9])
    for loss in (0.2, 0.7, 0.8, 3.0):
        got = plasticity_gate("formula", jnp.asarray(loss), jnp.asarray(error_squared), 0.75)
        np.testing.assert_array_equal(got, printed_formula(loss, error_squared, 0.75))


def test_prose_gate_rewards_and_punishes_only_after_a_good_example():
    error_squared = jnp.array([0.01, 0.2, 0.3, 0.9])
    good = plasticity_gate("prose", jnp.asarray(0.5), error_squared, 0.75)
    np.testing.assert_allclose(good, 0.25 - np.asarray(error_squared))
    assert good[0] > 0 and good[3] < 0
    bad = plasticity_gate("prose", jnp.asarray(1.0), error_squared, 0.75)
    np.testing.assert_array_equal(bad, 0.0)
    with pytest.raises(ValueError, match="unknown rule"):
        plasticity_gate("other", jnp.asarray(1.0), error_squared, 0.75)


@pytest.mark.parametrize("rule", ["formula", "prose"])
@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_one_example_by_hand(rule, direction):
    rng = np.random.default_rng(0)
    w = rng.normal(scale=2.0, size=(5, 3))
    features = np.array([0.0, 1.3, 0.0, 0.2, 2.0])
    learner = Dopamine(rule, direction, epsilon0=0.75, epsilon1=0.1)
    for label in range(3):  # some labels give a good example, some a bad one
        logits = features @ w
        z = np.exp(logits - logits.max())
        z /= z.sum()
        loss = -np.log(z[label])
        err2 = (z - np.eye(3)[label]) ** 2
        if rule == "formula":
            gate = ((0.25 - err2 > 0) & (loss > 0.75)).astype(float)
        else:
            gate = (0.25 - err2) * (loss <= 0.75)
        sign = 1 if direction == "increase" else -1
        expected = w + sign * 0.1 * np.outer(features > 0, gate)
        got, metrics = learner.update(jnp.asarray(w), jnp.asarray(features), jnp.asarray(label))
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        assert metrics["loss"] == pytest.approx(loss)


def test_a_step_applies_the_rule_example_by_example():
    rng = np.random.default_rng(1)
    w0 = jnp.asarray(rng.normal(size=(6, 4)))
    features = jnp.asarray(np.maximum(rng.normal(size=(5, 6)), 0))
    labels = jnp.asarray(rng.integers(0, 4, 5))
    learner = Dopamine("formula", "decrease", epsilon1=0.3)
    state, metrics = learner.step(learner.init(w0), jax.random.key(0), features, labels)
    w = w0
    for f, y in zip(features, labels):
        w, _ = learner.update(w, f, y)
    np.testing.assert_allclose(state.params, w, rtol=1e-12)
    assert int(state.examples) == 5 and set(metrics) >= {"loss", "updated_fraction"}


def label_margin(w, features, label):
    logits = features @ w
    return float(logits[label] - jnp.delete(logits, label).mean())


def test_the_printed_formula_pushes_the_correct_output_down():
    """Why the formula as printed cannot learn: on a misclassified example it raises
    the links to the quiet wrong outputs, never to the correct one, so the correct
    logit falls relative to the others; with the opposite sign it rises."""
    w = jnp.zeros((3, 4)).at[:, 2].set(1.0)  # output 2 dominates
    features, label = jnp.array([1.0, 0.5, 0.0]), jnp.asarray(0)
    before = label_margin(w, features, label)
    up, _ = Dopamine("formula", "increase", epsilon1=0.1).update(w, features, label)
    down, _ = Dopamine("formula", "decrease", epsilon1=0.1).update(w, features, label)
    assert label_margin(up, features, label) < before < label_margin(down, features, label)


def test_the_prose_reading_never_fires_from_an_uninformed_start():
    """With near-uniform outputs the loss is about log(10) > eps0 = 0.75."""
    w = jnp.zeros((8, 10))
    features = jnp.abs(jax.random.normal(jax.random.key(0), (20, 8)))
    labels = jnp.arange(20) % 10
    learner = Dopamine("prose", "increase")
    state, metrics = learner.step(learner.init(w), jax.random.key(0), features, labels)
    assert metrics["updated_fraction"] == 0 and jnp.all(state.params == w)
