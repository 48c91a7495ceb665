"""The dopamine rule (section 3.2): every reading against numbers worked out by hand
from the paper's sentences on one small example, one example at a time, and what each
does to the correct output."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.learners.dopamine import RULES, Dopamine, plasticity_factor

# Three hidden units with activity (1, 0, 2): units 0 and 2 fire, summed activity 3.
# Row 0 of the weights holds log(0.6, 0.3, 0.1), so the softmax output is exactly
# z = (0.6, 0.3, 0.1) and the prediction is class 0.
FEATURES = np.array([1.0, 0.0, 2.0])
FIRED = np.array([1.0, 0.0, 1.0])
W = np.zeros((3, 3))
W[0] = np.log([0.6, 0.3, 0.1])

# By hand, for label 0 / 1 / 2:
#   L = -log z_label = 0.511 (good, <= 0.75) / 1.204 (bad) / 2.303 (bad)
#   err = z - l = (-0.4, 0.3, 0.1) / (0.6, -0.7, 0.1) / (0.6, 0.3, -0.9)
#   1/4 - err^2 = (0.09, 0.16, 0.24) / (-0.11, -0.24, 0.24) / (-0.11, 0.16, -0.56)
#   square error of the example, sum err^2 = 0.26 / 0.86 / 1.26
# and the factor g_j of each output that each reading's sentence gives:
EXPECTED = {
    # [1/4 - err_j^2 > 0] [L > eps0]
    "formula": [(0, 0, 0), (0, 0, 1), (0, 1, 0)],
    # (1/4 - err_j^2) on a good example only
    "prose": [(0.09, 0.16, 0.24), (0, 0, 0), (0, 0, 0)],
    # (1/4 - err_j^2) where err_j^2 <= eps0 = 0.75 (label 2: 0.81 is over)
    "prose_output_loss": [(0.09, 0.16, 0.24), (-0.11, -0.24, 0.24), (-0.11, 0.16, 0)],
    # (1/4 - err_j^2) when the prediction (class 0) is the label
    "prose_correct": [(0.09, 0.16, 0.24), (0, 0, 0), (0, 0, 0)],
    # only the predicted output 0, by 1/4 - the example's square error
    "winner": [(-0.01, 0, 0), (-0.61, 0, 0), (-1.01, 0, 0)],
    # only the predicted output 0, by its own 1/4 - err_0^2
    "winner_output_error": [(0.09, 0, 0), (-0.11, 0, 0), (-0.11, 0, 0)],
    # only outputs with z_j > 1/2 (output 0), by 1/4 - err_j^2
    "both_fired": [(0.09, 0, 0), (-0.11, 0, 0), (-0.11, 0, 0)],
    # (1/4 - err_j^2) times +1 for output 0 (z > 1/2), -1 for the others
    "reward_modulated": [(0.09, -0.16, -0.24), (-0.11, 0.24, -0.24), (-0.11, -0.16, 0.56)],
    # -sign(err_j) on a bad example
    "sign": [(0, 0, 0), (-1, 1, -1), (-1, -1, 1)],
}


def test_every_reading_has_hand_computed_numbers():
    assert set(EXPECTED) == set(RULES)


@pytest.mark.parametrize("rule", RULES)
def test_factor_by_hand(rule):
    logits = jnp.asarray(FEATURES @ W)
    for label, expected in enumerate(EXPECTED[rule]):
        got = plasticity_factor(rule, logits, jnp.asarray(label), 0.75)
        np.testing.assert_allclose(got, expected, atol=1e-12, err_msg=f"label {label}")


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_update_by_hand(rule, direction):
    """dw = +-eps1 on every fired link into output j, times g_j; the normalised step
    is eps1 / 3 (the summed activity)."""
    sign = 1.0 if direction == "increase" else -1.0
    for step_unit, step in (("link", 0.1), ("logit", 0.1 / 3)):
        learner = Dopamine(rule, direction, 0.75, 0.1, step_unit)
        for label, g in enumerate(EXPECTED[rule]):
            got, metrics = learner.update(jnp.asarray(W), jnp.asarray(FEATURES), jnp.asarray(label))
            expected = W + sign * step * np.outer(FIRED, g)
            np.testing.assert_allclose(got, expected, atol=1e-12)
            assert metrics["loss"] == pytest.approx([0.5108256, 1.2039728, 2.3025851][label])
            assert metrics["updated"] == (np.any(np.asarray(g) != 0))


def test_the_logit_step_moves_each_logit_by_eps1_times_its_factor():
    learner = Dopamine("sign", "increase", 0.75, 0.5, "logit")
    features = jnp.array([0.3, 0.0, 1.7, 4.0])
    w = jax.random.normal(jax.random.key(0), (4, 5))
    label = jnp.argmin(features @ w)  # a bad example
    g = plasticity_factor("sign", features @ w, label, 0.75)
    new, _ = learner.update(w, features, label)
    np.testing.assert_allclose(features @ new - features @ w, 0.5 * g, rtol=1e-12)
    assert np.count_nonzero(g) == 5


def test_printed_ratio_is_the_formula_where_it_is_defined():
    """The displayed ratio max(0,a) max(0,b) / (a b), a = 1/4 - err_j^2, b = L - eps0,
    evaluated directly, on softmax outputs of several confidences and labels."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        logits = rng.normal(scale=2.0, size=4)
        label = int(rng.integers(4))
        z = np.exp(logits) / np.exp(logits).sum()
        a = 0.25 - (z - np.eye(4)[label]) ** 2
        b = -np.log(z[label]) - 0.75
        ratio = np.maximum(0, a) * np.maximum(0, b) / (a * b)
        got = plasticity_factor("formula", jnp.asarray(logits), jnp.asarray(label), 0.75)
        np.testing.assert_array_equal(got, ratio)
    with pytest.raises(ValueError, match="unknown rule"):
        plasticity_factor("other", jnp.asarray(logits), jnp.asarray(0), 0.75)
    with pytest.raises(ValueError, match="step_unit"):
        Dopamine("sign", step_unit="per_link")


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
    assert not np.allclose(state.params, w0)


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


@pytest.mark.parametrize("rule", ["prose", "both_fired"])
def test_readings_that_never_fire_from_an_uninformed_start(rule):
    """With near-uniform outputs the loss is about log(10) > eps0 = 0.75 and no output
    passes 1/2: neither the prose's gate nor an output's firing ever opens."""
    w = jnp.zeros((8, 10))
    features = jnp.abs(jax.random.normal(jax.random.key(0), (20, 8)))
    labels = jnp.arange(20) % 10
    learner = Dopamine(rule, "increase")
    state, metrics = learner.step(learner.init(w), jax.random.key(0), features, labels)
    assert metrics["updated_fraction"] == 0 and jnp.all(state.params == w)


@pytest.mark.parametrize("rule", ["sign", "reward_modulated"])
def test_readings_that_learn_from_an_uninformed_start(rule):
    """As printed ("increase"), on a bad example from uniform outputs, the correct
    output's margin grows."""
    w = jnp.zeros((3, 4))
    features, label = jnp.array([1.0, 0.5, 0.0]), jnp.asarray(1)
    new, _ = Dopamine(rule, "increase", epsilon1=0.1).update(w, features, label)
    assert label_margin(new, features, label) > label_margin(w, features, label)
