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

**The equal budget.** Every method's step is compiled, then timed together with the
others' (`bbpes.calibration.interleaved_calibration`, as the study times its signals):
`calibration_steps` rounds of the training loop's clocked body (`bbpes.train.loop_body`:
the batch, the step and its metrics), each round timing every method in turn (a cheap
step as a burst of back-to-back steps), so that a change of the machine's load falls on
all alike; a method's seconds per step is the fastest of its rounds, and the budget of
`seconds` becomes its number of steps (`bbpes.calibration.budget_steps`), so that a run
is deterministic and exactly resumable. The step counts are stored (`calibration.json`)
and a resumed run keeps them. The seconds on the plot are the steps' measured wall time
(compilation, done before the clock starts, and test evaluations excluded), so a
loaded machine shows where a method ran past its budget.
"""

from __future__ import annotations

import json
from typing import Any

from ..calibration import Call, budget_steps, interleaved_calibration, loop_step
from ..errors import ConfigError
from ..framework import Experiment, Setting
from ..framework.checks import n_params, require, require_fits
from ..learners.nne import random_gene_map
from ..learners.nne_variants import VARIANTS, nne_variant
from ..runs import RunDir
from ..settings import by_name, with_values
from ..tasks.mnist import MnistData
from ..tasks.mnist_nne_setup import Training, es_training, load_data, sparse_net
from ..tasks.mnist_nne_setup import nne_training as split_training
from ..tasks.mnist_settings import (
    ES_METHODS,
    SPLIT,
    check_es,
    check_split,
    dense_population_bytes,
)
from ..train import batch_args, compile_step, train
from .nne_mnist_report import PAPER_TABLE1, plot_accuracy_vs_seconds, write_comparison

METHODS = (*VARIANTS, *ES_METHODS)
"""The NNE rules (`bbpes.learners.nne_variants.VARIANTS`) and the evolution strategies."""


def method_training(config, data, net, method: str, steps: int) -> Training:
    """`method` on the split: an ES on the dense MLP (`es_training`), or an NNE rule
    (its `eps` schedule over `steps`) on `genes` genes of the sparse network."""
    if method in ES_METHODS:
        return es_training(config, data, method)

    def rule(fitness):
        population, epsilon, chunk = config["population"], config["epsilon"], config["chunk"]
        return nne_variant(method, fitness, population, epsilon, chunk, schedule_generations=steps)

    return split_training(config, data, net, config["genes"], random_gene_map, rule)[0]


def compiled(t: Training):
    """`t`'s guarded step compiled for its first batch (`bbpes.train.compile_step`)."""
    return compile_step(t.learner, t.params, t.key, *batch_args(t.batch, 0))


CALIBRATION = "calibration.json"
"""`{method: {"steps", "step_seconds", "compile_seconds", ...}}` in the run directory."""


def stored_calibration(run_dir: RunDir, resume: bool) -> dict[str, dict]:
    """A resumed run's `calibration.json` (empty for a new run), each method's `steps`
    and `step_seconds` kept: a run keeps the step counts it started with, those of a
    calibration.json written before the interleaved rounds (the median of a method's
    iterations timed alone) included."""
    path = run_dir.file(CALIBRATION)
    if not (resume and path.exists()):
        return {}
    stored = json.loads(path.read_text())
    entries = stored.values() if isinstance(stored, dict) else [None]
    if not all(isinstance(e, dict) and {"steps", "step_seconds"} <= set(e) for e in entries):
        raise ConfigError(
            f"{path} is not an nne-vs-es calibration (each method's steps and "
            "step_seconds): start a new run rather than resume this one"
        )
    return stored


def timed_call(config, data, net, method: str) -> Call:
    """What `interleaved_calibration` times of `method`: its compiled step and the
    training loop's iteration `r` with it (no forward pass)."""
    t = method_training(config, data, net, method, 1)
    step = compiled(t)
    return step, loop_step(step, t.params, t.key, t.batch), None


