"""The one training loop: every learner, every experiment.

It draws step `i`'s key as `fold_in(key, i)` and asks `batch(i)` for its data, so a run
resumed from a checkpoint takes exactly the steps the uninterrupted run would have
taken. It shows progress, appends one record per iteration to history.jsonl,
checkpoints every `checkpoint_every` steps, and rejects non-finite steps whole
(`bbpes.learners.base.accept_update`).

The jitted step is one module-level function that takes the learner as an argument,
so its compilation cache is keyed on the learner's static parts and the shapes of the
state: training several seeds with one learner compiles once. `compile_step` compiles
it ahead of time and reads the compiled program's peak memory, and `train(step=...)`
runs that same executable, for that learner or any learner that differs from it only
in array leaves (`CompiledStep.serves`): e.g. the values of a learning-rate or sigma
sweep of `bbpes.learners.Tunable`, whose hyperparameters are arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .learners.base import AbstractLearner, accept_update
from .progress import Progress
from .runs import RunDir, atomic_write_bytes


@dataclass
class TrainResult:
    state: Any
    params: Any
    history: list[dict] = field(default_factory=list)
    stopped: str | None = None  # None when all steps ran, else why training stopped early


def _guarded(learner: AbstractLearner, state: Any, key: jax.Array, *batch: Any):
    new, metrics = learner.step(state, key, *batch)
    new, ok = accept_update(state, new, metrics)
    return new, {**metrics, "nonfinite": ~ok}


_guarded_jit = eqx.filter_jit(_guarded)


def guarded_step(learner: AbstractLearner) -> Callable:
    """`(state, key, *batch) -> (state, metrics)`: `learner.step`, jitted, that never
    returns a non-finite state. A step with a non-finite new state (any inexact leaf:
    params, optimizer state...), loss or grad norm is rejected whole (the old state is
    returned) and reported as `nonfinite` in the metrics. Every call for one learner
    shares one compilation."""
    return functools.partial(_guarded_jit, learner)


def _static_part(learner: AbstractLearner) -> Any:
    """What a compiled step bakes in: every leaf of `learner` that is not an array."""
    return eqx.partition(learner, eqx.is_array)[1]


def _placed(leaves: list, shardings: list) -> list:
    """`leaves` (arrays) each where the compiled step expects it: a state that came out
    of a sharded step (an ES population split over devices) may be replicated where the
    program wants one device, or the other way round. Over several processes
    (`bbpes.distributed`) every process holds the same value, and it becomes the
    global array of that sharding."""

    def place(x, sharding):
        if not isinstance(x, jax.Array) or x.sharding == sharding:
            return x
        if sharding.is_fully_addressable:
            return jax.device_put(x, sharding)
        if x.sharding.is_equivalent_to(sharding, x.ndim):
            return x
        where = sharding.addressable_devices_indices_map(x.shape).items()
        parts = [jax.device_put(x[index], device) for device, index in where]
        return jax.make_array_from_single_device_arrays(x.shape, sharding, parts)

    return [place(x, s) for x, s in zip(leaves, shardings)]


@dataclass(frozen=True)
class CompiledStep:
    """The guarded step of `learner`, compiled ahead of time for one set of argument
    shapes (`compile_step`); call it as `step(state, key, *batch)`.

    - `compile_seconds`: tracing, lowering and compiling, wall seconds.
    - `peak_bytes`: XLA's buffer assignment of the compiled program, arguments +
      outputs + temporaries - aliased (None where the backend does not report it).

    The executable takes the learner's array leaves as arguments and bakes in the rest,
    so it also runs any learner that `serves` accepts (`for_learner`): one compilation
    for every value of a hyperparameter that is an array, and for every seed.
    """

    learner: AbstractLearner
    compiled: Any
    compile_seconds: float
    peak_bytes: int | None

    def serves(self, learner: AbstractLearner) -> bool:
        """Whether this executable computes `learner`'s step: its non-array leaves (code,
        static settings) equal the compiled learner's; its arrays may differ in value
        (their shapes and dtypes are checked when called)."""
        if learner is self.learner:
            return True
        mine, theirs = _static_part(self.learner), _static_part(learner)
        if jax.tree.structure(mine) != jax.tree.structure(theirs):
            return False
        return bool(eqx.tree_equal(mine, theirs))

    def for_learner(self, learner: AbstractLearner) -> CompiledStep:
        """This executable running `learner`'s step (`ValueError` unless it `serves` it)."""
        if learner is self.learner:
            return self
        if not self.serves(learner):
            raise ValueError(
                "this CompiledStep was compiled for a learner with other static parts "
                "(code or non-array settings); compile_step the new learner"
            )
        return dataclasses.replace(self, learner=learner)

    def __call__(self, state: Any, key: jax.Array, *batch: Any):
        c = self.compiled  # equinox's Compiled, with every argument where it is expected
        dynamic = c.preprocess(c.info, (self.learner, state, key, *batch), {})
        leaves, treedef = jax.tree.flatten(dynamic)
        wanted = jax.tree.leaves(c.compiled.input_shardings[0])
        if len(wanted) == len(leaves):  # else XLA pruned arguments: as given
            dynamic = jax.tree.unflatten(treedef, _placed(leaves, wanted))
        return c.postprocess(c.compiled(*dynamic))


