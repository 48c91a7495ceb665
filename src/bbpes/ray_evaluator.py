"""Black-box losses on a Ray cluster: ES whose population is simulated by any Python
function (a Brian2 or NEURON model, a C program), not by JAX.

ES needs only forward evaluations, so the loss can be a black box (BBPES paper,
discussion: "efficient or standard packages such as NEURON and Brian could be used for
simulation"). Two pieces:

- `RayEvaluator(loss)`: a pool of Ray actors, one per CPU of the cluster, each holding
  its own copy of `loss(params, *args) -> float` for the whole run (a Brian2 network is
  built once per worker, not once per sample). `evaluate(population)` returns one loss
  per parameter set, retrying failed samples.
- `ray_es(evaluator, sigma, samples)`: the ES estimator with the signature of every
  estimator, `f(params, key, *args) -> (loss, grads)`, and the same maths as
  `bbpes.estimators.es`, whose pieces it uses: the members of `Population` (regenerated
  from the key), `fitness_weights`, `Population.gradient`. The population's losses
  come back into JAX through `jax.pure_callback`, so the estimator is jittable and
  `GradientLearner` + `bbpes.train.train` drive it unchanged.

**Failure policy.** A sample fails when its loss raises, returns something that is not
a finite number, runs longer than `timeout` seconds (its worker is killed and replaced),
or its worker dies (replaced). A failed sample is retried up to `retries` times, on any
worker; if it still fails its loss is NaN, which the ES maths treat as every non-finite
loss: replaced by the worst finite loss of the population (see `bbpes.estimators.es`).
So one bad sample never stops training; if the unperturbed loss L(theta) fails, or
every perturbed sample does (the gradient is then NaN), the step reports a non-finite
loss and the training loop counts it (`max_nonfinite`).

**Nodes that leave or join.** A sample whose worker died with its node (a node of the
cluster killed, preempted or lost) is not the sample's fault: it is run again on another
worker without counting as an attempt (`EvaluationStats.lost`), so a step's numbers are
those of a run on an unchanged cluster (for a deterministic loss, exactly). Each step
evaluates every sample once, whatever nodes come and go. A pool sized by the cluster
(`workers=None`) follows it: at each `evaluate` it starts a worker per CPU of a node
that joined, and drops workers still waiting for a CPU that left with a node; a pool of
a fixed size replaces its lost workers, which wait for a CPU. `samples_per_node` counts
where the samples ran.

**The loss.** `loss(params, *args) -> float`, where `params` is the estimator's pytree
with numpy leaves (same structure and shapes) and `args` are the data arguments as
numpy arrays. It is pickled (cloudpickle) to each worker once. If it has a `setup()`
method, each worker calls it once before its first sample, outside the timeout (build
and compile there); a `close()` method is called when the evaluator closes.

Ray is an optional dependency: `pip install 'bbpes[cluster]'`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAX_SETUP_FAILURES = 3  # consecutive worker start-ups that fail: the loss itself is broken
LOOPBACK = "127.0.0.1"  # the node address of a local Ray this module starts


def _ray():
    try:
        import ray
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "RayEvaluator needs Ray: pip install 'bbpes[cluster]' (or 'ray>=2.9')"
        ) from error
    return ray


class _Worker:
    """A Ray actor holding one copy of the loss."""

    def __init__(self, loss: Callable[..., Any]):
        self.loss = loss

    def setup(self) -> str:
        """Set the loss up; returns the id of this worker's node."""
        import ray

        if callable(getattr(self.loss, "setup", None)):
            self.loss.setup()
        return ray.get_runtime_context().get_node_id()

    def evaluate(self, params: Any, args: tuple) -> float:
        return float(self.loss(params, *args))

    def close(self) -> bool:
        if callable(getattr(self.loss, "close", None)):
            self.loss.close()
        return True


