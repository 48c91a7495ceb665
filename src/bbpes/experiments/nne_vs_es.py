"""`nne-vs-es`: NNE beside evolution strategies on the same MNIST split, at an equal
wall budget ("Biologically plausible neural networks via evolutionary dynamics and
dopaminergic plasticity", section 3.1; issue 19): test accuracy against wall seconds,
one line per method, and the accuracy at the budget and seconds to the paper's NNE.

Also the methods on NNE's split, which `nne-mnist` trains too (`Training`,
`nne_training`, `es_training`):

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
`calibration_steps` steps, after compiling, in the same command), and the budget of
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from ..learners.nne import GeneMap, random_gene_map, sample_genotypes
from ..learners.nne_variants import VARIANTS, nne_variant
from ..models.sparse_mlp import SparseMLP, population_inputs, random_sparse_mlp
from ..runs import RunDir
from ..signals import make_learner
from ..tasks.mnist import MnistData, load_mnist
from ..tasks.mnist_nne import ClippedFitness, DenseSplit, ImageBatches, accuracy_fn
from ..train import guarded_step, train
from .base import Experiment, n_params, require, require_at_least, require_fits, require_positive
from .mnist_data import DATA_CHOICES, DATA_DEFAULTS, DATA_HELP, check_data
from .nne_mnist_report import (
    ALLELE_GRID,
    PAPER_TABLE1,
    plot_accuracy_vs_seconds,
    write_comparison,
)

NNE_METHODS = tuple(VARIANTS)
"""The NNE rules (`bbpes.learners.nne_variants.VARIANTS`): the sparse network's genes."""
ES_METHODS = ("es", "evosax:Open_ES")
"""The evolution strategies (`bbpes.signals` names): a dense MLP of the same sizes."""


@dataclass(frozen=True)
class Training:
    """What `bbpes.train.train` needs to train one method: `learner`, initial `params`,
    `key`, `batch(i)` (step `i`'s images) and `evaluate(params) -> {"accuracy", ...}`."""

    learner: Any
    params: Any
    key: Array
    batch: Callable[[int], tuple]
    evaluate: Callable[[Any], dict]


def load_data(config: dict[str, Any]) -> MnistData:
    return load_mnist(
        config["data_dir"] or None,
        digits=tuple(range(config["classes"])),
        train_per_digit=config["train_per_digit"],
        test_per_digit=config["test_per_digit"] or None,
        source=config["data_source"],
        scaling=config["scaling"],
        seed=config["seed"],
    )


def sparse_net(config: dict[str, Any], data: MnistData) -> SparseMLP:
    """The paper's sparse network: `hidden` units, each pixel edge with `edge_prob`."""
    rng = np.random.default_rng(config["seed"])
    return random_sparse_mlp(
        rng, data.train_x.shape[1], config["hidden"], data.classes, config["edge_prob"]
    )


def nne_evaluator(net: SparseMLP, gene_map: GeneMap, data: MnistData, samples: int, key: Array):
    """`p -> metrics`: test accuracy of the most probable genotype (`p > 1/2`, the
    headline `accuracy`), of the mean weights `W p`, of `samples` genotypes drawn from
    `p` (mean), and the allele distances from fixation of Fig. 2."""
    accuracy = accuracy_fn(net, data.test_x, data.test_y)

    def evaluate(p: Array) -> dict[str, float]:
        out = {
            "accuracy": accuracy(gene_map((p > 0.5).astype(p.dtype))),
            "accuracy_mean_weights": accuracy(gene_map(p)),
        }
        if samples:
            genotypes = sample_genotypes(key, p, samples)
            out["accuracy_sampled"] = np.mean([accuracy(gene_map(x)) for x in genotypes])
        distance = jnp.minimum(p, 1 - p)
        for x in ALLELE_GRID:
            out[f"alleles_within_{x:g}"] = jnp.mean(distance <= x)
        return out

    return evaluate


