"""`fit`: fit a cell model's conductances to current-clamp recordings (or to a
ground-truth target simulated from known parameters) with any learning signal of
`bbpes.signals`, and report how good the fit is and what it cost.

Problems (`problem`): `hh` (Neuroptimus test case 1: NEURON's `hh` soma, gnabar, gkbar,
gl), `simplecell` (BluePyOpt's two-step example: gnabar, gkbar), `pospischil` (the
Pospischil et al. 2008 cortical model, 8 parameters, 4 step amplitudes), and
`recording` (the Pospischil model fitted to the files named by `recording`, e.g. cell
B6 of `../shared/data/ephys/bluepyefe`). See `bbpes.fitting.suite` and docs/fitting.md.

The budget is `evaluations`: simulations of the whole protocol. An iteration of a
population method costs its population; a gradient step costs the forward runs its
wall time is worth (the ratio of a gradient step's seconds to one forward simulation's,
measured here after compiling and stored in `calibration.json`, so a resumed run keeps
it). Every iteration the centre of the search is scored on the hard loss (one more
simulation, counted), and the method's own best point is the centre with the lowest
hard loss so far. With `starts` > 1, that many independent fits from different
starting points run as one vmapped program (`bbpes.learners.Ensemble`) on the same
total budget, and the best of them is reported.

Outputs: `fitted.json` (parameters with units, the truth and relative errors where
known), `features.json` and `features.md` (target, fitted value and z-score of every
feature of every sweep), `sweeps.png` (model against target per sweep), `loss.png`
(loss against evaluations and against seconds), and the usual config, history and
metrics.
"""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import signals
from ..fitting import suite
from ..fitting.problem import jitted
from ..learners.ensemble import Ensemble
from ..runs import RunDir
from ..train import guarded_step, train
from .base import (
    Experiment,
    check_signals,
    require,
    require_at_least,
    require_positive,
    signal_choices,
    signal_help,
    signal_learner,
    signal_optimizer,
    signal_settings,
)
from .fit_report import feature_table, plot_loss, plot_sweeps

FORMS = ("loss", "surrogate_loss")
"""The loss forms a fit offers: the hard (eFEL) loss and its soft counterpart."""

DEFAULTS = signal_settings(
    {
        "problem": "hh",
        "method": "evosax:CMA_ES",
        "evaluations": 1000,
        "samples": 10,
        "sigma": 1.0,
        "lr": 0.05,
        "lr_es": 0.1,
        "clip": 0.0,
        "starts": 1,
        "loss": "features",
        "features": list(suite.DEFAULT_FEATURES),
        "noise": 0.0,
        "tolerance": 0.01,
        "x64": False,
        "recording": "",
        "recording_current": "",
        "ljp": 14.0,
        "relative_std": 0.05,
        "temperature": 2.0,
    }
)

HELP = signal_help(
    {
        "problem": "hh (Neuroptimus test case 1), simplecell, pospischil, recording",
        "method": "the learning signal (any of `bbpes show signals`)",
        "evaluations": "budget: simulations of the whole protocol (a gradient step counts its measured forward-run cost)",
        "samples": "population per iteration (ES, evosax strategies)",
        "sigma": "initial search scale in unconstrained units (logit of the bounds; 1.0 measured best for CMA-ES on test case 1)",
        "lr": "step size of gradient signals (Adam)",
        "lr_es": "step size of ES-gradient signals (Adam)",
        "clip": "gradient clip (global norm; 0: none)",
        "starts": "independent fits from different starts, run at once on the same budget",
        "loss": "features (eFEL z-scores), mse (trace), features+mse",
        "features": "eFEL features scored (comma-separated)",
        "noise": "ground truth: Gaussian recording noise added to the target (mV)",
        "tolerance": "success: every parameter within this relative error of the truth",
        "x64": "simulate and fit in float64",
        "recording": "problem=recording: voltage files (comma-separated; .ibw, .abf, .nwb, .csv)",
        "recording_current": "problem=recording: current files, one per voltage file",
        "ljp": "problem=recording: liquid junction potential subtracted (mV)",
        "relative_std": "a target's std as a fraction of its value (ground truth, single recordings)",
        "temperature": "soft features' smoothing (mV)",
    }
)

QUICK = {"evaluations": 300}