@dataclass
class EvaluationStats:
    """Counts over all `evaluate` calls so far (or of one call, see `last`)."""

    evaluated: int = 0  # samples asked for
    retried: int = 0  # failed attempts that were retried
    failed: int = 0  # samples that failed every attempt (their loss is NaN)
    timed_out: int = 0  # attempts stopped by the timeout
    workers_replaced: int = 0  # workers killed (timeout) or found dead, and restarted
    lost: int = 0  # attempts lost with their worker's node, run again (not counted as tries)

    def add(self, other: EvaluationStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class RayEvaluator:
    """Evaluate a Python loss on many parameter sets with a pool of Ray actors.

    **Arguments:**

    - `loss`: `loss(params, *args) -> float` on numpy values (see the module docstring).
    - `workers`: number of actors (each takes `actor_options["num_cpus"]`, default 1);
      default: as many as the cluster's free CPUs hold, and then as many as its CPUs
      hold as nodes join or leave (see the module docstring). Workers that cannot get a
      CPU wait for one (Ray queues them).
    - `address`: an existing Ray cluster (`"auto"`, `"ray://head:10001"`, ...); None
      starts a local one (with `workers` CPUs when given) unless Ray is already running
      in this process. A local one binds the loopback address 127.0.0.1 (no traffic
      leaves the machine; `init_options={"_node_ip_address": ...}` picks another). A
      cluster started here is shut down by `close()`.
    - `retries`: how many times a failed sample is tried again before it counts as NaN.
    - `timeout`: seconds one sample may run (None: no limit).
    - `init_options`: extra keyword arguments for `ray.init`.
    - `actor_options`: extra options for the actors (`num_cpus`, `runtime_env`, ...).

    Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        loss: Callable[..., Any],
        *,
        workers: int | None = None,
        address: str | None = None,
        retries: int = 2,
        timeout: float | None = None,
        init_options: dict[str, Any] | None = None,
        actor_options: dict[str, Any] | None = None,
    ):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        ray = _ray()
        self.retries, self.timeout = retries, timeout
        self.stats, self.last = EvaluationStats(), EvaluationStats()
        actor_options = {"num_cpus": 1, "max_restarts": 0, **(actor_options or {})}
        cpus = actor_options["num_cpus"]
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            options = {"include_dashboard": False, **(init_options or {})}
            if address is None and workers is not None:
                options.setdefault("num_cpus", workers * cpus)
            with warnings.catch_warnings():
                # Ray starts its daemons with subprocess (fork then exec at once), which
                # JAX's fork warning cannot tell from a fork that keeps running Python.
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                # No address and no RAY_ADDRESS: a new local Ray, as documented, even
                # where a cluster started on this machine left its address file behind
                # (Ray would otherwise connect to that cluster, or fail on num_cpus).
                local = address is None and not os.environ.get("RAY_ADDRESS")
                if local:  # a Ray of our own: on the loopback address, reachable from here only
                    options.setdefault("_node_ip_address", LOOPBACK)
                with _loopback_kept(options.get("_node_ip_address") if local else None):
                    ray.init(address="local" if local else address, **options)
        self._cpus, self._follows_cluster = cpus, workers is None
        self._cluster_cpus = ray.cluster_resources().get("CPU", 0.0)
        if workers is None:
            free = int(ray.available_resources().get("CPU", 0))
            workers = max(1, int((free or ray.cluster_resources().get("CPU", 1)) // cpus))
        self._actor_class = ray.remote(**actor_options)(_Worker)
        self._loss_ref = ray.put(loss)
        self._workers = [self._start_worker() for _ in range(workers)]
        self._nodes: dict[Any, str] = {}  # setup ref -> the worker's node id
        self._setup_failures = 0
        self.samples_per_node: Counter[str] = Counter()  # all evaluations so far
        self.last_samples_per_node: Counter[str] = Counter()  # those of the last call

    @property
    def workers(self) -> int:
        return len(self._workers)

    def _start_worker(self) -> tuple[Any, Any]:
        actor = self._actor_class.remote(self._loss_ref)
        return actor, actor.setup.remote()

    def _follow_cluster(self) -> None:
        """A pool sized by the cluster follows its CPUs since the last look: a worker
        more per CPU that joined; a worker fewer per CPU that left, among those still
        waiting for one (workers that run keep running)."""
        if not self._follows_cluster:
            return
        ray = _ray()
        cpus = ray.cluster_resources().get("CPU", 0.0)
        change, self._cluster_cpus = int((cpus - self._cluster_cpus) / self._cpus), cpus
        for _ in range(change):
            self._workers.append(self._start_worker())
        if change < 0:
            refs = [ready for _, ready in self._workers]
            started, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            waiting = [w for w in self._workers if w[1] not in set(started)]
            for worker in waiting[:-change]:
                ray.kill(worker[0], no_restart=True)
                self._workers.remove(worker)

    def close(self, grace: float = 10.0) -> None:
        """Stop the workers (each calls the loss's `close()`, if any, within `grace`
        seconds) and the local cluster if this evaluator started it."""
        ray = _ray()
        actors = [actor for actor, _ in getattr(self, "_workers", [])]
        if actors:
            ray.wait([a.close.remote() for a in actors], num_returns=len(actors), timeout=grace)
        for actor in actors:
            ray.kill(actor, no_restart=True)
        self._workers = []
        if getattr(self, "_owns_ray", False) and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayEvaluator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def evaluate(self, population: Sequence[Any], args: tuple = ()) -> np.ndarray:
        """Losses of every parameter set in `population` (a sequence of pytrees with
        numpy leaves), shape `(len(population),)` float64, NaN where a sample failed
        every attempt. `args` (numpy values) are passed to every call."""
        ray = _ray()
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        self._follow_cluster()
        n = len(population)
        losses = np.full(n, np.nan)
        attempts = np.zeros(n, dtype=int)
        stats = EvaluationStats(evaluated=n)
        per_node: Counter[str] = Counter()
        pending = deque(range(n))
        args_ref = ray.put(tuple(args))
        starting = {ready: slot for slot, (_, ready) in enumerate(self._workers)}
        idle: deque[int] = deque()
        running: dict[Any, tuple[int, int, float]] = {}  # ref -> (sample, worker slot, start)

        def fail(sample: int, why: str) -> None:
            attempts[sample] += 1
            if attempts[sample] <= self.retries:
                stats.retried += 1
                pending.append(sample)
                log.info("sample %d failed (%s); retry %d", sample, why, attempts[sample])
            else:
                stats.failed += 1
                log.warning(
                    "sample %d failed %d times (%s); loss = NaN", sample, attempts[sample], why
                )

        def replace(slot: int) -> None:
            actor, ready = self._workers[slot]
            ray.kill(actor, no_restart=True)
            self._nodes.pop(ready, None)
            self._workers[slot] = self._start_worker()
            starting[self._workers[slot][1]] = slot
            stats.workers_replaced += 1

        def lost(sample: int) -> None:  # its node died: run it again, not an attempt
            stats.lost += 1
            pending.appendleft(sample)
            log.info("sample %d lost with its worker's node; running it again", sample)

        while pending or running:
            while pending and idle:
                slot, sample = idle.popleft(), pending.popleft()
                ref = self._workers[slot][0].evaluate.remote(population[sample], args_ref)
                running[ref] = (sample, slot, time.monotonic())
            wait = None
            if self.timeout is not None and running:
                first = min(start for _, _, start in running.values())
                wait = max(0.0, first + self.timeout - time.monotonic())
            done, _ = ray.wait([*running, *starting], num_returns=1, timeout=wait)
            for ref in done:
                if ref in starting:
                    slot = starting.pop(ref)
                    try:
                        self._nodes[ref] = ray.get(ref)
                        self._setup_failures = 0
                        idle.append(slot)
                    except RayActorError as error:
                        if not _node_died(error):
                            self._fail_setup(error)
                        replace(slot)
                    except RayTaskError as error:
                        self._fail_setup(error)
                        replace(slot)
                    continue
                sample, slot, _ = running.pop(ref)
                try:
                    value = ray.get(ref)
                except RayActorError as error:
                    replace(slot)
                    if _node_died(error):
                        lost(sample)
                    else:
                        fail(sample, "worker died")
                    continue
                except (RayTaskError, GetTimeoutError) as error:
                    idle.append(slot)
                    fail(sample, str(getattr(error, "cause", None) or error).splitlines()[-1])
                    continue
                idle.append(slot)
                per_node[self._nodes.get(self._workers[slot][1], "?")] += 1
                if math.isfinite(value):
                    losses[sample] = value
                else:
                    fail(sample, f"loss {value}")
            if self.timeout is not None:
                now = time.monotonic()
                late = [r for r, (_, _, s) in running.items() if now - s > self.timeout]
                for ref in late:
                    sample, slot, _ = running.pop(ref)
                    stats.timed_out += 1
                    replace(slot)
                    fail(sample, f"timeout {self.timeout:g} s")
        self.last = stats
        self.stats.add(stats)
        self.last_samples_per_node = per_node
        self.samples_per_node.update(per_node)
        return losses

    def _fail_setup(self, error: Exception) -> None:
        self._setup_failures += 1
        if self._setup_failures >= MAX_SETUP_FAILURES:
            raise RuntimeError(
                f"{MAX_SETUP_FAILURES} workers in a row failed to start: {error}"
            ) from error


@contextlib.contextmanager
def _loopback_kept(node_ip: str | None):
    """Ray turns a loopback node address into this machine's network address (so that
    other machines could join the cluster) unless its `ENABLE_RAY_CLUSTER` is off: off
    while a local Ray starts on a loopback address, which it then keeps."""
    constants = None
    if node_ip and _is_loopback(node_ip):
        import ray._private.ray_constants as constants
    before = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if before is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if before is not None:
            constants.ENABLE_RAY_CLUSTER = before


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return host == "localhost"


def _node_died(error: Exception) -> bool:
    """Whether a worker's death came with its node's (Ray says so in the error), rather
    than from its sample (a crash, `os._exit`)."""
    return bool(getattr(error, "preempted", False)) or "its node has died" in str(error)
