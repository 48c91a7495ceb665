"""Low-rank ES (EGGROLL, Sarkar et al. 2025): matrix leaves perturbed by
sigma A B^T / sqrt(r), evaluated dense or as `LowRank` factors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.estimators import es, low_rank
from bbpes.estimators.es import Population
from bbpes.estimators.low_rank import LowRank

C = jnp.linspace(0.5, 2.0, 24).reshape(6, 4)
T = jnp.sin(jnp.arange(24.0)).reshape(6, 4)
D = jnp.array([1.0, 3.0, 0.5])


def matrix_quadratic(p):
    """A quadratic in a (6, 4) matrix and a (3,) vector (not separable in W: the
    cross term couples rows)."""
    cross = 0.3 * jnp.sum(p["W"][0] * p["W"][1])
    return 0.5 * jnp.sum(C * (p["W"] - T) ** 2) + cross + 0.5 * jnp.sum(D * (p["v"] - 1.0) ** 2)


PARAMS = {"W": jnp.cos(jnp.arange(24.0)).reshape(6, 4), "v": jnp.array([0.2, -0.4, 1.5])}


def mean_estimate(estimator, keys: int, seed: int = 0):
    """The estimate averaged over `keys` independent keys (vmapped)."""
    keys = jax.random.split(jax.random.key(seed), keys)
    _, grads = jax.jit(jax.vmap(estimator, in_axes=(None, 0)))(PARAMS, keys)
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)


def relative_error(grads, exact):
    flat = lambda t: jnp.concatenate([t["W"].ravel(), t["v"]])
    return float(jnp.linalg.norm(flat(grads) - flat(exact)) / jnp.linalg.norm(flat(exact)))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"antithetic": False},
        {"sigma": {"W": 0.2, "v": 0.05}, "chunk_size": 7},
        {"structured": True},
    ],
    ids=["mirrored", "unmirrored-mean", "per-leaf-sigma-chunked", "structured"],
)
def test_low_rank_estimate_is_unbiased_on_a_matrix_quadratic(options):
    """On a quadratic the smoothed gradient equals the true one (E = A B^T / sqrt(r)
    has the identity covariance and odd moments zero), so the mean estimate over many
    keys approaches the exact gradient, and the error falls with the samples used. A
    missing 1 / sqrt(r) would leave a 73 % error at r = 3."""
    options = dict(options)
    sigma = options.pop("sigma", 0.1)
    exact = jax.grad(matrix_quadratic)(PARAMS)
    loss = matrix_quadratic
    if options.get("structured"):
        loss = lambda p: matrix_quadratic({"W": p["W"].dense(), "v": p["v"]})
    estimator = es(loss, sigma, 100, rank=3, **options)
    few = relative_error(mean_estimate(estimator, 4, seed=1), exact)
    many = relative_error(mean_estimate(estimator, 1000, seed=2), exact)
    assert many < 0.05, (few, many)
    assert few > 5 * many  # 250x the samples: sqrt(250) ~ 16 in expectation


def test_rank_shaped_low_rank_estimate_points_along_the_gradient():
    exact = jax.grad(matrix_quadratic)(PARAMS)
    grads = mean_estimate(es(matrix_quadratic, 0.05, 100, rank=2, rank_shaping=True), 100)
    flat = lambda t: jnp.concatenate([t["W"].ravel(), t["v"]])
    cosine = flat(grads) @ flat(exact) / jnp.linalg.norm(flat(grads)) / jnp.linalg.norm(flat(exact))
    assert cosine > 0.95


def test_a_member_is_a_mirrored_rank_r_perturbation_of_unit_variance():
    params = {"W": jnp.zeros((60, 50)), "v": jnp.zeros(40)}
    population = Population(params, 0.3, jax.random.key(3), 80, rank=4)
    assert population.dim == (60 + 50) * 4 + 40
    first, second = population.member(jnp.array(0)), population.member(jnp.array(1))
    assert np.linalg.matrix_rank(np.asarray(first["W"])) == 4
    many = jax.vmap(lambda i: population.member(i)["W"])(jnp.arange(0, 80, 2)) / 0.3
    assert float(jnp.mean(many**2)) == pytest.approx(1.0, rel=0.05)  # E's variance is 1
    np.testing.assert_array_equal(second["W"], -first["W"])
    np.testing.assert_array_equal(second["v"], -first["v"])
    center = population.member(jnp.array(80))  # index S: the centre, exactly params
    for name in params:
        np.testing.assert_array_equal(center[name], params[name])
    structured = population.member(jnp.array(1), structured=True)
    assert isinstance(structured["W"], LowRank) and structured["W"].a.shape == (60, 4)
    np.testing.assert_allclose(structured["W"].dense(), second["W"], rtol=1e-12)


def mlp(p, x):
    """A two-layer network that applies its matrices with `low_rank.apply`."""
    h = jnp.tanh(low_rank.apply(p["W1"], x) + p["b1"])
    return jnp.mean((low_rank.apply(p["W2"], h) - 1.0) ** 2)


MLP = {
    "W1": 0.5 * jnp.cos(jnp.arange(28.0)).reshape(7, 4),
    "b1": jnp.linspace(-0.2, 0.2, 7),
    "W2": 0.3 * jnp.sin(jnp.arange(14.0)).reshape(2, 7),
}
X = jnp.linspace(-1.0, 1.0, 20).reshape(5, 4)


def test_structured_and_dense_evaluation_give_the_same_losses():
    seen = []

    def loss(p, x):
        seen.append(isinstance(p["W1"], LowRank))
        return mlp(p, x)

    population = Population(MLP, 0.2, jax.random.key(5), 6, rank=2)
    members = jnp.arange(7)  # the six samples and the centre

    def losses(structured):
        return jax.jit(jax.vmap(lambda i: loss(population.member(i, structured), X)))(members)

    np.testing.assert_allclose(losses(True), losses(False), rtol=1e-12)
    assert seen == [True, False]  # the loss was given factors, then dense matrices
    assert float(losses(True)[-1]) == pytest.approx(float(mlp(MLP, X)), rel=1e-12)
    for options in ({}, {"chunk_size": 3, "rank_shaping": True}):
        dense = jax.jit(es(mlp, 0.2, 6, rank=2, **options))(MLP, jax.random.key(5), X)
        factored = jax.jit(es(loss, 0.2, 6, rank=2, structured=True, **options))(
            MLP, jax.random.key(5), X
        )
        assert float(factored[0]) == pytest.approx(float(dense[0]), rel=1e-12)
        for name in MLP:
            np.testing.assert_allclose(factored[1][name], dense[1][name], rtol=1e-10)


def shapes_in(jaxpr) -> set[tuple[int, ...]]:
    """Every intermediate array shape in `jaxpr` and the jaxprs nested in it."""
    found = set()
    for eqn in jaxpr.eqns:
        found.update(tuple(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape"))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= shapes_in(inner)
    return found


def test_structured_population_never_forms_a_matrix_per_member():
    """Structured: no `(members, 7, 4)` array anywhere, neither to evaluate the
    population nor to form the gradient; the dense path does form one (so the check
    can fail)."""

    def batched_matrices(structured):
        estimator = es(mlp, 0.2, 6, rank=2, structured=structured)
        jaxpr = jax.make_jaxpr(estimator)(MLP, jax.random.key(0), X).jaxpr
        return {s for s in shapes_in(jaxpr) if len(s) == 3 and s[1:] == (7, 4)}

    assert batched_matrices(True) == set()
    assert batched_matrices(False)


def test_bad_low_rank_settings_are_config_errors():
    for rank in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="rank"):
            es(mlp, 0.1, 4, rank=rank)
    with pytest.raises(ConfigError, match="structured"):
        es(mlp, 0.1, 4, structured=True)
    per_entry = {"W1": jnp.full((7, 4), 0.1), "b1": 0.1, "W2": 0.1}
    with pytest.raises(ConfigError, match="scalar sigma"):
        es(mlp, per_entry, 4, rank=2)(MLP, jax.random.key(0), X)
