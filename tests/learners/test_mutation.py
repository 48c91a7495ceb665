"""Metropolis mutation: the acceptance rule, the two mean-step laws on a quadratic
against the exact gradient, the linear-loss crossover, training, the adaptive variant.

Statistical checks average N independent one-step proposals from the same point (one
population step) and allow Z standard errors of the sample mean, estimated from the
same samples, plus the known deterministic correction of the law where there is one.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes.learners import MetropolisMutation, corresponding_optimizer
from bbpes.learners.mutation import (
    acceptance_probability,
    gd_learning_rate,
    linear_acceptance,
    linear_mean_step,
)
from bbpes.train import train

Z = 5.0  # standard errors allowed: a false failure has probability ~1e-6 per check
CURVATURE = jnp.array([0.5, 1.0, 1.5, 2.0])
CENTER = jnp.array([1.0, -2.0, 0.5, 3.0])


def quadratic(x):
    """L = 1/2 sum_i a_i (x_i - c_i)^2, gradient a (x - c)."""
    return 0.5 * jnp.sum(CURVATURE * (x - CENTER) ** 2)


def one_step_displacements(loss, x, sigma, beta, samples, seed=0):
    """dx of `samples` walkers that all start at x: shape (samples, dim)."""
    learner = MetropolisMutation(loss, sigma, beta, population=samples)
    state, metrics = learner.step(learner.init(x), jax.random.key(seed))
    return np.asarray(learner.params(state) - x), metrics


def projected_mean(dx, direction):
    """Mean of dx . direction over the samples and its standard error."""
    p = dx @ np.asarray(direction)
    return p.mean(), p.std() / math.sqrt(p.size)


def orthogonal_part(dx, unit):
    """Mean of dx with its component along `unit` removed, and the per-component
    standard errors."""
    unit = np.asarray(unit)
    rest = dx - np.outer(dx @ unit, unit)
    return rest.mean(0), rest.std(0) / math.sqrt(dx.shape[0])


def test_acceptance_probability_is_the_metropolis_rule():
    delta = jnp.array([-1.0, 0.0, 0.5, 2.0, jnp.nan, jnp.inf])
    np.testing.assert_allclose(
        acceptance_probability(2.0, delta), [1.0, 1.0, math.exp(-1.0), math.exp(-4.0), 0.0, 0.0]
    )
    np.testing.assert_array_equal(
        acceptance_probability(math.inf, delta), [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    )


@pytest.mark.parametrize("beta, delta", [(2.0, 0.3), (0.5, 1.0), (math.inf, 0.3), (3.0, -0.2)])
def test_accepted_fraction_matches_exp_minus_beta_delta(beta, delta):
    """From x0, every proposal changes this loss by exactly `delta`, so the accepted
    fraction estimates min(1, exp(-beta delta)) with a binomial standard error."""
    x0 = jnp.zeros(3)
    step_loss = lambda x: delta * jnp.any(x != x0)
    samples = 20_000
    dx, metrics = one_step_displacements(step_loss, x0, 0.1, beta, samples)
    moved = np.any(dx != 0, axis=1)
    p = min(1.0, math.exp(-beta * delta))
    se = math.sqrt(max(p * (1 - p), 1e-12) / samples)
    assert abs(moved.mean() - p) <= Z * se + 1e-12
    assert float(metrics["acceptance"]) == pytest.approx(moved.mean())


def test_infinite_beta_never_accepts_an_increase():
    """Every walker's loss is non-increasing step after step, on a rugged loss."""
    rugged = lambda x: jnp.sum(x**2) + 0.3 * jnp.sum(jnp.sin(7.0 * x))
    learner = MetropolisMutation(rugged, 0.3, math.inf, population=256)
    state = learner.init(jnp.full(4, 1.5))
    step, losses = jax.jit(learner.step), jax.jit(jax.vmap(rugged))
    previous = losses(learner.params(state))
    for i in range(40):
        state, _ = step(state, jax.random.key(i))
        current = losses(learner.params(state))
        assert bool(jnp.all(current <= previous))
        previous = current
    assert float(jnp.mean(previous)) < float(rugged(jnp.full(4, 1.5)))


def test_non_finite_proposals_are_rejected():
    half_plane = lambda x: jnp.where(x[0] > 0.0, jnp.nan, jnp.sum(x**2))
    dx, metrics = one_step_displacements(half_plane, jnp.array([0.0, 1.0]), 0.5, 1.0, 4000)
    assert np.all(dx[:, 0] <= 0.0) and np.all(np.isfinite(dx))
    assert 0.2 < float(metrics["acceptance"]) < 0.5