def compile_step(
    learner: AbstractLearner, params: Any, key: jax.Array, *batch: Any
) -> CompiledStep:
    """Compile `learner`'s guarded step for the state `learner.init(params)`, a key like
    `key` and the data `batch` (only shapes and dtypes matter), without running it.
    Pass the result to `train(..., step=...)` to train with that executable."""
    state = learner.init(params)
    t0 = time.perf_counter()
    compiled = _guarded_jit.lower(learner, state, key, *batch).compile()
    seconds = time.perf_counter() - t0
    analysis = compiled.compiled.memory_analysis()
    peak = None
    if analysis is not None:
        peak = int(
            analysis.argument_size_in_bytes
            + analysis.output_size_in_bytes
            + analysis.temp_size_in_bytes
            - analysis.alias_size_in_bytes
        )
    return CompiledStep(learner, compiled, seconds, peak)


_COMPILE_EVENTS = frozenset(
    {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }
)


@contextlib.contextmanager
def _compile_timer() -> Iterator[list[float]]:
    """Seconds JAX spends tracing, lowering and compiling top-level computations inside
    the block (JAX reports each as a monitoring event), in `timer[0]`."""
    spent = [0.0]

    def listen(event: str, duration: float, **_: Any) -> None:
        if event in _COMPILE_EVENTS:
            spent[0] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield spent
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def _save_checkpoint(path, state, step: int, seconds: float, nonfinite_run: int) -> None:
    meta = (np.int64(step), np.float64(seconds), np.int64(nonfinite_run))
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (state, meta))
    atomic_write_bytes(path, buffer.getvalue())


def _load_checkpoint(path, like_state) -> tuple[Any, int, float, int]:
    like = (like_state, (np.int64(0), np.float64(0.0), np.int64(0)))
    state, (step, seconds, nonfinite_run) = eqx.tree_deserialise_leaves(path, like)
    return state, int(step), float(seconds), int(nonfinite_run)


def loop_body(
    step_fn: Callable[..., Any], state: Any, key: jax.Array, i: int, batch: Callable | None
) -> tuple[Any, dict[str, Any]]:
    """Iteration `i` of `train`'s clocked body: the data `batch(i)`, the step with key
    `fold_in(key, i)`, and its scalar metrics as Python numbers (which wait for the
    step). A calibration that turns a wall budget into a step count times exactly this
    (`bbpes.study.grid`, `nne-vs-es`), so the steps spend the seconds the loop's clock
    counts: timing the compiled step alone left out the data and the metrics' transfer,
    about 1 ms a step, 15-19% of a cheap step's budget."""
    return _step_metrics(step_fn, state, key, i, batch_args(batch, i))


def batch_args(batch: Callable | None, i: int) -> tuple:
    """The data arguments of step `i`: `batch(i)` as a tuple (one non-tuple value is the
    one argument), or none."""
    args = batch(i) if batch is not None else ()
    return args if isinstance(args, tuple) else (args,)