def nne_training(
    config: dict[str, Any],
    data: MnistData,
    net: SparseMLP,
    method: str,
    genes: int,
    generations: int,
    eval_samples: int = 0,
) -> tuple[Training, GeneMap]:
    """NNE rule `method` with `genes` genes (its `eps` schedule over `generations`);
    returns the `Training` and the gene map `W`."""
    rng = np.random.default_rng([config["seed"], genes])
    gene_map = random_gene_map(rng, net.n_links, genes, config["beta"])
    inputs = population_inputs(
        net,
        data.train_x,
        data.train_y,
        image_block=config["image_block"],
        hidden_block=config["hidden_block"],
    )
    fitness = ClippedFitness(
        gene_map.rows(np.asarray(inputs.links)), float(np.log(data.classes) ** 2)
    )
    learner = nne_variant(
        method,
        fitness,
        config["population"],
        config["epsilon"],
        config["chunk"],
        **({"schedule_generations": generations} if method != "nne" else {}),
    )
    batches = ImageBatches(inputs, config["batch_images"] or len(data.train_x), config["seed"])
    p0 = jnp.asarray(rng.uniform(0.0, 1.0, genes), jnp.float32)  # p^1 uniform in [0, 1]^n
    key = jax.random.key(config["seed"])
    evaluate = nne_evaluator(net, gene_map, data, eval_samples, key)
    return Training(learner, p0, key, batches, evaluate), gene_map


def es_training(config: dict[str, Any], data: MnistData, method: str) -> Training:
    """ES `method` (`ES_METHODS`) on a dense ReLU MLP 784-`hidden`-C: `population`
    members per step (mirrored pairs), `chunk` at a time, search std `sigma`, Adam at
    `lr_es` on the ES gradient, generation `i`'s images (`DenseSplit`)."""
    size = config["batch_images"] or len(data.train_x)
    task = DenseSplit(data.train_x, data.train_y, data.test_x, data.test_y, size, config["seed"])
    key = jax.random.key(config["seed"])
    model = task.initial_model(config["hidden"], data.classes, jax.random.fold_in(key, 1))
    knobs = {"samples": config["population"], "sigma": config["sigma"], "es_chunk": config["chunk"]}
    learner = make_learner(method, task.loss_forms(), optax.adam(config["lr_es"]), knobs)
    return Training(learner, model, key, task.batch, task.evaluate)


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


def step_seconds(t: Training, repeats: int) -> tuple[float, float]:
    """`(median seconds of one step, seconds of the first, compiling, call)` of `t`'s
    step on batch 0, timed `repeats` times after the first call."""
    compiling = warm_up(t)
    step, state, args = guarded_step(t.learner), t.learner.init(t.params), t.batch(0)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(step(state, jax.random.fold_in(t.key, r), *args))
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


def check_split(config: dict[str, Any]) -> None:
    """The split, the network and the population settings both experiments share."""
    check_data(config, train_zero_is_all=False)
    require_at_least(config, 1, "hidden", "genes", "chunk", "image_block", "hidden_block")
    require(0 < config["edge_prob"] <= 1 and 0 < config["beta"] <= 1, "probabilities in (0, 1]")
    require_positive(config, "epsilon", "sigma", "lr_es")
    require(config["population"] >= 2, "population must be >= 2")
    require(config["batch_images"] >= 0, "batch_images must be >= 0 (0: every training image)")
    require(
        config["batch_images"] % config["image_block"] == 0,
        f"batch_images must be a multiple of image_block ({config['image_block']})",
    )
    require(
        config["population"] % config["chunk"] == 0,
        f"chunk {config['chunk']} must divide population {config['population']}",
    )
    n_train = config["train_per_digit"] * config["classes"]
    require(
        n_train % config["image_block"] == 0,
        f"image_block {config['image_block']} must divide the {n_train} training images",
    )
    require(
        config["batch_images"] <= n_train,
        f"batch_images must be at most the {n_train} training images",
    )
    require(
        config["hidden_block"] <= config["hidden"],
        f"hidden_block must be <= hidden ({config['hidden']})",
    )


