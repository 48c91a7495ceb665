"""Training a fit on a budget of simulations: what `bbpes run fit` and `bbpes run
fit-neuron` share (the settings of how a fit is trained, its learner, its starting
points, the cost of a step, the training loop and the scored centres it leaves).

The budget is `evaluations`: simulations of the whole protocol. An iteration of a
population method costs its population; a gradient step costs the forward runs its
wall time is worth (the ratio of a gradient step's seconds to one forward simulation's,
measured after compiling and stored in `calibration.json`, so a resumed run keeps it).
Every iteration the centre of the search is scored on the hard loss (one more
simulation, counted), and the method's own best point is the centre with the lowest
hard loss so far. With `starts` > 1, that many independent fits from different
starting points run as one vmapped program (`bbpes.learners.Ensemble`) on the same
total budget.

A configuration is a mapping with the keys of `SETTINGS`, `TARGET`, the signal knobs
(`bbpes.signals.knob_settings`, with `KNOBS`' values), `method`, `seed`, `x64` and,
for `build`, `PROBLEM`'s.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import signals
from ..learners.ensemble import Ensemble
from ..runs import RunDir
from ..settings import Setting, by_name, defaults_of, with_values
from ..train import guarded_step, train
from . import suite
from .problem import Fit, jitted

FORMS = ("loss", "surrogate_loss")
"""The loss forms a fit offers: the hard (eFEL) loss and its soft counterpart."""

METHOD = "evosax:CMA_ES"
"""The default learning signal of a fit (1000 evaluations recover test case 1)."""

SETTINGS = (
    Setting(
        "evaluations",
        1000,
        "budget: simulations of the whole protocol (a gradient step counts its measured "
        "forward-run cost)",
        low=1,
        quick=300,
    ),
    Setting("lr", 0.05, "step size of gradient signals (Adam)", positive=True),
    Setting("lr_es", 0.1, "step size of ES-gradient signals (Adam)", positive=True),
    Setting("clip", 0.0, "gradient clip (global norm)", low=0, zero="none"),
    Setting(
        "starts",
        1,
        "independent fits from different starts, run at once on the same budget",
        low=1,
    ),
    Setting(
        "tolerance",
        0.01,
        "success: every parameter within this relative error of the truth",
        positive=True,
    ),
)
"""How a fit is trained (the signal knobs aside: `knob_settings`)."""

TARGET = (
    Setting(
        "features",
        list(suite.DEFAULT_FEATURES),
        "eFEL features scored (comma-separated)",
    ),
    Setting(
        "noise",
        0.0,
        "ground truth: Gaussian recording noise added to the target",
        "mV",
        low=0,
    ),
    Setting(
        "relative_std",
        0.05,
        "a target's std as a fraction of its value (ground truth, single recordings)",
        positive=True,
    ),
)
"""What the target of a fit is scored on, for a simulator of any kind."""

PROBLEM = (
    Setting(
        "problem",
        "hh",
        "hh (Neuroptimus test case 1), simplecell, pospischil, recording",
        choices=suite.PROBLEMS,
    ),
    Setting(
        "loss",
        "features",
        "features (eFEL z-scores), mse (trace), features+mse",
        choices=suite.LOSSES,
    ),
    Setting("temperature", 2.0, "soft features' smoothing", "mV", positive=True),
    Setting(
        "recording",
        "",
        "problem=recording: voltage files (comma-separated; .ibw, .abf, .nwb, .csv)",
    ),
    Setting("recording_current", "", "problem=recording: current files, one per voltage file"),
    Setting(
        "ljp", 14.0, "problem=recording: liquid junction potential subtracted", "mV", any_value=True
    ),
)
"""Which fit `build` makes (of `bbpes.fitting.suite`), besides `TARGET` and `seed`."""

KNOBS = {
    "samples": (10, "population per iteration (ES, evosax strategies)"),
    "sigma": (
        1.0,
        "initial search scale in unconstrained units (logit of the bounds; 1.0 measured "
        "best for CMA-ES on test case 1)",
    ),
}
"""A fit's own default and help of signal knobs."""


def knob_settings() -> tuple[Setting, ...]:
    """Every signal knob's `Setting` (`bbpes.signals.knob_settings`), with `KNOBS`'
    defaults and help lines."""
    out = []
    for knob in signals.knob_settings():
        if knob.name in KNOBS:
            default, help = KNOBS[knob.name]
            knob = with_values(knob, default=default, help=help)
        out.append(knob)
    return tuple(out)


def defaults(**changes: Any) -> dict[str, Any]:
    """The configuration of a fit at its defaults (`bbpes run fit`'s), with `changes`
    (each checked against its declaration: a `ConfigError` for a bad one)."""
    declared = by_name(
        (*knob_settings(), *SETTINGS, *TARGET, *PROBLEM, Setting("seed", 0, "", low=0))
    )
    config = {**defaults_of(declared.values()), "method": METHOD, "x64": False}
    for key, value in changes.items():
        config[key] = declared[key].parse(value) if key in declared else value
    return config