def _step_metrics(step_fn, state, key, i: int, args: tuple) -> tuple[Any, dict[str, Any]]:
    state, metrics = step_fn(state, jax.random.fold_in(key, i), *args)
    return state, _scalars(metrics)  # waits for the step


def _scalars(metrics: dict) -> dict[str, Any]:
    out = {}
    for k, v in metrics.items():
        arr = np.asarray(v)
        if arr.ndim == 0:
            out[k] = arr.item()
    return out


def _failed_step(error: Exception) -> dict[str, Any]:
    """The record of a step whose program stopped on a runtime check (`eqx.error_if`:
    e.g. a linear solve of an implicit ODE step that diverged, inside the backward pass,
    where no result code reaches the loss): rejected like a non-finite step, with the
    check's first line as `error`."""
    marker = "EquinoxRuntimeError: "
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    message = next((ln.split(marker, 1)[1] for ln in lines if marker in ln), None)
    return {"loss": float("nan"), "nonfinite": True, "error": (message or lines[0])[:200]}


def train(
    learner: AbstractLearner,
    params: Any,
    key: jax.Array,
    *,
    steps: int,
    batch: Callable[[int], Any] | None = None,
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
    step: CompiledStep | None = None,
) -> TrainResult:
    """Train `params` with `learner` for `steps` iterations.

    **Arguments:**

    - `learner`: any `AbstractLearner`; `params`: the initial parameters (pytree).
    - `key`: step i uses `jax.random.fold_in(key, i)`.
    - `batch(i)`: the data of step i (must depend on i only, so that a resumed run sees
      the same data): a tuple of the step's data arguments (`learner.step(state, key,
      *batch(i))`), or anything else (an array, a dict...) as the one data argument;
      None for no data.
    - `evaluate(params) -> dict`: held-out metrics (e.g. `{"accuracy": ...}`), run before
      the first step, every `eval_every` steps and after the last.
    - `run`, `label`, `tags`: where history records go (each carries `label` and the
      tags) and the checkpoint name; no files are written when `run` is None.
    - `checkpoint_every`: steps between checkpoints (and always at the end).
    - `resume`: continue from this label's checkpoint if there is one.
    - `max_nonfinite`: stop early after this many consecutive non-finite steps.
    - `step`: a `compile_step` executable to run instead of the jitted step: compiled
      for this `learner`, or for one it `serves` (the same learner but for array leaves,
      such as `bbpes.learners.Tunable`'s hyperparameters), and for these shapes.

    A step whose program stops on a runtime check (`eqx.error_if`, e.g. lineax's on a
    diverged implicit ODE step) is rejected like a non-finite one (the old state kept)
    and its record names the check in `error`.

    Each step's record holds its metrics, `nonfinite` (the step was rejected) and
    `seconds` (cumulative wall time of the steps, compilation included). The first
    step record of this call, and any record whose step compiled, also holds
    `compile_seconds`: the seconds JAX spent tracing and compiling during that step
    (0.0 when the step had been compiled before, by an earlier call or `compile_step`).

    **Returns:** a `TrainResult` with the final state, params and this training's records.
    """
    if step is not None and not step.serves(learner):
        raise ValueError(
            "train(step=...) needs a CompiledStep of this learner, or of one that differs "
            "from it in array leaves only"
        )
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

    step_fn = step.for_learner(learner) if step is not None else guarded_step(learner)
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
            args = batch_args(batch, i)  # outside the compile timer: the data's own compiles
            with _compile_timer() as compiling:
                try:
                    state, metrics = _step_metrics(step_fn, state, key, i, args)
                except eqx.EquinoxRuntimeError as error:
                    metrics = _failed_step(error)  # the state is the old one: rejected
            seconds += time.perf_counter() - t0
            nonfinite_run = nonfinite_run + 1 if metrics["nonfinite"] else 0
            if nonfinite_run >= max_nonfinite:
                stopped = f"{nonfinite_run} consecutive non-finite steps"
            entry = {**tags, "step": i + 1, **metrics, "seconds": seconds}
            if i == start or compiling[0] > 0:
                entry["compile_seconds"] = compiling[0]
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
