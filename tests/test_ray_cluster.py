"""The Ray evaluator on a cluster of several nodes on this machine (Ray's own test
cluster, `ray.cluster_utils.Cluster`, every server on 127.0.0.1): a black-box ES fit
whose second node is killed mid-step and a third added later ends with the numbers of
an uninterrupted run, each step evaluated once, and the new node used."""

from __future__ import annotations

import ipaddress
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import psutil
import pytest
import ray
from ray import cloudpickle

from bbpes.learners import GradientLearner
from bbpes.ray_es import ray_es
from bbpes.ray_evaluator import EvaluationStats
from bbpes.train import train

# Ray starts its daemons with subprocess (fork, then exec at once): not the fork JAX warns about.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")

PARAMS = {"w": jnp.array([1.0, -0.5, 2.0, 0.3]), "b": jnp.array(0.4)}
DATA = jnp.array([0.5, 0.5, -1.0, 0.0])
SAMPLES = 8  # mirrored: 9 evaluations a step with the centre
LOOPBACK = "127.0.0.1"
# The dead node is found within about a second (Ray's default is about half a minute).
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 300,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


class SlowLoss:
    """A deterministic black-box loss (numpy) that takes `delay` seconds, like a small
    simulation."""

    def __init__(self, delay: float):
        self.delay = delay

    def __call__(self, p, data):
        time.sleep(self.delay)
        return float(np.sum((p["w"] - data) ** 2) + np.sin(p["b"]))


class InProcess:
    """The evaluator's interface, every sample evaluated here one after another: the
    uninterrupted reference."""

    def __init__(self, loss):
        self.loss, self.last = loss, EvaluationStats()

    def evaluate(self, population, args=()):
        return np.asarray([self.loss(p, *args) for p in population], dtype=float)


@pytest.fixture
def cluster(monkeypatch):
    """A head node (1 CPU) and a second node (1 CPU), the driver connected to the head."""
    from ray.cluster_utils import Cluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # Ray turns 127.0.0.1 in a cluster's address into this machine's network address
    # (so that other machines could join); on one machine everything stays on loopback.
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    head = {
        "num_cpus": 1,
        "node_ip_address": LOOPBACK,
        "include_dashboard": False,
        "_system_config": FAST_HEALTH_CHECKS,
    }
    nodes = Cluster(initialize_head=True, head_node_args=head)
    nodes.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    ray.init(address=nodes.address, _node_ip_address=LOOPBACK, log_to_driver=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()
    # the cluster wrote its address where a plain `ray.init()` looks first: remove it,
    # so that later tests (in this worker) start their own local Ray
    Path(ray._private.utils.get_ray_address_file(None)).unlink(missing_ok=True)


def _listening_addresses() -> set[str]:
    """The addresses on which this process and its children (the cluster's servers and
    workers) accept connections."""
    processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
    found = set()
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:  # ended meanwhile
            continue
        found |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    return found


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback  # ::ffff:127.0.0.1


def _fit(evaluator, steps: int, batch=None):
    learner = GradientLearner(
        ray_es(evaluator, 0.3, SAMPLES, has_aux=True), optax.adam(0.1), has_aux=True
    )
    return train(
        learner,
        PARAMS,
        jax.random.key(0),
        steps=steps,
        batch=batch or (lambda i: (DATA,)),
        progress="off",
    )


def test_a_killed_node_changes_nothing_and_a_new_node_is_used(cluster):
    """Node 2 killed in the middle of step 4 (SIGKILL, no goodbye): its samples run
    again on the head; node 3 added before step 8 takes samples from then on. The fit
    ends with the parameters and losses of the same fit evaluated in this process."""
    from bbpes.ray_evaluator import RayEvaluator

    steps, kill_at, add_at = 16, 3, 7
    doomed = next(iter(cluster.worker_nodes))
    joined = []

    def batch(i):
        if i == kill_at:  # while the step's samples run on both nodes
            threading.Timer(0.15, cluster.remove_node, (doomed, False)).start()
        if i == add_at:
            joined.append(cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK))
        if i > add_at and not evaluator.samples_per_node[joined[0].node_id]:
            # a loaded machine starts the new node's worker slowly: the later steps give it
            # time (the data, hence every number, are the same whenever it joins)
            time.sleep(2.0)
        return (DATA,)

    with RayEvaluator(SlowLoss(0.05), retries=0) as evaluator:
        assert evaluator.workers == 2
        result = _fit(evaluator, steps, batch)
        stats, per_node = evaluator.stats, evaluator.samples_per_node
        listening = _listening_addresses()
    expected = _fit(InProcess(SlowLoss(0.0)), steps)

    for name in PARAMS:
        np.testing.assert_array_equal(result.params[name], expected.params[name])
    assert [r["loss"] for r in result.history] == [r["loss"] for r in expected.history]
    assert [r["step"] for r in result.history] == list(range(1, steps + 1))  # each once
    assert stats.evaluated == steps * (SAMPLES + 1) == sum(per_node.values())
    assert stats.lost >= 1  # a sample was running on node 2 when it died...
    assert stats.failed == stats.retried == 0  # ...and ran again, not counted as a failure
    assert all(r["failed"] == 0 and not r["nonfinite"] for r in result.history)
    assert per_node[doomed.node_id] > 0 and per_node[joined[0].node_id] > 0
    assert set(per_node) == {cluster.head_node.node_id, doomed.node_id, joined[0].node_id}
    assert listening and all(map(_loopback, listening)), listening


@pytest.mark.slow
def test_a_fixed_pool_waits_for_a_node_and_survives_every_kind_of_exit(cluster):
    """A pool of a fixed size (2 workers) over a longer fit: node 2 stopped (SIGTERM)
    at step 3, its worker's replacement waits for a CPU until node 3 joins at step 6;
    node 3 killed (SIGKILL) at step 12 while node 4 joins. Still the numbers of the
    uninterrupted fit, each step evaluated once."""
    from bbpes.ray_evaluator import RayEvaluator

    steps = 24
    nodes = {"2": next(iter(cluster.worker_nodes))}

    def batch(i):
        if i == 3:
            threading.Timer(0.15, cluster.remove_node, (nodes["2"], True)).start()
        if i == 6:
            nodes["3"] = cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
        if i == 12:
            nodes["4"] = cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
            threading.Timer(0.15, cluster.remove_node, (nodes["3"], False)).start()
        return (DATA,)

    with RayEvaluator(SlowLoss(0.05), workers=2, retries=0) as evaluator:
        result = _fit(evaluator, steps, batch)
        stats, per_node = evaluator.stats, evaluator.samples_per_node
        assert evaluator.workers == 2
    expected = _fit(InProcess(SlowLoss(0.0)), steps)

    for name in PARAMS:
        np.testing.assert_array_equal(result.params[name], expected.params[name])
    assert [r["loss"] for r in result.history] == [r["loss"] for r in expected.history]
    assert [r["step"] for r in result.history] == list(range(1, steps + 1))
    assert stats.evaluated == steps * (SAMPLES + 1) == sum(per_node.values())
    assert stats.lost >= 2 and stats.failed == stats.retried == 0
    for name in ("2", "3", "4"):
        assert per_node[nodes[name].node_id] > 0, name