def check_es(config: dict[str, Any], methods: list[str]) -> None:
    """With an ES among `methods`: an even population (mirrored pairs) whose `chunk`
    perturbed dense MLPs and their activations fit in memory."""
    if not any(m in ES_METHODS for m in methods):
        return
    require(config["population"] % 2 == 0, "population must be even for ES (mirrored pairs)")
    weights = (28 * 28 + 1) * config["hidden"] + (config["hidden"] + 1) * config["classes"]
    images = config["batch_images"] or config["train_per_digit"] * config["classes"]
    require_fits(
        4.0 * config["chunk"] * (weights + images * config["hidden"]),
        f"{config['chunk']} perturbed dense MLPs evaluated at once",
    )


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


METHOD_CHOICES = (*NNE_METHODS, *ES_METHODS)

SPLIT_HELP = {
    **DATA_HELP,
    "classes": "digits 0..classes-1 (5: MNIST 0-4, 10: MNIST 0-9)",
    "train_per_digit": "training images per digit (the set S; the paper: 200)",
    "test_per_digit": "test images per digit (0 = every one)",
    "hidden": "hidden ReLU units, NNE's sparse network and ES's dense MLP (the paper: 1000)",
    "edge_prob": "probability of each input-hidden edge of NNE's network (the paper: 0.1)",
    "genes": "number of genes n",
    "beta": "density of the weight-generation matrix W (the paper: 0.0025)",
    "batch_images": "training images per generation / ES step, the same for every method (0: all; a multiple of image_block)",
    "population": "genotypes per generation N, and ES members per step (mirrored pairs)",
    "epsilon": "selection strength of NNE's Eq. 3 (the paper does not give it; see docs)",
    "sigma": "ES search std per weight (es and evosax:Open_ES)",
    "lr_es": "Adam learning rate on the ES gradient (es and evosax:Open_ES)",
    "chunk": "genotypes / ES members evaluated at once (memory, not results)",
    "image_block": "training images per block of NNE's population forward pass",
    "hidden_block": "hidden units per cache block of NNE's population forward pass",
}

EXPERIMENT = Experiment(
    name="nne-vs-es",
    summary="NNE beside ES (ours, evosax OpenES) on the same MNIST split: accuracy against seconds at an equal budget",
    run=run,
    defaults={
        **DATA_DEFAULTS,
        "classes": 5,
        "train_per_digit": 200,
        "test_per_digit": 0,
        "hidden": 1000,
        "edge_prob": 0.1,
        "genes": 5000,
        "beta": 0.0025,
        "methods": ["nne", "nne_improved", "es", "evosax:Open_ES"],
        "seconds": 120.0,
        "batch_images": 200,
        "population": 200,
        "epsilon": 10.0,
        "sigma": 0.02,
        "lr_es": 0.03,
        "chunk": 100,
        "image_block": 100,
        "hidden_block": 10,
        "evals": 30,
        "calibration_steps": 3,
    },
    quick={
        "train_per_digit": 40,
        "test_per_digit": 100,
        "hidden": 100,
        "genes": 1000,
        "population": 100,
        "chunk": 50,
        "batch_images": 100,
        "seconds": 10.0,
    },
    choices={"classes": (5, 10), "methods": METHOD_CHOICES, **DATA_CHOICES},
    check=check,
    help={
        **SPLIT_HELP,
        "methods": "the methods, each for the budget: nne, nne_improved (NNE's sparse network), es, evosax:Open_ES (a dense MLP)",
        "seconds": "wall budget per method: seconds of training steps (calibrated into a step count)",
        "evals": "test evaluations (and checkpoints) per method over its budget",
        "calibration_steps": "steps timed per method to turn the budget into steps (median)",
    },
)