def _check(config: dict[str, Any]) -> None:
    require(
        config["problem"] in suite.PROBLEMS,
        f"unknown problem {config['problem']!r} (choose from {', '.join(suite.PROBLEMS)})",
    )
    require(
        config["loss"] in suite.LOSSES,
        f"unknown loss {config['loss']!r} (choose from {', '.join(suite.LOSSES)})",
    )
    require_at_least(config, 1, "evaluations", "starts")
    require_positive(config, "sigma", "lr", "lr_es", "tolerance", "relative_std", "temperature")
    require(config["noise"] >= 0, "noise must be >= 0")
    require(config["clip"] >= 0, "clip must be >= 0 (0: no gradient clip)")
    suite.check_features(config["features"])
    if config["problem"] != "recording":
        for key in ("recording", "recording_current"):
            require(not config[key], f"{key} is read only with problem=recording")
    if config["problem"] == "recording":
        require(bool(config["recording"]), "problem=recording needs --set recording=FILES")
        suite.read(config["recording"], config["recording_current"], ljp=config["ljp"])
    check_signals(config, "method", FORMS, "a fit")


PROBLEM_SETTINGS = (
    "problem", "loss", "features", "noise", "seed", "relative_std", "temperature",
    "recording", "recording_current", "ljp", "x64",
)  # fmt: skip
"""The settings that define the fitting problem (the rest say how it is solved)."""


def build(config: dict[str, Any]) -> suite.Fit:
    """The fit `config` describes (reads and checks a recording: `ConfigError` on a bad
    one). Built once per process for the same settings: the same `Fit` object, so that
    the compiled simulation, loss and step of an earlier run (a resume, another method,
    a test) serve again instead of compiling anew."""
    key = tuple(
        tuple(config[k]) if isinstance(config[k], list) else config[k] for k in PROBLEM_SETTINGS
    )
    return _build(key)


@functools.lru_cache(maxsize=8)
def _build(key: tuple) -> suite.Fit:
    c = dict(zip(PROBLEM_SETTINGS, key))
    return suite.build(
        c["problem"],
        loss=c["loss"],
        features=c["features"],
        noise=c["noise"],
        seed=c["seed"],
        relative_std=c["relative_std"],
        temperature=c["temperature"],
        recording=c["recording"],
        recording_current=c["recording_current"],
        ljp=c["ljp"],
    )


def _learner(config, fit, method):
    optimizer = signal_optimizer(method, config, optax.adam)
    return signal_learner(method, fit.forms(), optimizer, config, jnp.zeros(fit.space.n))


def make_learner(config: dict[str, Any], fit: suite.Fit):
    """The learner of `config['method']` on `fit`, as an ensemble of `starts` members
    (members draw their noise from their own seeds) when `starts` > 1."""
    method = config["method"]
    if config["starts"] == 1:
        return _learner(config, fit, method)
    seeds = jnp.arange(config["starts"], dtype=jnp.int32)
    return Ensemble(lambda h: _learner(config, fit, method), {"seed": seeds})


def initial_points(config: dict[str, Any], fit: suite.Fit) -> jax.Array:
    """Start `z` `(n,)`, or `(starts, n)`: drawn in the bounds from `(seed, start)`."""
    keys = [
        jax.random.fold_in(jax.random.key(config["seed"]), 1000 + s)
        for s in range(config["starts"])
    ]
    z = jnp.stack([fit.initial(k) for k in keys])
    return z[0] if config["starts"] == 1 else z


def step_cost(
    config: dict[str, Any], fit: suite.Fit, learner, z0
) -> tuple[float, dict[str, float]]:
    """Simulations one iteration costs (per start), and the timings behind it.

    Population signals: their population (`Signal.forward_passes`). Gradient
    signals: the seconds of one step over the seconds of one forward simulation, both
    measured here after compiling (median of 5)."""
    method = config["method"]
    passes = signals.signal(method).forward_passes(config, fit.space.n)
    forward = jitted(fit, "hard")
    z_one = z0 if z0.ndim == 1 else z0[0]
    jax.block_until_ready(forward(z_one))
    t_fwd = _median_seconds(lambda: forward(z_one))
    step = guarded_step(learner)
    state = learner.init(z0)
    key = jax.random.key(0)
    t0 = time.perf_counter()
    jax.block_until_ready(step(state, key))
    compile_s = time.perf_counter() - t0
    t_step = _median_seconds(lambda: step(state, key)) / config["starts"]
    timings = {"forward_seconds": t_fwd, "step_seconds": t_step, "compile_seconds": compile_s}
    if passes is None:
        passes = max(1.0, t_step / t_fwd)
    return float(passes), timings


