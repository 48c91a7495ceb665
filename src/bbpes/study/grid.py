"""The equal-budget competition of learning signals on one regime.

For every signal of a regime:

1. **Calibrate** (in the same command as every other signal): compile its step once
   (`compiled_step`: its step sizes and sigma are data, `bbpes.learners.Tunable`, so
   this one executable also trains every tuning value and seed below), read the
   compiled program's peak bytes, time a few steps and one forward pass, in rounds
   interleaved with the regime's other signals (`calibrate_regime`). The
   wall-clock budget B becomes a step count, `floor(B / step_seconds)`, so that a run
   is deterministic, exactly resumable, and every signal gets the same seconds on this
   machine at this load. The calibration is stored, so a resumed grid keeps the same
   step counts.
2. **Tune** on run 0: each value of the signal's sweep trains for the budget; the
   value with the best *validation* metric at the end is selected (never the test set).
3. **Seeds**: the selected value trains on runs 1..n (fresh seeds: not the tuning run),
   with the test metric every tenth of the run.

A signal that would not fit in memory is reported with its predicted bytes and not run.
Every finished cell (a tuning value or a seed) is stored as JSON in the run directory;
a killed grid continues where it stopped, cell by cell, and an unfinished cell resumes
from its checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax

from ..calibration import budget_steps, interleaved_calibration, loop_step
from ..learners.base import AbstractLearner
from ..learners.tunable import Tunable
from ..memory import memory_limit_bytes
from ..runs import RunDir
from ..signals import signal, tunable_learner
from ..train import CompiledStep, compile_step, train
from .problem import Problem, Regime, forms_for

Optimizer = Callable[[str, Mapping[str, Any]], optax.GradientTransformation]


def default_optimizer(method: str, settings: Mapping[str, Any]) -> optax.GradientTransformation:
    """Adam at the signal's learning rate, clipped where the signal takes the clip
    (`bbpes.signals.Signal.optimizer`)."""
    return signal(method).optimizer(settings)


def signal_learner(
    problem: Problem, method: str, settings: Mapping[str, Any], optimizer: Optimizer
) -> Tunable:
    """`method`'s learner on `problem` at `settings`, its step sizes and sigma as data."""
    return tunable_learner(
        method, forms_for(problem, method), lambda s: optimizer(method, s), settings
    )


def compiled_step(
    problem: Problem, method: str, optimizer: Optimizer = default_optimizer
) -> CompiledStep:
    """`method`'s guarded step on `problem` at its base settings, compiled once and kept
    in `problem.compiled`: its learner's `with_hyper` values (any tuning value) and any
    run's params, key and data run this same executable."""
    slot = (method, optimizer)
    if slot not in problem.compiled:
        learner = signal_learner(problem, method, problem.settings, optimizer)
        args = problem.batch(0, 0) if problem.batch is not None else ()
        problem.compiled[slot] = compile_step(learner, problem.init(0), jax.random.key(0), *args)
    return problem.compiled[slot]


def calibrate_together(
    problem: Problem,
    learners: Mapping[str, AbstractLearner | CompiledStep],
    repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, float]]:
    """Each of `learners`' (a learner, compiled here, or a step compiled before with
    `compile_step`) seconds of one step and of one forward pass, each the fastest of
    `repeats` after compiling (the least disturbed by other load on a shared machine),
    its compile seconds and its compiled step's peak bytes. The signals are timed in
    interleaved rounds (each round times every step and forward pass in turn), so that
    a change of the machine's load during the calibration falls on all of them alike."""
    forward = eqx.filter_jit(problem.forward or problem.forms.loss)
    params = problem.init(0)
    args = problem.batch(0, 0) if problem.batch is not None else ()
    data = (lambda i: problem.batch(0, i)) if problem.batch is not None else None
    calls = {}
    for name, learner in learners.items():
        if isinstance(learner, CompiledStep):
            compiled = learner
        else:  # the loop's own guarded step
            compiled = compile_step(learner, params, jax.random.key(0), *args)
        calls[name] = (
            compiled,  # timed as the loop runs it: the batch, the step, its metrics
            loop_step(compiled, params, jax.random.key(0), data),
            lambda: forward(params, *args),
        )
    return interleaved_calibration(calls, repeats, clock)


def _cell_name(regime: str, method: str, part: str) -> str:
    return f"study/{regime}/{method.replace(':', '-')}/{part}.json"


def _read(run_dir: RunDir, name: str) -> dict | None:
    path = run_dir.file(name)
    if not path.exists():
        return None
    import json

    return json.loads(path.read_text())


