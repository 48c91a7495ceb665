"""`nne-vs-es`: NNE beside evolution strategies on the same MNIST split, at an equal
wall budget ("Biologically plausible neural networks via evolutionary dynamics and
dopaminergic plasticity", section 3.1; issue 19): test accuracy against wall seconds,
one line per method, and the accuracy at the budget and seconds to the paper's NNE.

The methods, on NNE's split (`bbpes.tasks.mnist_nne_setup`, which `nne-mnist` trains
too):

- **NNE rules** (`nne`, the paper's; `nne_improved`, `bbpes.learners.nne_variants`)
  evolve the allele frequencies of `genes` genes of the paper's sparse network (784
  inputs, `hidden` ReLU units each wired to a pixel with `edge_prob`, C outputs, no
  biases; link weights `W x` of the genotype `x`).
- **Evolution strategies** (`es`, ours; `evosax:Open_ES`) train every weight and bias
  of a dense ReLU MLP of the same layer sizes (784-`hidden`-C), Adam at `lr_es` on the
  ES gradient (`bbpes.signals.make_learner`).

Both see the same data: the same training images at every step (`batch_images` of
them, `bbpes.tasks.mnist_nne.generation_images`), `population` networks evaluated on
them per step, and the same test set.

**The equal budget.** Each method's step is compiled and timed first (the median of
`calibration_steps` iterations of the training loop's clocked body, `bbpes.train.loop_body`:
the batch, the step and its metrics, after compiling and 3 warm iterations, in the same
command), and the budget of
`seconds` becomes its number of steps, so that a run is deterministic and exactly
resumable; the step counts are stored (`calibration.json`) and a resumed run keeps
them. The seconds on the plot are the steps' measured wall time (compilation, done
before the clock starts, and test evaluations excluded), so a loaded machine shows where a method ran past its budget.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from typing import Any

import jax

from ..runs import RunDir
from ..tasks.mnist import MnistData
from ..tasks.mnist_nne_setup import Training, es_training, load_data, sparse_net
from ..train import guarded_step, loop_body, train
from .base import Experiment, n_params, require, require_at_least, require_fits, require_positive
from .mnist_data import (
    ES_METHODS,
    METHOD_CHOICES,
    SPLIT_CHOICES,
    SPLIT_DEFAULTS,
    SPLIT_HELP,
    SPLIT_QUICK,
    check_es,
    check_split,
    nne_training,
)
from .nne_mnist_report import PAPER_TABLE1, plot_accuracy_vs_seconds, write_comparison


def method_training(config, data, net, method: str, steps: int) -> Training:
    if method in ES_METHODS:
        return es_training(config, data, method)
    return nne_training(config, data, net, method, config["genes"], steps)[0]


def warm_up(t: Training) -> float:
    """Compile `t`'s step (the training loop's own jitted step) by running it once on
    batch 0, so that training's clock starts on a compiled step; returns the seconds."""
    t0 = time.perf_counter()
    jax.block_until_ready(guarded_step(t.learner)(t.learner.init(t.params), t.key, *t.batch(0)))
    return time.perf_counter() - t0


WARM_ITERATIONS = 3
"""Loop iterations run before the calibration's timed ones."""


def step_seconds(t: Training, repeats: int) -> tuple[float, float]:
    """`(median seconds of one iteration, seconds of the first, compiling, call)` of
    `t`'s training loop (`bbpes.train.loop_body`: the batch, the step, its metrics),
    timed on `repeats` iterations after the first call."""
    compiling = warm_up(t)
    step, state = guarded_step(t.learner), t.learner.init(t.params)
    for r in range(WARM_ITERATIONS):  # the host's side settles (the first data gathers)
        loop_body(step, state, t.key, r, t.batch)
    times = []
    for r in range(repeats):  # the training loop's own clocked body: data, step, metrics
        t0 = time.perf_counter()
        loop_body(step, state, t.key, WARM_ITERATIONS + r, t.batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), compiling