def test_finite_beta_mean_step_is_beta_sigma2_over_2_times_the_gradient():
    """<dx> = -(beta sigma^2 / 2) grad L, with white noise of variance sigma^2.

    z = beta sigma |g| = 0.08 keeps the finite-sigma correction small: on a linear loss the
    prefactor is beta sigma^2 exp(z^2/2) Phi(-z) = (beta sigma^2 / 2)(1 - z sqrt(2/pi) + ...),
    and the curvature term (~ sigma tr(A) / |g| = 1e-4) is smaller still. The tolerance is
    Z standard errors plus that O(z) correction.
    """
    x = jnp.array([3.0, 2.0, -1.0, 0.0])
    g = jax.grad(quadratic)(x)
    norm = float(jnp.linalg.norm(g))
    sigma, z = 1e-4, 0.08
    beta = z / (sigma * norm)
    samples = 400_000
    dx, metrics = one_step_displacements(quadratic, x, sigma, beta, samples)
    unit = g / norm
    along, se = projected_mean(dx, -unit)
    law = gd_learning_rate(beta, sigma) * norm
    assert abs(along - law) <= Z * se + z * math.sqrt(2 / math.pi) * law
    assert Z * se < 0.3 * law  # the check could catch a wrong factor of 2
    rest, rest_se = orthogonal_part(dx, unit)
    assert np.all(np.abs(rest) <= Z * rest_se)
    # white noise: the per-parameter variance is sigma^2 (times the acceptance, 1 - O(z))
    variance = dx.var(0) / sigma**2
    assert np.all(np.abs(variance - 1.0) <= z + Z * math.sqrt(2 / samples))
    accepted = float(linear_acceptance(beta, sigma, norm))  # 1 - z / sqrt(2 pi) + O(z^2)
    assert abs(float(metrics["acceptance"]) - accepted) <= Z * math.sqrt(accepted / samples)


def test_infinite_beta_mean_step_is_normalised_gradient_descent():
    """<dx> = -(sigma / sqrt(2 pi)) grad L / |grad L|, acceptance 1/2.

    sigma tr(A) / |g| ~ 1e-4 bounds the curvature correction, far below Z standard errors.
    """
    x = jnp.array([3.0, 2.0, -1.0, 0.0])
    g = jax.grad(quadratic)(x)
    unit = g / jnp.linalg.norm(g)
    sigma, samples = 1e-4, 200_000
    dx, metrics = one_step_displacements(quadratic, x, sigma, math.inf, samples)
    along, se = projected_mean(dx, -unit)
    law = sigma / math.sqrt(2 * math.pi)
    assert abs(along - law) <= Z * se
    assert Z * se < 0.05 * law
    rest, rest_se = orthogonal_part(dx, unit)
    assert np.all(np.abs(rest) <= Z * rest_se)
    assert abs(float(metrics["acceptance"]) - 0.5) <= Z * math.sqrt(0.25 / samples)


@pytest.mark.parametrize("z", [0.3, 1.0, 3.0])
def test_linear_loss_crossover_between_the_two_laws(z):
    """On L = g.x the mean step is beta sigma^2 |g| exp(z^2/2) Phi(-z) along -g at any z,
    and the acceptance 1/2 + exp(z^2/2) Phi(-z)."""
    g = jnp.array([1.0, -2.0, 2.0])
    norm, sigma = 3.0, 0.01
    beta = z / (sigma * norm)
    samples = 200_000
    dx, metrics = one_step_displacements(
        lambda x: jnp.dot(g, x), jnp.zeros(3), sigma, beta, samples
    )
    along, se = projected_mean(dx, -g / norm)
    assert abs(along - float(linear_mean_step(beta, sigma, norm))) <= Z * se
    expected = float(linear_acceptance(beta, sigma, norm))
    assert abs(float(metrics["acceptance"]) - expected) <= Z * math.sqrt(0.25 / samples)


def test_linear_mean_step_limits():
    sigma, norm = 0.1, 2.0
    tiny_beta = 1e-4 / (sigma * norm)
    assert float(linear_mean_step(tiny_beta, sigma, norm)) == pytest.approx(
        tiny_beta * sigma**2 * norm / 2, rel=1e-3
    )
    assert float(linear_mean_step(1e6, sigma, norm)) == pytest.approx(
        sigma / math.sqrt(2 * math.pi), rel=1e-5
    )
    assert float(linear_mean_step(math.inf, sigma, norm)) == pytest.approx(
        sigma / math.sqrt(2 * math.pi)
    )


@pytest.mark.parametrize("beta", [4.0, math.inf])
def test_corresponding_optimizer_takes_the_law_step(beta):
    sigma, g = 0.1, jnp.array([3.0, -4.0])
    optimizer = corresponding_optimizer(beta, sigma)
    update, _ = optimizer.update(g, optimizer.init(g), g)
    expected = (
        -sigma / math.sqrt(2 * math.pi) * g / 5.0 if math.isinf(beta) else -beta * sigma**2 / 2 * g
    )
    np.testing.assert_allclose(update, expected, rtol=1e-12)


@pytest.mark.parametrize("beta", [50.0, math.inf])
def test_learner_reduces_the_loss_in_the_training_loop(beta):
    learner = MetropolisMutation(quadratic, 0.05, beta, population=32)
    result = train(learner, jnp.zeros(4), jax.random.key(0), steps=300, progress="off")
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < 0.1 * first["loss"]
    assert 0.0 < np.mean([r["acceptance"] for r in result.history]) < 1.0
    assert result.params.shape == (32, 4) and result.stopped is None


