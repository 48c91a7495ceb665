"""NNE: the weak-selection update (Eq. 3) against a direct computation, Lemma 1, the
weight-generation matrix, and NNE inside the training loop."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.learners.nne import (
    NNE,
    allele_rewards,
    random_gene_map,
    sample_genotypes,
    weak_selection_update,
)


def toy_fitness(genotypes):
    """A nonlinear fitness of a 4-gene genotype, and a loss (per genotype)."""
    v = jnp.array([0.5, -0.2, 0.9, 0.1])
    fitness = jnp.tanh(genotypes @ v) + 0.3 * genotypes[:, 0] * genotypes[:, 2] + 1.0
    return fitness, -fitness


def test_step_is_eq3_on_the_sampled_population_computed_by_hand():
    p = jnp.array([0.3, 0.5, 0.8, 1.0])  # the last allele is fixed: it must not move
    epsilon, population = 0.7, 6
    learner = NNE(lambda x: toy_fitness(x), population, epsilon, chunk=3)
    key = jax.random.key(3)
    state, metrics = learner.step(learner.init(p), key)

    x = np.asarray(sample_genotypes(key, p, population))
    assert x.shape == (6, 4) and set(np.unique(x)) <= {0.0, 1.0}
    delta = np.asarray(toy_fitness(jnp.asarray(x))[0])
    expected = []
    for i in range(4):
        ones = [delta[k] for k in range(population) if x[k, i] == 1]
        zeros = [delta[k] for k in range(population) if x[k, i] == 0]
        f = sum(ones) / len(ones) if ones else None
        f_bar = sum(zeros) / len(zeros) if zeros else None
        if f is None or f_bar is None:
            expected.append(float(p[i]))  # no contrast: unchanged
            continue
        up = float(p[i]) * (1 + epsilon * f)  # Eq. 3: the two alleles' weights, normalised
        down = (1 - float(p[i])) * (1 + epsilon * f_bar)
        expected.append(up / (up + down))
    np.testing.assert_allclose(np.asarray(state.p), expected, rtol=1e-12)
    assert state.p[3] == 1.0 and int(state.generation) == 1
    np.testing.assert_allclose(metrics["loss"], -delta.mean(), rtol=1e-12)


def test_eq3_closed_form_equals_the_normalised_frequencies():
    rng = np.random.default_rng(0)
    p, f, f_bar = rng.uniform(size=5), rng.uniform(-1, 2, 5), rng.uniform(-1, 2, 5)
    eps = 0.3
    got = weak_selection_update(jnp.asarray(p), jnp.asarray(f), jnp.asarray(f_bar), eps)
    up, down = p * (1 + eps * f), (1 - p) * (1 + eps * f_bar)
    np.testing.assert_allclose(got, up / (up + down), rtol=1e-12)


def exact_rewards(p, loss_of):
    """Eqs. 1-2 by enumerating all 2^n genotypes: f(i), f_bar(i) and L(p)."""
    n = len(p)
    genotypes = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
    losses = np.array([loss_of(x) for x in genotypes])
    prob = np.prod(np.where(genotypes == 1, p, 1 - p), axis=1)
    f = np.array([-(prob * losses)[genotypes[:, i] == 1].sum() / p[i] for i in range(n)])
    f_bar = np.array([-(prob * losses)[genotypes[:, i] == 0].sum() / (1 - p[i]) for i in range(n)])
    return f, f_bar, float((prob * losses).sum())


def test_lemma1_reward_difference_is_minus_the_loss_gradient():
    """L(p) = -f_bar - p (f - f_bar) and dL/dp(i) = -(f(i) - f_bar(i)), for a ReLU
    network whose weights are W x (not just a linear model)."""
    n, m = 6, 8
    rng = np.random.default_rng(1)
    W = random_gene_map(rng, m, n, 0.6, dtype=np.float64).dense()
    data = rng.normal(size=(5, 4))
    targets = rng.normal(size=5)

    def loss_of(x):
        w = W @ jnp.asarray(x)
        hidden = jax.nn.relu(data @ w[:4].reshape(4, 1) + w[4:5])
        return jnp.mean((hidden[:, 0] * w[5] + w[6] - targets) ** 2)

    def expected_loss(p):
        genotypes = jnp.array(list(itertools.product([0.0, 1.0], repeat=n)))
        prob = jnp.prod(jnp.where(genotypes == 1, p, 1 - p), axis=1)
        return jnp.sum(prob * jax.vmap(loss_of)(genotypes))

    p = rng.uniform(0.1, 0.9, n)
    f, f_bar, total = exact_rewards(p, lambda x: float(loss_of(x)))
    np.testing.assert_allclose(total, -f_bar - p * (f - f_bar), rtol=1e-10)
    gradient = np.asarray(jax.grad(expected_loss)(jnp.asarray(p)))
    np.testing.assert_allclose(gradient, -(f - f_bar), rtol=1e-8)
    # ... and by central finite differences, independent of autodiff.
    h = 1e-6
    for i in range(n):
        e = np.eye(n)[i] * h
        fd = (float(expected_loss(p + e)) - float(expected_loss(p - e))) / (2 * h)
        assert fd == pytest.approx(-(f[i] - f_bar[i]), rel=1e-6, abs=1e-9)


def test_sampled_rewards_approach_the_exact_ones():
    n = 5
    rng = np.random.default_rng(2)
    v = rng.normal(size=n)

    def loss_of(x):
        return (x @ v - 0.5) ** 2

    p = rng.uniform(0.2, 0.8, n)
    f, f_bar, _ = exact_rewards(p, loss_of)
    x = sample_genotypes(jax.random.key(0), jnp.asarray(p), 200_000)
    sampled_f, sampled_f_bar = allele_rewards(x, -((x @ v - 0.5) ** 2))
    np.testing.assert_allclose(sampled_f - sampled_f_bar, f - f_bar, atol=0.08)


def test_gene_map_density_values_and_products():
    rng = np.random.default_rng(0)
    gene_map = random_gene_map(rng, 300, 200, 0.05, dtype=np.float64)
    W = np.asarray(gene_map.dense())
    assert W.shape == (300, 200)
    assert abs((W != 0).mean() - 0.05) < 0.01
    assert np.abs(W).max() <= 1.0 and W.min() < -0.9 and W.max() > 0.9
    x = (rng.uniform(size=(3, 200)) < 0.5).astype(float)
    np.testing.assert_allclose(gene_map.columns(jnp.asarray(x)), W @ x.T, rtol=1e-12)
    np.testing.assert_allclose(gene_map(jnp.asarray(x[0])), W @ x[0], rtol=1e-12)
    rows = np.array([5, 0, 299, 17])
    np.testing.assert_allclose(gene_map.rows(rows).dense(), W[rows])
    signs = np.asarray(random_gene_map(rng, 50, 40, 0.2, values="sign", scale=3.0).dense())
    assert set(np.unique(signs)) == {-3.0, 0.0, 3.0}


def test_nne_improves_fitness_and_resumes_exactly(cut_and_resumed):
    """A linear target learned by NNE inside `train`; a run killed half way and resumed
    ends where the uninterrupted one does."""
    rng = np.random.default_rng(0)
    m, n = 4, 60
    gene_map = random_gene_map(rng, m, n, 0.3, dtype=np.float64)
    a = jnp.asarray(rng.normal(size=m))

    def fitness(x):
        loss = jnp.sum((gene_map.columns(x).T - a) ** 2, axis=1)
        return -loss, loss

    learner = NNE(fitness, population=40, epsilon=0.01, chunk=20)
    p0 = jnp.full(n, 0.5)

    full, resumed = cut_and_resumed(learner, p0, 30, 15, checkpoint_every=5)
    np.testing.assert_array_equal(np.asarray(resumed.params), np.asarray(full.params))
    loss = lambda p: float(jnp.sum((gene_map(p) - a) ** 2))
    assert loss(full.params) < 0.5 * loss(p0)
