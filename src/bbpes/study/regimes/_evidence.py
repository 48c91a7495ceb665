"""The evidence-integration problem of the study's evidence regimes (`case_a`, `case_b`,
`hard`, `long_1s`, `long_3s`): the task of `bbpes.tasks.evidence_setup` at a scale.

Trials split three ways from the task seed: training batches (seed, 2, run, step),
validation (seed, 4) for selecting a signal's setting, and test (seed, 1) for reporting.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import numpy as np

from ... import signals
from ...settings import defaults_of
from ...tasks import evidence_setup
from ..problem import Problem

SCALES = {
    "tiny": {"n_cells": 8, "batch": 8, "samples": 4, "n_inputs": 4, "test_trials": 64},
    "quick": {"n_cells": 32, "batch": 32, "samples": 20, "n_inputs": 10, "test_trials": 256},
    "reduced": {"n_cells": 32, "batch": 32, "samples": 20, "n_inputs": 20, "test_trials": 512},
    "paper": {"n_cells": 128, "batch": 64, "samples": 100, "n_inputs": 50, "test_trials": 1000},
}
"""Network, batch, ES population and stream length (inputs of `hold` ms) per scale."""

VALIDATION_TRIALS = 256

FORWARD = ("es", "es_lowrank", "forward_gradient", "guided_es")
"""The forward-only signals of the evidence regimes whose task has every loss form."""


def evidence_config(case: str, scale: str, **extra: Any) -> dict[str, Any]:
    """The evidence task's settings (`evidence_setup.SETTINGS`, its `KNOBS` over the
    signal knobs' defaults) for `case` at `scale`, seed 0, with `extra`."""
    config = defaults_of(signals.knob_settings())
    config.update(evidence_setup.KNOBS)
    config.update(defaults_of(evidence_setup.SETTINGS), case=case, seed=0)
    config.update(SCALES[scale])
    config.update(extra)
    return config


def evidence_problem(case: str, scale: str, transmitter: str = "soft", **extra: Any) -> Problem:
    """An evidence-integration problem (case A, B or C) at `scale`, with the coupling's
    spike output `transmitter` (soft, hard or surrogate: see `bbpes.models.bnn`);
    `extra` changes task settings (`hold`, say)."""
    config = evidence_config(case, scale, **extra)
    task, network = evidence_setup.build(config)
    network = _with_transmitter(network, transmitter)
    test = task.trials(config["test_trials"], [config["seed"], 1])
    validation = task.trials(min(VALIDATION_TRIALS, config["test_trials"]), [config["seed"], 4])
    accuracy = eqx.filter_jit(task.accuracy)
    surrogate = _with_transmitter(network, "surrogate") if transmitter == "hard" else None
    forms = evidence_setup.loss_forms(task, network, config)
    if surrogate is not None:  # hard spikes: gradients only through the surrogate network
        guide = evidence_setup.loss_forms(task, surrogate, config)
        forms = dataclasses.replace(
            forms, ode_loss=None, surrogate_loss=guide.loss, truncated_loss=guide.truncated_loss
        )
    settings = {k: config[k] for k in ("sigma", "samples", "lr", "lr_es", "clip", "es_chunk")}
    settings["n_params"] = signals.n_params(evidence_setup.initial_weights(config, task, 0))
    settings["es_structured"] = True  # the network keeps low-rank perturbations factored
    return Problem(
        forms=forms,
        init=lambda run: evidence_setup.initial_weights(config, task, run),
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
    from ...tasks.evidence import window_majority_accuracy

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