def test_same_seed_same_walkers_and_other_seed_other_walkers():
    learner = MetropolisMutation(quadratic, 0.1, 10.0, population=8)
    step = jax.jit(learner.step)

    def run(seed):  # the keys of the training loop: fold_in(key, i) for step i
        state = learner.init(jnp.zeros(4))
        for i in range(20):
            state, _ = step(state, jax.random.fold_in(jax.random.key(seed), i))
        return learner.params(state)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_walkers_are_independent_draws():
    """Walkers from one point take different steps (not one shared proposal)."""
    dx, _ = one_step_displacements(quadratic, jnp.zeros(4), 0.1, 1.0, 64)
    assert len({tuple(row) for row in np.round(dx, 12)}) > 32


def test_adaptive_sigma_follows_the_curvature_of_each_group():
    """Two parameter groups whose curvatures differ by 10^4: the adapted scale of the
    stiff group ends far below that of the soft one (about 100 times)."""
    loss = lambda p: 0.5 * (1e4 * jnp.sum(p["stiff"] ** 2) + jnp.sum(p["soft"] ** 2))
    params = {"stiff": jnp.zeros(3), "soft": jnp.zeros(3)}
    learner = MetropolisMutation(loss, 0.01, 1.0, population=64, adaptive=True, adapt_rate=0.1)
    state = learner.init(params)
    step = jax.jit(learner.step)
    for i in range(400):
        state, metrics = step(state, jax.random.key(i))
    soft, stiff = np.exp(np.asarray(state.log_sigma).mean(0))  # leaves in sorted key order
    assert soft / stiff > 20.0
    assert 0.0 < float(metrics["acceptance"]) < 0.5


def test_adaptive_learner_reduces_the_loss_from_a_bad_sigma():
    learner = MetropolisMutation(
        quadratic, 1e-4, math.inf, population=16, adaptive=True, adapt_rate=0.2
    )
    result = train(learner, jnp.zeros(4), jax.random.key(1), steps=300, progress="off")
    assert result.history[-1]["loss"] < 0.05 * result.history[0]["loss"]
    assert result.history[-1]["sigma"] > 1e-3


def test_gradient_descent_counterpart_matches_the_mean_of_many_walkers_on_a_quadratic():
    """Averaged over R walkers, beta = inf mutation follows normalised GD (optax)."""
    sigma, steps, walkers = 0.01, 100, 2000
    learner = MetropolisMutation(quadratic, sigma, math.inf, population=walkers)
    mean = jnp.mean(
        train(learner, jnp.zeros(4), jax.random.key(2), steps=steps, progress="off").params, 0
    )
    optimizer = corresponding_optimizer(math.inf, sigma)
    x, opt_state = jnp.zeros(4), optimizer.init(jnp.zeros(4))
    for _ in range(steps):
        update, opt_state = optimizer.update(jax.grad(quadratic)(x), opt_state, x)
        x = optax.apply_updates(x, update)
    travelled = float(jnp.linalg.norm(x))
    assert float(jnp.linalg.norm(mean - x)) < 0.05 * travelled


def test_finite_beta_walkers_equilibrate_at_temperature_one_over_beta():
    """The noise term of the finite-beta law: at long times the walkers sample
    exp(-beta L), so on a d-dimensional quadratic <L> = d / (2 beta) (equipartition).
    The standard error comes from the spread of the walkers' time averages."""
    beta, walkers = 10.0, 256
    learner = MetropolisMutation(quadratic, 0.2, beta, population=walkers)
    state, step = learner.init(CENTER), jax.jit(learner.step)
    losses = jax.jit(jax.vmap(quadratic))
    averages = []
    for i in range(400):
        state, _ = step(state, jax.random.key(i))
        if i >= 200:
            averages.append(losses(learner.params(state)))
    per_walker = np.mean(averages, axis=0)
    se = per_walker.std() / math.sqrt(walkers)
    assert abs(per_walker.mean() - CURVATURE.size / (2 * beta)) <= Z * se


def test_one_diverging_walker_does_not_make_the_population_step_non_finite():
    """A walker whose loss is inf on this batch is left out of the loss statistics, so
    the training loop does not reject every walker's move because of it."""

    def loss(params, cliff):
        x = params["x"]
        return jnp.where(x[0] > cliff, jnp.inf, jnp.sum(x**2))

    learner = MetropolisMutation(loss, sigma=0.1, beta=float("inf"), population=3)
    walkers = {"x": jnp.array([[0.5, 0.5], [2.0, 0.0], [0.3, -0.2]])}
    state = learner.init_population(walkers)
    _, metrics = learner.step(state, jax.random.key(0), jnp.array(1.0))
    assert metrics["nonfinite_walkers"] == 1
    assert jnp.isfinite(metrics["loss"])
    assert metrics["loss"] == pytest.approx((0.5 + 0.13) / 2)
