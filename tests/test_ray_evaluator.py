"""ES through a Ray cluster with a plain-Python loss: the same gradient as the JAX
estimator, and training that survives samples that raise, hang, return NaN or kill
their worker."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import ray
from ray import cloudpickle

from bbpes.estimators import es
from bbpes.learners import GradientLearner
from bbpes.ray_es import ray_es
from bbpes.ray_evaluator import RayEvaluator
from bbpes.train import train

PARAMS = {"w": jnp.array([1.0, -0.5, 2.0, 0.3]), "b": jnp.array(0.4)}
# Ray starts its daemons with subprocess (fork, then exec at once): not the fork JAX warns about.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")

DATA = jnp.array([0.5, 0.5, -1.0, 0.0])


def jax_loss(p, data):
    return jnp.sum((p["w"] - data) ** 2) + jnp.sin(p["b"])


def numpy_loss(p, data):
    return float(np.sum((p["w"] - data) ** 2) + np.sin(p["b"]))


class FlakyLoss:
    """`numpy_loss`, except that:

    - about one parameter set in four raises the first time it is seen by any worker
      (a transient error, fixed by a retry; remembered in `markers`, so it does not
      depend on which worker the retry lands on or on the machine's load);
    - perturbations with b > 0.9 return NaN every time (a diverging simulation);
    - the first call after `hang` appears hangs for a minute (stopped by the timeout);
    - the first call after `die` appears kills its worker process.
    """

    def __init__(self, markers: Path):
        self.markers = markers

    def _once(self, name: str) -> bool:
        flag = self.markers / name
        if flag.exists():
            flag.unlink(missing_ok=True)
            return True
        return False

    def _seen(self, name: str) -> bool:
        flag = self.markers / f"seen-{name}"
        if flag.exists():
            return True
        flag.touch()
        return False

    def __call__(self, p, data):
        if self._once("die"):
            os._exit(1)
        if self._once("hang"):
            time.sleep(60)
        digest = hashlib.sha256(np.asarray(p["w"]).tobytes() + np.asarray(p["b"]).tobytes())
        if digest.digest()[0] % 4 == 0 and not self._seen(digest.hexdigest()):
            raise RuntimeError("transient failure")
        if p["b"] > 0.9:
            return float("nan")
        return numpy_loss(p, data)


@pytest.fixture(scope="module")
def cluster():
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # Logical CPUs (Ray's scheduling resource): room for the shared evaluator's two
    # workers and for the others, on a machine of any size.
    with pytest.MonkeyPatch.context() as patch:
        # on the loopback address (Ray turns 127.0.0.1 into the machine's network
        # address unless it is told that no other machine joins)
        patch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
        ray.init(
            address="local",
            num_cpus=6,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def evaluator(cluster):
    with RayEvaluator(numpy_loss, workers=2) as evaluator:
        yield evaluator


@pytest.mark.parametrize(
    "options",
    [{}, {"rank_shaping": True}, {"antithetic": False, "baseline": "center"}],
    ids=["mirrored", "ranks", "unmirrored-center"],
)
def test_gradient_equals_the_in_process_es_gradient(evaluator, options):
    key = jax.random.key(5)
    expected_loss, expected = jax.jit(es(jax_loss, 0.2, 24, **options))(PARAMS, key, DATA)
    assert evaluator.workers == 2
    loss, grads = jax.jit(ray_es(evaluator, 0.2, 24, **options))(PARAMS, key, DATA)
    assert float(loss) == pytest.approx(float(expected_loss), abs=1e-12)
    for name in PARAMS:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-10, atol=1e-12)


MATRIX = {"m": jnp.array([[0.5, -1.0, 0.2], [0.3, 0.8, -0.4]]), "c": jnp.array([0.1, -0.2])}


def jax_matrix_loss(p, data):
    return jnp.sum(jnp.tanh(p["m"] @ data[:3] + p["c"]) ** 2)


def numpy_matrix_loss(p, data):
    return float(np.sum(np.tanh(p["m"] @ data[:3] + p["c"]) ** 2))


def test_low_rank_gradient_equals_the_in_process_one(cluster):
    key = jax.random.key(2)
    expected = jax.jit(es(jax_matrix_loss, 0.2, 12, rank=1))(MATRIX, key, DATA)
    with RayEvaluator(numpy_matrix_loss, workers=1) as evaluator:
        loss, grads = jax.jit(ray_es(evaluator, 0.2, 12, rank=1))(MATRIX, key, DATA)
    assert float(loss) == pytest.approx(float(expected[0]), abs=1e-12)
    for name in MATRIX:
        np.testing.assert_allclose(grads[name], expected[1][name], rtol=1e-10, atol=1e-12)


def test_a_step_where_every_sample_fails_is_nonfinite(cluster):
    """Every perturbed sample fails (the centre does not): NaN loss and gradient, so
    the learner rejects the step."""

    def loss(p, data):
        if abs(float(p["b"]) - 0.4) > 1e-12:
            raise RuntimeError("diverged")
        return numpy_loss(p, data)

    with RayEvaluator(loss, workers=1, retries=0) as evaluator:
        value, grads = ray_es(evaluator, 0.2, 4)(PARAMS, jax.random.key(0), DATA)
    assert np.isnan(float(value)) and all(np.all(np.isnan(g)) for g in jax.tree.leaves(grads))


def test_training_survives_failing_samples(cluster, tmp_path):
    """A run of ES + Adam in which samples raise, hang, return NaN and kill workers."""
    (tmp_path / "hang").touch()
    evaluator = RayEvaluator(FlakyLoss(tmp_path), workers=2, retries=2, timeout=4.0)
    with evaluator:
        learner = GradientLearner(
            ray_es(evaluator, 0.3, 20, has_aux=True), optax.adam(0.1), has_aux=True
        )

        def batch(i):
            if i == 2:
                (tmp_path / "die").touch()
            return (DATA,)

        result = train(learner, PARAMS, jax.random.key(0), steps=8, batch=batch, progress="off")
        steps = result.history
    assert result.stopped is None and len(steps) == 8
    assert all(np.isfinite(r["loss"]) and not r["nonfinite"] for r in steps)
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.5
    assert sum(r["retried"] for r in steps) > 10  # transient errors were retried
    assert sum(r["failed"] for r in steps) > 0  # the NaN region was given up on
    stats = evaluator.stats
    assert stats.timed_out == 1 and stats.workers_replaced == 2  # the hang and the death
    assert stats.evaluated == 8 * 21
    assert not (tmp_path / "hang").exists() and not (tmp_path / "die").exists()


def test_a_sample_that_always_fails_is_nan(cluster):
    def loss(p):
        if p["x"] > 0:
            raise ValueError("no")
        return float(p["x"])

    with RayEvaluator(loss, workers=1, retries=1) as evaluator:
        losses = evaluator.evaluate([{"x": np.array(v)} for v in (-1.0, 1.0, -2.0)])
    np.testing.assert_array_equal(losses, [-1.0, np.nan, -2.0])
    assert evaluator.last.failed == 1 and evaluator.last.retried == 1


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="retries"):
        RayEvaluator(numpy_loss, retries=-1)
    with pytest.raises(ValueError, match="timeout"):
        RayEvaluator(numpy_loss, timeout=0)