_BUILT = ("problem", "loss", "features", "noise", "seed", "relative_std", "temperature")
_BUILT += ("recording", "recording_current", "ljp", "x64")


def build(config: Mapping[str, Any]) -> Fit:
    """The fit `config` describes (`PROBLEM`, `TARGET`, `seed`; reads and checks a
    recording: `ConfigError` on a bad one). Built once per process for the same
    settings: the same `Fit` object, so that the compiled simulation, loss and step of
    an earlier run (a resume, another method, a test) serve again instead of compiling
    anew."""
    return _build(tuple(_hashable(config[k]) for k in _BUILT))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=8)
def _build(key: tuple) -> Fit:
    c = dict(zip(_BUILT, key))
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


def _learner(config: Mapping[str, Any], fit: Fit, method: str):
    optimizer = signals.signal(method).optimizer(config, optax.adam, lr=None, clip="clip")
    return signals.learner_for(method, fit.forms(), optimizer, config, jnp.zeros(fit.space.n))


def make_learner(config: Mapping[str, Any], fit: Fit):
    """The learner of `config['method']` on `fit`, as an ensemble of `starts` members
    (members draw their noise from their own seeds) when `starts` > 1."""
    method = config["method"]
    if config["starts"] == 1:
        return _learner(config, fit, method)
    seeds = jnp.arange(config["starts"], dtype=jnp.int32)
    return Ensemble(lambda h: _learner(config, fit, method), {"seed": seeds})


def initial_points(config: Mapping[str, Any], fit: Fit) -> jax.Array:
    """Start `z` `(n,)`, or `(starts, n)`: drawn in the bounds from `(seed, start)`."""
    keys = [
        jax.random.fold_in(jax.random.key(config["seed"]), 1000 + s)
        for s in range(config["starts"])
    ]
    z = jnp.stack([fit.initial(k) for k in keys])
    return z[0] if config["starts"] == 1 else z


def step_cost(config: Mapping[str, Any], fit: Fit, learner, z0) -> tuple[float, dict[str, float]]:
    """Simulations one iteration costs (per start), and the timings behind it.

    Population signals: their population (`Signal.forward_passes`). Gradient
    signals: the seconds of one step over the seconds of one forward simulation, both
    measured here after compiling (median of 5)."""
    passes = signals.signal(config["method"]).forward_passes(config, fit.space.n)
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


@dataclass(frozen=True)
class FitRun:
    """What training a fit leaves: `records`, the scored centres (one a step: `step`,
    `seconds`, `hard_loss`, `start`, `value_NAME` per parameter and, with a truth,
    `max_relative_error`); `cost`, simulations a step costs per start; `timings` behind
    it (s); `stopped`, why training stopped early (None: it did not)."""

    records: list[dict[str, Any]]
    cost: float
    timings: dict[str, float]
    stopped: str | None
    starts: int = 1

    @property
    def per_step(self) -> float:
        """Simulations one step costs, every start's and the scored centre's included."""
        return (self.cost + 1.0) * self.starts


def calibrated_cost(config, fit: Fit, learner, z0, out: RunDir) -> tuple[float, dict]:
    """`step_cost`, read from `calibration.json` where an earlier run stored it, else
    measured and stored there."""
    calibration = out.file("calibration.json")
    if calibration.exists():
        stored = json.loads(calibration.read_text())
        return stored["cost_per_step"], stored["timings"]
    cost, timings = step_cost(config, fit, learner, z0)
    out.write_json("calibration.json", {"cost_per_step": cost, "timings": timings})
    return cost, timings


def train_fit(config: Mapping[str, Any], fit: Fit, out: RunDir) -> FitRun:
    """Train `config['method']` on `fit` for `evaluations` simulations (steps of
    `FitRun.per_step`), scoring the centre every step; history and checkpoints in `out`
    (`resume` continues them). Run under `jax.enable_x64(config['x64'])` where the fit
    asks for float64."""
    learner = make_learner(config, fit)
    z0 = initial_points(config, fit)
    cost, timings = calibrated_cost(config, fit, learner, z0, out)
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

    label = config["method"]
    result = train(
        learner,
        z0,
        jax.random.key(config["seed"]),
        steps=steps,
        evaluate=evaluate,
        eval_every=1,
        run=out,
        label=label,
        resume=config.get("resume", False),
        progress_keys=("loss", "hard_loss", "max_relative_error"),
    )
    records = [r for r in out.read_history() if "hard_loss" in r and r.get("label") == label]
    return FitRun(records, cost, timings, result.stopped, config["starts"])