def calibrate(config, data, net, methods: list[str], stored: dict, run_dir: RunDir) -> dict:
    """The calibrations of `methods`: those in `stored` (a resumed run's) are kept; the
    others are compiled and timed together (`interleaved_calibration`, the fastest of
    `calibration_steps` rounds), their budgets turned into `steps`, added to `stored`
    and written to `calibration.json`."""
    missing = [m for m in methods if m not in stored]
    if missing:
        calls = {m: timed_call(config, data, net, m) for m in missing}
        rounds = config["calibration_steps"]
        for method, timed in interleaved_calibration(calls, rounds).items():
            stored[method] = {
                "step_seconds": timed["step_seconds"],
                "compile_seconds": timed["compile_seconds"],
                "peak_bytes": timed["peak_bytes"],
                "steps": budget_steps(config["seconds"], timed["step_seconds"]),
                "statistic": f"fastest of {rounds} interleaved rounds",
            }
        run_dir.write_json(CALIBRATION, stored)
    return {m: stored[m] for m in methods}


def network_of(config, data: MnistData, method: str, t: Training) -> str:
    pixels, hidden, classes = data.train_x.shape[1], config["hidden"], data.classes
    if method in ES_METHODS:
        return f"dense MLP {pixels}-{hidden}-{classes}, {n_params(t.params):,} weights"
    return f"sparse {pixels}-{hidden}-{classes}, {config['genes']:,} genes"


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    data = load_data(config)
    net = sparse_net(config, data)
    histories, rows = {}, []
    stored = stored_calibration(run_dir, config["resume"])
    calibration = calibrate(config, data, net, config["methods"], stored, run_dir)
    for method, calibrated in calibration.items():
        steps = calibrated["steps"]
        t = method_training(config, data, net, method, steps)
        every = max(1, steps // config["evals"])
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
            step=compiled(t),  # compiled before the clock starts, as calibrated
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
    check_es(config, methods)
    if any(m in ES_METHODS for m in methods):
        require_fits(
            dense_population_bytes(config),
            f"{config['chunk']} perturbed dense MLPs evaluated at once",
        )
    require_fits(
        4.0 * (config["hidden"] * 28 * 28 * 2 + config["chunk"] * config["genes"]),
        "the network and the genotypes",
    )


SETTINGS = (
    *SPLIT,
    with_values(by_name(SPLIT)["hidden"], quick=100),
    Setting(
        "methods",
        ["nne", "nne_improved", "es", "evosax:Open_ES"],
        "the methods, each for the budget: nne, nne_improved (NNE's sparse network), es, "
        "evosax:Open_ES (a dense MLP)",
        choices=METHODS,
    ),
    Setting(
        "seconds",
        120.0,
        "wall budget per method: seconds of training steps (calibrated into a step count)",
        "s",
        positive=True,
        quick=10.0,
    ),
    Setting(
        "batch_images",
        200,
        "training images per generation / ES step, the same for every method (a multiple "
        "of image_block)",
        low=1,
        zero="every training image",
        quick=100,
    ),
    Setting(
        "population",
        200,
        "genotypes per generation N, and ES members per step (mirrored pairs)",
        low=2,
        quick=100,
    ),
    Setting(
        "chunk",
        100,
        "genotypes / ES members evaluated at once (memory, not results)",
        low=1,
        quick=50,
    ),
    Setting("evals", 30, "test evaluations (and checkpoints) per method over its budget", low=1),
    Setting(
        "calibration_steps",
        3,
        "interleaved rounds timing every method's step, to turn the budget into steps "
        "(the fastest of each method's)",
        low=1,
        high=100,
    ),
)

EXPERIMENT = Experiment(
    name="nne-vs-es",
    summary="NNE beside ES (ours, evosax OpenES) on the same MNIST split: accuracy against seconds at an equal budget",
    run=run,
    settings=SETTINGS,
    check=check,
)