def calibration(config, data, net, method: str, stored: dict, run_dir: RunDir) -> dict:
    """`stored[method]` (a resumed run's), else a new calibration, added to `stored`
    and written to `calibration.json`: `step_seconds`, `compile_seconds` and `steps =
    floor(seconds / step_seconds)` (at least 1)."""
    if method not in stored:
        seconds, compiling = step_seconds(
            method_training(config, data, net, method, 1), config["calibration_steps"]
        )
        steps = max(1, math.floor(config["seconds"] / seconds))
        stored[method] = {"step_seconds": seconds, "compile_seconds": compiling, "steps": steps}
        run_dir.write_json(CALIBRATION, stored)
    return stored[method]


CALIBRATION = "calibration.json"


def network_of(config, data: MnistData, method: str, t: Training) -> str:
    pixels, hidden, classes = data.train_x.shape[1], config["hidden"], data.classes
    if method in ES_METHODS:
        return f"dense MLP {pixels}-{hidden}-{classes}, {n_params(t.params):,} weights"
    return f"sparse {pixels}-{hidden}-{classes}, {config['genes']:,} genes"


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    data = load_data(config)
    net = sparse_net(config, data)
    histories, rows = {}, []
    path = run_dir.file(CALIBRATION)
    stored = json.loads(path.read_text()) if config["resume"] and path.exists() else {}
    for method in config["methods"]:
        calibrated = calibration(config, data, net, method, stored, run_dir)
        steps = calibrated["steps"]
        t = method_training(config, data, net, method, steps)
        every = max(1, steps // config["evals"])
        warm_up(t)
        result = train(
            t.learner,
            t.params,
            t.key,
            steps=steps,
            batch=t.batch,
            evaluate=t.evaluate,
            eval_every=every,
            run=run_dir,
            label=method,
            checkpoint_every=every,
            resume=config["resume"],
        )
        histories[method] = result.history
        rows.append({"method": method, "network": network_of(config, data, method, t)})
        rows[-1].update(calibrated)
        del t, result  # the population's buffers
    target = PAPER_TABLE1[data.classes]["nne"]
    rows = write_comparison(run_dir, rows, histories, target, config, data)
    plot_accuracy_vs_seconds(run_dir, histories, target, config["seconds"], data)
    metrics: dict[str, Any] = {
        "data": data.source,
        "classes": data.classes,
        "train_images": len(data.train_x),
        "test_images": len(data.test_x),
        "budget_seconds": config["seconds"],
        "target_accuracy": target,
    }
    for row in rows:
        for key in ("accuracy", "seconds_to_target", "step_to_target", "steps", "seconds"):
            metrics[f"{key}_{row['method']}"] = row[key]
        metrics[f"step_seconds_{row['method']}"] = row["step_seconds"]
    return metrics


def check(config: dict[str, Any]) -> None:
    check_split(config)
    methods = config["methods"]
    require(len(methods) >= 1, "methods must name at least one method")
    require(len(set(methods)) == len(methods), "methods must not repeat")
    require_positive(config, "seconds")
    require_at_least(config, 1, "evals")
    require(1 <= config["calibration_steps"] <= 100, "calibration_steps must be in 1..100")
    check_es(config, methods)
    require_fits(
        4.0 * (config["hidden"] * 28 * 28 * 2 + config["chunk"] * config["genes"]),
        "the network and the genotypes",
    )


EXPERIMENT = Experiment(
    name="nne-vs-es",
    summary="NNE beside ES (ours, evosax OpenES) on the same MNIST split: accuracy against seconds at an equal budget",
    run=run,
    defaults={
        **SPLIT_DEFAULTS,
        "methods": ["nne", "nne_improved", "es", "evosax:Open_ES"],
        "seconds": 120.0,
        "batch_images": 200,
        "population": 200,
        "chunk": 100,
        "evals": 30,
        "calibration_steps": 3,
    },
    quick={**SPLIT_QUICK, "hidden": 100, "batch_images": 100, "seconds": 10.0},
    choices={**SPLIT_CHOICES, "methods": METHOD_CHOICES},
    check=check,
    help={
        **SPLIT_HELP,
        "methods": "the methods, each for the budget: nne, nne_improved (NNE's sparse network), es, evosax:Open_ES (a dense MLP)",
        "seconds": "wall budget per method: seconds of training steps (calibrated into a step count)",
        "evals": "test evaluations (and checkpoints) per method over its budget",
        "calibration_steps": "steps timed per method to turn the budget into steps (median)",
    },
)
