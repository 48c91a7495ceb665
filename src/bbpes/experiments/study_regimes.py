"""The regimes of the signals study (`bbpes run signals`): each of the ES paper's claims
as a `bbpes.study.Regime`, at four scales.

Scales: `tiny` (the test suite: seconds), `quick` (about 10 minutes a regime), `reduced`
(the default: 25-40 minutes a regime on 2 loaded cores, measured; the whole grid of 8
regimes is an afternoon, not the 2 hours first planned), `paper` (the paper's sizes:
a GPU or a long run). The sizes of each are in `EVIDENCE_SCALES`, `SPIRAL_SCALES`,
`ROBER_SCALES` and the budgets (training seconds per run) in `BUDGETS`.

Evidence regimes split their trials three ways from the task seed: training batches
(seed, 2, run, step), validation (seed, 4) for selecting a signal's setting, and test
(seed, 1) for reporting. The spiral validates on held-out minibatches and tests on the
full trajectory's MAE from y(0); ROBER has one trajectory, so its validation and test
metric are the same number (the loss over the zero field's loss), said in the notes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..models.neural_ode import spiral_field
from ..signals import ode_forms, signal
from ..study.problem import Problem, Sweep
from .base import n_params

BUDGETS = {
    "tiny": 1.0,
    "quick": 6.0,
    "reduced": 15.0,
    "paper": 1800.0,
}
"""Training seconds per run (one tuning value or one seed) at each scale."""

EVIDENCE_SCALES = {
    "tiny": {"n_cells": 8, "batch": 8, "samples": 4, "n_inputs": 4, "test_trials": 64},
    "quick": {"n_cells": 32, "batch": 32, "samples": 20, "n_inputs": 10, "test_trials": 256},
    "reduced": {"n_cells": 32, "batch": 32, "samples": 20, "n_inputs": 20, "test_trials": 512},
    "paper": {"n_cells": 128, "batch": 64, "samples": 100, "n_inputs": 50, "test_trials": 1000},
}
"""Network, batch, ES population and stream length (inputs of `hold` ms) per scale."""

VALIDATION_TRIALS = 256


def _evidence_config(case: str, scale: str, **extra: Any) -> dict[str, Any]:
    from .evidence import EXPERIMENT

    config = dict(EXPERIMENT.defaults, case=case, seed=0)
    config.update(EVIDENCE_SCALES[scale])
    if scale == "tiny":
        config["test_trials"] = 64
    config["pca_trials"] = min(config["pca_trials"], config["test_trials"])
    config.update(extra)
    return config


def evidence_problem(case: str, scale: str, transmitter: str = "soft", **extra: Any) -> Problem:
    """An evidence-integration problem (case A, B or C) at `scale`, with the coupling's
    spike output `transmitter` (soft, hard or surrogate: see `bbpes.models.bnn`)."""
    from ..tasks.evidence_setup import build, initial_weights, loss_forms

    config = _evidence_config(case, scale, **extra)
    task, network = build(config)
    network = _with_transmitter(network, transmitter)
    test = task.trials(config["test_trials"], [config["seed"], 1])
    validation = task.trials(min(VALIDATION_TRIALS, config["test_trials"]), [config["seed"], 4])
    accuracy = eqx.filter_jit(task.accuracy)
    surrogate = _with_transmitter(network, "surrogate") if transmitter == "hard" else None
    forms = loss_forms(task, network, config)
    if surrogate is not None:  # hard spikes: gradients only through the surrogate network
        guide = loss_forms(task, surrogate, config)
        forms = dataclasses.replace(
            forms, ode_loss=None, surrogate_loss=guide.loss, truncated_loss=guide.truncated_loss
        )
    settings = {k: config[k] for k in ("sigma", "samples", "lr", "lr_es", "clip", "es_chunk")}
    settings["n_params"] = n_params(initial_weights(config, task, 0))
    settings["es_structured"] = True  # the network keeps low-rank perturbations factored
    return Problem(
        forms=forms,
        init=lambda run: initial_weights(config, task, run),
        batch=lambda run, i: task.trials(config["batch"], [config["seed"], 2, run, i]),
        validate=lambda w: float(accuracy(network, w, *validation)),
        test=lambda w: float(accuracy(network, w, *test)),
        settings=settings,
        references=evidence_references(*test),
        notes=(
            f"{config['n_cells']} {network.cell.__class__.__name__} cells, batch {config['batch']}, "
            f"{config['n_inputs']} inputs ({task.duration:g} ms), transmitter {transmitter}"
        ),
    )


def evidence_references(tokens, labels) -> dict[str, float]:
    """Test accuracy without learning: always the most frequent class (`chance`), and
    the majority of only the last 1, 5 and 10 inputs (a memory that short; the full
    stream's majority is the label by construction). `tokens` `(trials, n_inputs)`,
    `labels` `(trials,)`."""
    from ..tasks.evidence import window_majority_accuracy

    tokens, labels = np.asarray(tokens), np.asarray(labels)
    out = {"chance": float(np.bincount(labels).max() / labels.size)}
    for last in (1, 5, 10):
        if last < tokens.shape[1]:
            name = "last input" if last == 1 else f"last {last} inputs"
            out[name] = window_majority_accuracy(tokens, labels, last)
    return out


def _with_transmitter(network, kind: str):
    """The same network with the spike output `kind` (a static field: a new module)."""
    return network if kind == "soft" else dataclasses.replace(network, transmitter=kind)


SPIRAL_SCALES = {
    "tiny": {"hidden": 16, "samples": 8, "n_points": 200},
    "quick": {"hidden": 1000, "samples": 40, "n_points": 1000},
    "reduced": {"hidden": 1000, "samples": 100, "n_points": 1000},
    "paper": {"hidden": 1000, "samples": 150, "n_points": 1000},
}


def spiral_problem(scale: str) -> Problem:
    """The spiral neural ODE (hidden units per scale; the paper's H = 1000 above tiny).
    Validation: the mean loss on 8 fixed held-out minibatches; test: the full-trajectory
    MAE from y(0). Both lower is better."""
    from ..tasks.spiral import Spiral

    s = SPIRAL_SCALES[scale]
    task = Spiral(
        n_points=s["n_points"],
        t_end=25.0,
        batch_size=20,
        batch_time=10,
        rtol=1e-4,
        atol=1e-4,
        max_steps=4096,
    )
    held_out = [task.sample_batch(jax.random.fold_in(jax.random.key(99), k)) for k in range(8)]
    loss = eqx.filter_jit(task.loss)
    mae = eqx.filter_jit(task.mae)
    return Problem(
        forms=ode_forms("backprop", task.loss, task.ode_loss()),
        forward_forms=ode_forms("forward", task.loss, task.ode_loss()),
        init=lambda run: spiral_field(s["hidden"], key=jax.random.key(run)),
        batch=lambda run, i: task.sample_batch(
            jax.random.fold_in(jax.random.fold_in(jax.random.key(7), run), i)
        ),
        validate=lambda f: float(jnp.mean(jnp.stack([loss(f, *b) for b in held_out]))),
        test=lambda f: float(mae(f)),
        settings={
            "sigma": 0.003,
            "samples": s["samples"],
            "lr": 1e-3,
            "lr_es": 1e-3,
            "clip": 0.0,
            "n_params": n_params(spiral_field(s["hidden"], key=jax.random.key(0))),
        },
        notes=f"H = {s['hidden']}, minibatches of 20 x 10 points; test: full-trajectory MAE from y(0)",
    )


ROBER_SCALES = {
    "tiny": {"n_points": 10, "samples": 4, "max_steps": 500},
    "quick": {"n_points": 20, "samples": 10, "max_steps": 2000},
    "reduced": {"n_points": 50, "samples": 20, "max_steps": 2000},
    "paper": {"n_points": 50, "samples": 50, "max_steps": 2000},
}


def rober_problem(field: str, scale: str) -> Problem:
    """ROBER's neural ODE on the `plain` or `normalised` field (rober experiment's
    presets). Metric: loss / zero-field loss (validation = test: one trajectory)."""
    from .rober import EXPERIMENT, initial_field, make_task

    s = ROBER_SCALES[scale]
    config = EXPERIMENT.config(
        {
            "field": field,
            "n_points": s["n_points"],
            "max_steps": s["max_steps"],
            "samples": s["samples"],
        }
    )
    with jax.enable_x64(True):
        task = make_task(config)
        null = float(task.null_loss())
    loss = eqx.filter_jit(task.loss)

    def ratio(f):
        return float(loss(f)) / null

    return Problem(
        forms=ode_forms("backprop", task.loss, task.ode_loss()),
        init=lambda run: initial_field(dict(config, seed=run), task),
        batch=None,
        validate=ratio,
        test=ratio,
        settings={
            "sigma": config["sigma"],
            "samples": s["samples"],
            "lr": config["lr_bp"],
            "lr_es": config["lr_es"],
            "clip": 0.0,
            "rank_shaping": config["rank_shaping"],
            "n_params": n_params(initial_field(config, task)),
        },
        notes=f"{field} field, {s['n_points']} log-spaced points, float64; validation = test",
        references={"zero field": 1.0},
        x64=True,
    )


def sweeps(names: tuple[str, ...]) -> dict[str, Sweep]:
    """Each signal's sweep: three values of the knob it is tuned on (`Signal.tuned`:
    its step size, or the initial search scale of a strategy that sets its own step)
    around the problem's default (x 1, 1/3, 3: the default first). Names this
    installation lacks are left out."""
    from ..signals import names as known

    have = set(known())
    return {name: Sweep(signal(name).tuned) for name in names if name in have}