def _median_seconds(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(config: dict[str, Any], out: RunDir, fit: suite.Fit | None = None) -> dict[str, Any]:
    """The fit `config` describes, trained and reported into `out`; or, given `fit`,
    that fit (another simulator's, e.g. `bbpes.blackbox.NeuronFit`) with the training
    settings of `config`."""
    with jax.enable_x64(bool(config["x64"])):
        return _run(config, out, fit)


def _run(config: dict[str, Any], out: RunDir, fit: suite.Fit | None = None) -> dict[str, Any]:
    fit = build(config) if fit is None else fit
    learner = make_learner(config, fit)
    z0 = initial_points(config, fit)
    calibration = out.file("calibration.json")
    if calibration.exists():
        stored = json.loads(calibration.read_text())
        cost, timings = stored["cost_per_step"], stored["timings"]
    else:
        cost, timings = step_cost(config, fit, learner, z0)
        out.write_json("calibration.json", {"cost_per_step": cost, "timings": timings})
    per_step = (cost + 1.0) * config["starts"]  # + the centre scored on the hard loss
    steps = max(1, math.floor(config["evaluations"] / per_step))

    hard = jitted(fit, "hard_many" if config["starts"] > 1 else "hard")
    values_of = jitted(fit, "values")

    def evaluate(z):
        losses = np.atleast_1d(np.asarray(hard(z)))
        best = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.inf)))
        z_best = np.atleast_2d(np.asarray(z))[best]
        record = {"hard_loss": float(losses[best]), "start": best}
        values = np.asarray(values_of(jnp.asarray(z_best)), dtype=np.float64)
        for name, v in zip(fit.space.names, values):
            record[f"value_{name}"] = float(v)
        errors = fit.relative_errors(values)
        if errors is not None:
            record["max_relative_error"] = float(np.max(errors))
        return record

    result = train(
        learner,
        z0,
        jax.random.key(config["seed"]),
        steps=steps,
        evaluate=evaluate,
        eval_every=1,
        run=out,
        label=config["method"],
        resume=config.get("resume", False),
        progress_keys=("loss", "hard_loss", "max_relative_error"),
    )
    records = [
        r for r in out.read_history() if "hard_loss" in r and r.get("label") == config["method"]
    ]
    return report(config, fit, records, cost, timings, out, result.stopped)


def report(config, fit, records, cost, timings, out: RunDir, stopped) -> dict[str, Any]:
    """The best point of the run (lowest hard loss among the scored centres), written as
    `fitted.json`, `features.json`/`.md`, `sweeps.png`, `loss.png`; returns the metrics."""
    per_step = (cost + 1.0) * config["starts"]
    best = min(
        records, key=lambda r: r["hard_loss"] if r["hard_loss"] == r["hard_loss"] else math.inf
    )
    values = np.array([best[f"value_{n}"] for n in fit.space.names])
    fitted = {
        p.name: {"value": float(v), "unit": p.unit, "low": p.low, "high": p.high}
        for p, v in zip(fit.space.parameters, values)
    }
    errors = fit.relative_errors(values)
    if errors is not None:
        for p, t, e in zip(fit.space.parameters, fit.truth, errors):
            fitted[p.name].update(truth=float(t), relative_error=float(e))
    out.write_json(
        "fitted.json", {"problem": fit.name, "method": config["method"], "parameters": fitted}
    )
    rows = feature_table(fit, values, out)
    plot_sweeps(fit, values, out)
    plot_loss(records, per_step, config["method"], out)

    tol = config["tolerance"]
    reached = [r for r in records if r.get("max_relative_error", math.inf) <= tol]
    first = reached[0] if reached else None
    metrics = {
        "problem": fit.name,
        "method": config["method"],
        "best_hard_loss": float(best["hard_loss"]),
        "evaluations": float(len(records) - 1) * per_step,
        "cost_per_step": cost,
        "seconds": float(records[-1].get("seconds", 0.0)) if records else 0.0,
        "stopped": stopped,
        **{f"fitted_{k}": v["value"] for k, v in fitted.items()},
        "max_abs_z": float(
            max((abs(r["z"]) for r in rows if r["z"] is not None), default=math.nan)
        ),
        "features_missing": sum(r["z"] is None for r in rows),  # scored the penalty
        **{f"timing_{k}": v for k, v in timings.items()},
    }
    if errors is not None:
        metrics["max_relative_error"] = float(np.max(errors))
        metrics["recovered"] = bool(np.max(errors) <= tol)
        metrics["evaluations_to_tolerance"] = (
            float(first["step"] * per_step) if first is not None else None
        )
        metrics["seconds_to_tolerance"] = float(first.get("seconds", 0.0)) if first else None
    return metrics


EXPERIMENT = Experiment(
    name="fit",
    summary="fit a cell model to current-clamp recordings or a ground truth with any learning signal",
    run=run,
    defaults=DEFAULTS,
    quick=QUICK,
    choices={"method": signal_choices()},
    check=_check,
    help=HELP,
)