def train_cell(
    regime: Regime,
    problem: Problem,
    method: str,
    settings: Mapping[str, Any],
    run: int,
    steps: int,
    run_dir: RunDir,
    label: str,
    metric_fn: Callable[[Any], float],
    optimizer: Optimizer,
    resume: bool,
    evals: int = 10,
) -> dict[str, Any]:
    """Train one (signal, setting, run) for `steps` steps; returns its summary and
    history (the metric every `steps / evals` steps). The step is `compiled_step`'s
    where `settings` differ from the problem's only in hyperparameters (data)."""
    step = compiled_step(problem, method, optimizer)
    hyper = {k: v for k, v in settings.items() if k in step.learner.hyper}
    rest = {k: v for k, v in settings.items() if k not in hyper}
    if rest == {k: v for k, v in problem.settings.items() if k not in hyper}:
        learner = step.learner.with_hyper(**hyper)
    else:  # another static setting: another program
        learner, step = signal_learner(problem, method, settings, optimizer), None
    result = train(
        learner,
        problem.init(run),
        jax.random.key(1000 + run),
        steps=steps,
        batch=(lambda i: problem.batch(run, i)) if problem.batch is not None else None,
        evaluate=lambda p: {regime.metric: float(metric_fn(p))},
        eval_every=max(1, steps // evals),
        run=run_dir,
        label=label,
        tags={"regime": regime.name, "method": method, "run": run},
        resume=resume,
        progress_keys=("loss", regime.metric),
        step=step,
    )
    curve = [
        {"step": r["step"], "seconds": r.get("seconds", 0.0), regime.metric: r[regime.metric]}
        for r in result.history
        if regime.metric in r
    ]
    final = curve[-1][regime.metric] if curve else None
    return {
        "final": final,
        "best": _best(regime, [c[regime.metric] for c in curve]),
        "curve": curve,
        "nonfinite_steps": int(sum(bool(r.get("nonfinite")) for r in result.history)),
        "stopped": result.stopped,
        "seconds": float(result.history[-1].get("seconds", 0.0)) if result.history else 0.0,
    }


def _best(regime: Regime, values: list) -> float | None:
    best = None
    for v in values:
        if regime.better(v, best):
            best = v
    return best


def calibration_for(
    problem: Problem,
    method: str,
    run_dir: RunDir,
    regime: str,
    optimizer: Optimizer = default_optimizer,
    memory_limit: float | None = None,
) -> dict[str, float]:
    """`method`'s calibration on `problem`: read from the run directory when it was
    measured before (a resumed grid keeps its step counts), else measured and stored.
    Calibrate every signal of a regime together first (`calibrate_regime`)."""
    return calibrate_regime(problem, [method], run_dir, regime, optimizer, memory_limit)[method]


def calibrate_regime(
    problem: Problem,
    methods: list[str],
    run_dir: RunDir,
    regime: str,
    optimizer: Optimizer = default_optimizer,
    memory_limit: float | None = None,
) -> dict[str, dict[str, float]]:
    """The calibrations of `methods` on `problem`: those stored in the run directory
    are read (a resumed grid keeps its step counts); the rest are measured together, in
    interleaved rounds (`calibrate_together`), before any signal trains, and stored. A
    step whose compiled peak bytes exceed `memory_limit_bytes(limit_bytes=memory_limit)` is not
    run: its calibration holds its bytes and no seconds (and is timed when a later
    resume has the memory)."""
    limit = memory_limit_bytes(limit_bytes=memory_limit)
    out = {m: _read(run_dir, _cell_name(regime, m, "calibration")) for m in methods}
    for m, stored in out.items():  # not timed for lack of memory, but fits now: time it
        if stored is not None and stored["step_seconds"] is None and stored["peak_bytes"] <= limit:
            out[m] = None
    steps = {m: compiled_step(problem, m, optimizer) for m in methods if out[m] is None}
    too_big = {m for m, step in steps.items() if step.peak_bytes and step.peak_bytes > limit}
    timed = {m: step for m, step in steps.items() if m not in too_big}
    measured = calibrate_together(problem, timed) if timed else {}
    for m in too_big:
        measured[m] = {
            "step_seconds": None,
            "forward_seconds": None,
            "compile_seconds": steps[m].compile_seconds,
            "peak_bytes": steps[m].peak_bytes,
        }
    for m, calibration in measured.items():
        run_dir.write_json(_cell_name(regime, m, "calibration"), calibration)
        out[m] = calibration
    return out


def run_signal(
    regime: Regime,
    problem: Problem,
    method: str,
    *,
    budget: float,
    seeds: int,
    sweep: int,
    run_dir: RunDir,
    optimizer: Optimizer = default_optimizer,
    resume: bool = False,
    memory_limit: float | None = None,
) -> dict[str, Any]:
    """The leaderboard row of `method` on `regime` (see the module docstring)."""
    base = dict(problem.settings)
    tuning = regime.signals[method]
    values = list(tuning.values(base))[:sweep]
    calibration = calibration_for(problem, method, run_dir, regime.name, optimizer, memory_limit)
    row: dict[str, Any] = {"regime": regime.name, "signal": method, **calibration}
    row["family"] = signal(method).family
    limit = memory_limit_bytes(limit_bytes=memory_limit)
    if calibration["peak_bytes"] and calibration["peak_bytes"] > limit:
        row["skipped"] = (
            f"needs {calibration['peak_bytes'] / 1e9:.2f} GB, more than the {limit / 1e9:.2f} GB available"
        )
        return row
    steps = budget_steps(budget, calibration["step_seconds"])
    row["steps"] = steps
    formula = signal(method).forward_passes(base)
    row["forward_passes_per_step"] = (
        formula
        if formula is not None
        else calibration["step_seconds"] / max(calibration["forward_seconds"], 1e-12)
    )
    row["forward_passes_measured"] = calibration["step_seconds"] / max(
        calibration["forward_seconds"], 1e-12
    )

    def cell(part: str, run: int, knob_value: Any, metric_fn, **record: Any) -> dict[str, Any]:
        """The finished cell `part` (`tune{k}`, `seed{run}`) of the run directory, else
        the knob at `knob_value` trained on `run` for `steps`, with `record` added,
        stored."""
        name = _cell_name(regime.name, method, part)
        stored = _read(run_dir, name)
        if stored is not None:
            return stored
        label = f"{regime.name}-{method}-{part}"
        settings = {**base, tuning.knob: knob_value}
        out = train_cell(
            regime,
            problem,
            method,
            settings,
            run,
            steps,
            run_dir,
            label,
            metric_fn,
            optimizer,
            resume,
        )
        out.update(record)
        run_dir.write_json(name, out)
        return out

    tuned = [cell(f"tune{k}", 0, v, problem.validate, value=v) for k, v in enumerate(values)]
    pick = 0
    for k, tuned_cell in enumerate(tuned):
        if regime.better(tuned_cell["final"], tuned[pick]["final"]):
            pick = k
    row["knob"], row["selected"] = tuning.knob, values[pick]
    row["validation"] = [c["final"] for c in tuned]
    runs = [cell(f"seed{r}", r, values[pick], problem.test) for r in range(1, seeds + 1)]
    row.update(summarise(regime, runs, row["forward_passes_per_step"], calibration["step_seconds"]))
    row["curves"] = [c["curve"] for c in runs]
    return row


def summarise(
    regime: Regime, runs: list[dict], passes_per_step: float, step_seconds: float
) -> dict[str, Any]:
    """Metric at the budget (mean, std over seeds), time and forward passes to target.

    Seconds to target are the calibrated step time x the step at which the test metric
    first met the target (the equal-budget clock, without compilation); the seconds the
    runs actually took on the loaded machine are `measured_seconds_to_target`."""
    finals = np.array([np.nan if r["final"] is None else r["final"] for r in runs], float)
    to_target = []
    for r in runs:
        hit = next((c for c in r["curve"] if regime.reached(c[regime.metric])), None)
        to_target.append(
            None if hit is None else (hit["step"] * step_seconds, hit["step"], hit["seconds"])
        )
    hits = [t for t in to_target if t is not None]
    out = {
        "metric_mean": float(np.nanmean(finals)) if np.isfinite(finals).any() else None,
        "metric_std": float(np.nanstd(finals)) if np.isfinite(finals).any() else None,
        "metric_per_seed": [None if not np.isfinite(f) else float(f) for f in finals],
        "reached": len(hits),
        "seeds": len(runs),
        "seconds_to_target": [None if t is None else t[0] for t in to_target],
        "measured_seconds_to_target": [None if t is None else t[2] for t in to_target],
        "forward_passes_to_target": [
            None if t is None else t[1] * passes_per_step for t in to_target
        ],
        "nonfinite_steps": int(sum(r["nonfinite_steps"] for r in runs)),
        "seconds_trained": float(np.mean([r["seconds"] for r in runs])),
    }
    if hits:
        seconds = [t[0] for t in hits]
        out["seconds_to_target_mean"] = float(np.mean(seconds))
        out["seconds_to_target_std"] = float(np.std(seconds))
    return out
