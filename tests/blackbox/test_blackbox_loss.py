"""`blackbox_loss`: a plain-Python loss on a local Ray evaluator of 2 workers (bound to
127.0.0.1) as a JAX function: the values of the loss called directly, and one cluster
call per population under vmap, also inside an evosax learner built by `make_learner`."""

from __future__ import annotations

import ipaddress
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import psutil
import pytest
import ray
from ray import cloudpickle

from bbpes.blackbox import blackbox_loss
from bbpes.ray_evaluator import RayEvaluator
from bbpes.signals import LossForms, make_learner

# Ray starts its daemons with subprocess (fork, then exec at once): not the fork JAX warns about.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")

PARAMS = {"w": jnp.array([0.3, -1.0, 2.0]), "b": jnp.array(0.5)}


def numpy_loss(p):
    return float(np.sum((p["w"] - 1.0) ** 2) + np.sin(p["b"]))


class Counting:
    """The evaluator's interface, counting the calls and their population sizes."""

    def __init__(self, evaluator):
        self.evaluator, self.sizes = evaluator, []

    def evaluate(self, population, args=()):
        self.sizes.append(len(population))
        return self.evaluator.evaluate(population, args)

    @property
    def last(self):
        return self.evaluator.last


@pytest.fixture(scope="module")
def evaluator():
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with RayEvaluator(numpy_loss, workers=2, init_options={"log_to_driver": False}) as ev:
        yield ev


def direct(population):
    leaves = {k: np.asarray(v) for k, v in population.items()}
    n = leaves["w"].shape[0]
    return np.asarray([numpy_loss({k: v[i] for k, v in leaves.items()}) for i in range(n)])


def test_a_local_evaluator_binds_the_loopback_address(evaluator):
    assert evaluator._owns_ray  # it started the local Ray itself
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    listening = set()
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:  # ended meanwhile
            continue
        listening |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    assert listening and all(_loopback(ip) for ip in listening), listening


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback  # ::ffff:127.0.0.1


def test_values_equal_the_loss_called_directly_one_call_per_population(evaluator):
    counting = Counting(evaluator)
    loss = blackbox_loss(counting)
    assert float(jax.jit(loss)(PARAMS)) == pytest.approx(numpy_loss(PARAMS), rel=1e-6)
    assert counting.sizes == [1]

    key = jax.random.key(0)
    population = {
        "w": PARAMS["w"] + jax.random.normal(key, (7, 3)),
        "b": PARAMS["b"] + jnp.linspace(-1.0, 1.0, 7),
    }
    values = jax.jit(jax.vmap(loss))(population)
    assert values.shape == (7,) and values.dtype == PARAMS["w"].dtype
    np.testing.assert_allclose(values, direct(population), rtol=1e-6)
    assert counting.sizes == [1, 7]  # the whole population in one cluster call

    grid = jax.tree.map(lambda x: x[:6].reshape(2, 3, *x.shape[1:]), population)
    nested = jax.vmap(jax.vmap(loss))(grid)
    assert nested.shape == (2, 3)
    np.testing.assert_allclose(nested.reshape(-1), direct(population)[:6], rtol=1e-6)
    assert counting.sizes == [1, 7, 6]  # nested vmaps: still one call


def test_an_evosax_learner_trains_on_it_one_call_per_generation(evaluator):
    counting = Counting(evaluator)
    forms = LossForms(loss=blackbox_loss(counting))
    learner = make_learner("evosax:CMA_ES", forms, optax.adam(0.1), {"samples": 6, "sigma": 0.5})
    state = learner.init(PARAMS)
    step = jax.jit(learner.step)
    for i in range(2):
        state, metrics = step(state, jax.random.key(i))
    assert counting.sizes == [6, 6]
    assert np.isfinite(float(metrics["loss"]))
