"""The one training loop: every learner, every experiment.

It jits the learner's step once, draws step `i`'s key as `fold_in(key, i)` and asks
`batch(i)` for its data, so a run resumed from a checkpoint takes exactly the steps the
uninterrupted run would have taken. It shows progress, appends one record per
iteration to history.jsonl, checkpoints every `checkpoint_every` steps, and guards
against non-finite values.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .learners.base import AbstractLearner
from .progress import Progress
from .runs import RunDir, atomic_write_bytes


@dataclass
class TrainResult:
    state: Any
    params: Any
    history: list[dict] = field(default_factory=list)
    stopped: str | None = None  # None when all steps ran, else why training stopped early


def _finite_tree(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if eqx.is_inexact_array(x)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def guarded_step(learner: AbstractLearner) -> Callable:
    """`learner.step`, jitted, that never returns non-finite params: such an update is
    rejected (the state is kept) and reported as `nonfinite` in the metrics."""

    @eqx.filter_jit
    def step(state, key, *batch):
        new, metrics = learner.step(state, key, *batch)
        ok = _finite_tree(learner.params(new))
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b) if eqx.is_array(a) else a, new, state)
        finite = ok & jnp.isfinite(metrics["loss"])
        if "grad_norm" in metrics:
            finite = finite & jnp.isfinite(metrics["grad_norm"])
        return new, {**metrics, "nonfinite": ~finite}

    return step


def _save_checkpoint(path, state, step: int, seconds: float, nonfinite_run: int) -> None:
    meta = (np.int64(step), np.float64(seconds), np.int64(nonfinite_run))
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (state, meta))
    atomic_write_bytes(path, buffer.getvalue())


def _load_checkpoint(path, like_state) -> tuple[Any, int, float, int]:
    like = (like_state, (np.int64(0), np.float64(0.0), np.int64(0)))
    state, (step, seconds, nonfinite_run) = eqx.tree_deserialise_leaves(path, like)
    return state, int(step), float(seconds), int(nonfinite_run)


def _scalars(metrics: dict) -> dict[str, Any]:
    out = {}
    for k, v in metrics.items():
        arr = np.asarray(v)
        if arr.ndim == 0:
            out[k] = arr.item()
    return out


def train(
    learner: AbstractLearner,
    params: Any,
    key: jax.Array,
    *,
    steps: int,
    batch: Callable[[int], tuple] | None = None,
    evaluate: Callable[[Any], dict[str, float]] | None = None,
    eval_every: int | None = None,
    run: RunDir | None = None,
    label: str = "train",
    tags: dict[str, Any] | None = None,
    checkpoint_every: int | None = 50,
    resume: bool = False,
    progress: str = "auto",
    progress_keys: tuple[str, ...] = ("loss", "accuracy"),
    max_nonfinite: int = 20,
) -> TrainResult:
    """Train `params` with `learner` for `steps` iterations.

    **Arguments:**

    - `learner`: any `AbstractLearner`; `params`: the initial parameters (pytree).
    - `key`: step i uses `jax.random.fold_in(key, i)`.
    - `batch(i) -> tuple`: the data arguments of step i (must depend on i only, so that
      a resumed run sees the same data); None for none.
    - `evaluate(params) -> dict`: held-out metrics (e.g. `{"accuracy": ...}`), run before
      the first step, every `eval_every` steps and after the last.
    - `run`, `label`, `tags`: where history records go (each carries `label` and the
      tags) and the checkpoint name; no files are written when `run` is None.
    - `checkpoint_every`: steps between checkpoints (and always at the end).
    - `resume`: continue from this label's checkpoint if there is one.
    - `max_nonfinite`: stop early after this many consecutive non-finite steps.

    **Returns:** a `TrainResult` with the final state, params and this training's records.
    """
    tags = {"label": label, **(tags or {})}
    state = learner.init(params)
    start, seconds, nonfinite_run = 0, 0.0, 0
    checkpoint = run.checkpoint(label) if run is not None else None

    def mine(record: dict) -> bool:
        return all(record.get(k) == v for k, v in tags.items())

    if resume and checkpoint is not None and checkpoint.exists():
        state, start, seconds, nonfinite_run = _load_checkpoint(checkpoint, state)
        run.drop_history(lambda r: mine(r) and r["step"] > start)
    elif run is not None:
        run.drop_history(mine)
    history = run.read_history(mine) if run is not None else []

    def record(entries: list[dict]) -> None:
        history.extend(entries)
        if run is not None:
            run.append_history(entries)

    step_fn = guarded_step(learner)
    stopped = None
    if nonfinite_run >= max_nonfinite:
        stopped, start = f"{nonfinite_run} consecutive non-finite steps", steps
    with Progress(label, steps, start=start, keys=progress_keys, mode=progress) as bar:
        if start == 0 and evaluate is not None:
            first = {**tags, "step": 0, **_scalars(evaluate(learner.params(state)))}
            record([first])
            bar.update(0, first)
        for i in range(start, steps):
            t0 = time.perf_counter()
            args = batch(i) if batch is not None else ()
            state, metrics = step_fn(state, jax.random.fold_in(key, i), *args)
            metrics = _scalars(metrics)
            seconds += time.perf_counter() - t0
            nonfinite_run = nonfinite_run + 1 if metrics["nonfinite"] else 0
            if nonfinite_run >= max_nonfinite:
                stopped = f"{nonfinite_run} consecutive non-finite steps"
            entry = {**tags, "step": i + 1, **metrics, "seconds": seconds}
            last = i + 1 == steps or stopped is not None
            if evaluate is not None and (last or (eval_every and (i + 1) % eval_every == 0)):
                entry.update(_scalars(evaluate(learner.params(state))))
            record([entry])
            bar.update(i + 1, entry)
            if checkpoint is not None and (
                last or (checkpoint_every and (i + 1) % checkpoint_every == 0)
            ):
                _save_checkpoint(checkpoint, state, i + 1, seconds, nonfinite_run)
            if stopped:
                break
    return TrainResult(state, learner.params(state), history, stopped)
