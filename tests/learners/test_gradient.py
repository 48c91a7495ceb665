"""`GradientLearner` reads `(loss, aux)` from its estimator: `has_aux` is said once."""

import jax
import jax.numpy as jnp
import optax
import pytest

from bbpes.estimators import bptt, es
from bbpes.estimators.forward_gradient import forward_gradient
from bbpes.learners import GradientLearner


def aux_loss(params, target):
    value = jnp.sum((params - target) ** 2)
    return value, {"max_error": jnp.max(jnp.abs(params - target))}


@pytest.mark.parametrize(
    "estimator",
    [
        bptt(aux_loss, has_aux=True),
        es(aux_loss, 0.1, 8, has_aux=True),
        forward_gradient(aux_loss, 4, has_aux=True),
    ],
)
def test_aux_given_to_the_estimator_alone_joins_the_metrics(estimator):
    learner = GradientLearner(estimator, optax.adam(0.1))
    target = jnp.array([1.0, -2.0, 0.5])
    _, metrics = learner.step(learner.init(jnp.zeros(3)), jax.random.key(0), target)
    assert float(metrics["max_error"]) == pytest.approx(2.0)
    assert float(metrics["loss"]) == pytest.approx(5.25)


def test_a_has_aux_that_contradicts_the_estimator_is_refused():
    learner = GradientLearner(bptt(lambda p: jnp.sum(p**2)), optax.adam(0.1), has_aux=True)
    with pytest.raises(ValueError, match="leave has_aux out"):
        learner.step(learner.init(jnp.zeros(3)), jax.random.key(0))
    agreeing = GradientLearner(bptt(aux_loss, has_aux=True), optax.adam(0.1), has_aux=True)
    _, metrics = agreeing.step(agreeing.init(jnp.zeros(3)), jax.random.key(0), jnp.ones(3))
    assert "max_error" in metrics
