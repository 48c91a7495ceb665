"""`nne-mnist`: neural net evolution on MNIST ("Biologically plausible neural networks
via evolutionary dynamics and dopaminergic plasticity", section 3.1): test accuracy over
generations and wall time, the allele distribution (Fig. 2), accuracy against the
number of genes (Fig. 3), NNE + SignSGD on the output layer (Eq. 5) and SGD (Adam) on
the same architecture, with Table 1 of the paper beside ours.

`method` is an NNE rule (`nne`, the paper's; `nne_improved`), which evolves the
paper's sparse gene-to-link network, or an ES (`es`, ours; `evosax:Open_ES`), which
trains a dense MLP of the same layer sizes (784-H-C, with biases) on the same images:
the same training images per step as an NNE generation (`batch_images`), the same
population (`population`) and the same test set. `nne-vs-es` runs several at an equal
wall budget."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from ..estimators.backprop import bptt
from ..learners import GradientLearner
from ..learners.nne import GeneMap, sample_genotypes
from ..models.sparse_mlp import SparseMLP
from ..runs import RunDir
from ..tasks.mnist import MnistData, batch_indices
from ..tasks.mnist_nne import (
    ClippedFitness,
    accuracy_fn,
    masked_initial_params,
    masked_logits,
    masked_loss,
)
from ..tasks.mnist_nne_setup import Training, es_training, load_data, sparse_net
from ..tasks.readout import FeatureReadout
from ..train import train
from .base import Experiment, require, require_at_least, require_fits, require_positive
from .history import last, seconds_per_iteration, steps_per_second
from .mnist_data import (
    DATA_DEFAULTS,
    DATA_HELP,
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
from .nne_mnist_report import (
    PAPER_TABLE1,
    plot_accuracy,
    plot_alleles,
    plot_es,
    plot_genes,
    write_table,
)

__all__ = ["DATA_DEFAULTS", "DATA_HELP", "ClippedFitness", "last"]  # importable from here too


def evolve(
    config: dict[str, Any],
    data: MnistData,
    net: SparseMLP,
    genes: int,
    generations: int,
    run_dir: RunDir,
    label: str,
) -> tuple[Array, GeneMap, list[dict]]:
    """Run NNE with `genes` genes for `generations`; returns `(p, W, history)`."""
    t, gene_map = nne_training(
        config, data, net, config["method"], genes, generations, config["eval_samples"]
    )
    result = fit(
        t, config, generations, run_dir, label, tags={"genes": genes}, progress_keys=PROGRESS
    )
    return result.params, gene_map, result.history


PROGRESS = ("loss", "fitness_mean", "accuracy")


def fit(t: Training, config: dict[str, Any], steps: int, run_dir: RunDir, label: str, **kw):
    """`train` `t` for `steps`, evaluated and checkpointed as the settings say."""
    return train(
        t.learner,
        t.params,
        t.key,
        steps=steps,
        batch=t.batch,
        evaluate=t.evaluate,
        eval_every=config["eval_every"],
        run=run_dir,
        label=label,
        checkpoint_every=config["checkpoint_every"],
        resume=config["resume"],
        **kw,
    )


def sgd_baseline(
    config: dict[str, Any], data: MnistData, net: SparseMLP, run_dir: RunDir
) -> list[dict]:
    """SGD (Adam) on every weight of the same sparse architecture (no biases)."""
    mask = net.mask()
    params = masked_initial_params(net, config["edge_prob"], jax.random.key(config["seed"] + 1))
    test_x, test_y = jnp.asarray(data.test_x), jnp.asarray(data.test_y)
    accuracy = jax.jit(lambda p: jnp.mean(jnp.argmax(masked_logits(p, mask, test_x), -1) == test_y))
    n = len(data.train_x)
    train_x, train_y = jnp.asarray(data.train_x), jnp.asarray(data.train_y)

    def batch(i):
        index = batch_indices(i, n, config["batch_size"], config["seed"] + 1)
        return train_x[index], train_y[index]

    result = train(
        GradientLearner(
            bptt(lambda p, x, y: masked_loss(p, mask, x, y)), optax.adam(config["sgd_lr"])
        ),
        params,
        jax.random.key(config["seed"] + 1),
        steps=config["sgd_steps"],
        batch=batch,
        evaluate=lambda p: {"accuracy": accuracy(p)},
        eval_every=max(n // config["batch_size"], 1),
        run=run_dir,
        label="sgd",
        resume=config["resume"],
    )
    return result.history


def nne_signsgd(
    config: dict[str, Any],
    data: MnistData,
    net: SparseMLP,
    gene_map: GeneMap,
    p: Array,
    run_dir: RunDir,
) -> tuple[float, list[dict]]:
    """Section 3.1, "NNE with output layer training": one genotype drawn from the
    evolved `p`, then SignSGD (Eq. 5) on its output layer only, test accuracy after
    every epoch. Returns the drawn network's accuracy before training and the history."""
    genotype = sample_genotypes(jax.random.key(config["seed"] + 2), p, 1)[0]
    weights = gene_map(genotype)
    w1, w2 = net.split(weights)
    start = float(accuracy_fn(net, data.test_x, data.test_y)(weights))
    train_f, test_f = (
        np.asarray(jax.nn.relu(jnp.asarray(x) @ w1.T)) for x in (data.train_x, data.test_x)
    )
    task = FeatureReadout(
        train_f, data.train_y, test_f, data.test_y, config["batch_size"], config["seed"]
    )
    result = train(
        GradientLearner(bptt(task.loss), optax.sign_sgd(config["signsgd_lr"])),
        w2,
        jax.random.key(config["seed"]),
        steps=config["signsgd_steps"],
        batch=task.batch,
        evaluate=task.evaluate,
        eval_every=task.steps_per_epoch,
        run=run_dir,
        label="nne+signsgd",
        resume=config["resume"],
    )
    return start, result.history


def reuses_main_run(config: dict[str, Any], genes: int) -> bool:
    """Whether the Fig. 3 point for `genes` is the main run's record at
    `sweep_generations` (same genes, and a generation the main run evaluated)."""
    return (
        genes == config["genes"]
        and config["sweep_generations"] <= config["generations"]
        and config["sweep_generations"] % config["eval_every"] == 0
    )


def run_es(config: dict[str, Any], data: MnistData, run_dir: RunDir) -> dict[str, Any]:
    """`method` an ES: the dense MLP for `generations` steps, accuracy over steps."""
    t = es_training(config, data, config["method"])
    history = fit(t, config, config["generations"], run_dir, config["method"]).history
    plot_es(run_dir, history, config["method"], data)
    return {
        "method": config["method"],
        "data": data.source,
        "train_images": len(data.train_x),
        "test_images": len(data.test_x),
        "test_accuracy": last(history),
        "steps": max((r["step"] for r in history), default=0),
        "seconds_per_step": seconds_per_iteration(history),
    }


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    data = load_data(config)
    if config["method"] in ES_METHODS:
        return run_es(config, data, run_dir)
    net = sparse_net(config, data)
    p, gene_map, history = evolve(
        config, data, net, config["genes"], config["generations"], run_dir, "nne"
    )
    sweep = {}
    for genes in config["genes_sweep"]:
        if reuses_main_run(config, genes):  # the same seed and genes: the same trajectory
            sweep[genes] = [r for r in history if r["step"] <= config["sweep_generations"]]
            continue
        _, _, sweep_history = evolve(
            config, data, net, genes, config["sweep_generations"], run_dir, f"nne-genes{genes}"
        )
        sweep[genes] = sweep_history
    start, signsgd_history = nne_signsgd(config, data, net, gene_map, p, run_dir)
    sgd_history = sgd_baseline(config, data, net, run_dir)

    ours = {
        "nne": last(history),
        "nne_signsgd": last(signsgd_history),
        "sgd": last(sgd_history),
    }
    train_seconds = max((r.get("seconds", 0.0) for r in history), default=0.0)
    rate = steps_per_second(history)
    metrics: dict[str, Any] = {
        "nne_variant": config["method"],  # which rule the *_nne metrics are of
        "data": data.source,
        "classes": data.classes,
        "train_images": len(data.train_x),
        "test_images": len(data.test_x),
        "links": net.n_links,
        "genes": config["genes"],
        **{f"test_accuracy_{k}": v for k, v in ours.items()},
        "test_accuracy_nne_mean_weights": last(history, "accuracy_mean_weights"),
        "test_accuracy_nne_sampled": last(history, "accuracy_sampled"),
        "test_accuracy_nne_signsgd_start": start,
        "generations": max((r["step"] for r in history), default=0),
        "generations_per_second": rate,
        "nne_train_seconds": train_seconds,
        "network_evaluations_per_second": rate * config["population"] * len(data.train_x),
        **{f"paper_test_accuracy_{k}": v for k, v in PAPER_TABLE1[data.classes].items()},
        **{f"test_accuracy_nne_genes{g}": last(h) for g, h in sweep.items()},
    }
    write_table(run_dir, metrics, data)
    plot_accuracy(run_dir, history, signsgd_history, sgd_history, data)
    plot_alleles(run_dir, history, data)
    if sweep:
        plot_genes(run_dir, sweep, data, config)
    return metrics


def check(config: dict[str, Any]) -> None:
    check_split(config)
    require_at_least(config, 1, "generations", "sweep_generations", "eval_every")
    require_at_least(config, 1, "checkpoint_every", "batch_size", "signsgd_steps", "sgd_steps")
    require(all(g >= 1 for g in config["genes_sweep"]), "genes_sweep values must be >= 1")
    require_positive(config, "signsgd_lr", "sgd_lr")
    require(config["eval_samples"] >= 0, "eval_samples must be >= 0 (0: none)")
    check_es(config, [config["method"]])
    genes = max([config["genes"], *config["genes_sweep"]])
    pixels = 28 * 28
    require_fits(
        4.0 * (config["hidden"] * pixels * 4 + (config["chunk"] + config["eval_samples"]) * genes)
        + 8.0 * config["population"],
        "the network (dense first layer and Adam's moments) and the genotypes",
    )


EXPERIMENT = Experiment(
    name="nne-mnist",
    summary="neural net evolution (allele frequencies, Eq. 3) on MNIST: Table 1, Figs. 2-3",
    run=run,
    defaults={
        **SPLIT_DEFAULTS,
        "method": "nne",
        "batch_images": 0,
        "population": 1000,
        "generations": 1000,
        "eval_every": 20,
        "eval_samples": 4,
        "genes_sweep": [500, 1000, 2000, 5000],
        "sweep_generations": 100,
        "chunk": 125,
        "checkpoint_every": 10,
        "batch_size": 50,
        "signsgd_lr": 0.01,
        "signsgd_steps": 300,
        "sgd_lr": 1e-3,
        "sgd_steps": 2000,
    },
    quick={
        **SPLIT_QUICK,
        "hidden": 200,
        "generations": 80,
        "eval_every": 10,
        "eval_samples": 2,
        "genes_sweep": [250, 1000],
        "sweep_generations": 20,
        "signsgd_steps": 100,
        "sgd_steps": 200,
    },
    choices={**SPLIT_CHOICES, "method": METHOD_CHOICES},
    check=check,
    help={
        **SPLIT_HELP,
        "method": "nne: the paper's rule; nne_improved: centered ranks, Malthusian selection, cosine epsilon (docs/nne_dopamine.md); es, evosax:Open_ES: a dense MLP of the same sizes (accuracy.png only)",
        "population": "genotypes per generation N (the paper: 1000), and ES members per step",
        "batch_images": "training images per generation / ES step (0: all, the paper's; a multiple of image_block)",
        "genes_sweep": "numbers of genes for Fig. 3 (empty: skip)",
        "signsgd_lr": "SignSGD step epsilon' on the output layer (Eq. 5)",
        "sgd_lr": "Adam learning rate of the SGD baseline",
        "generations": "NNE generations (ES steps) of the main run",
        "eval_every": "generations (ES steps) between test evaluations",
        "eval_samples": "genotypes drawn from p at each evaluation (0: none)",
        "sweep_generations": "generations of each Fig. 3 run",
        "checkpoint_every": "generations between checkpoints",
        "batch_size": "minibatch of SignSGD and the SGD baseline",
        "signsgd_steps": "SignSGD steps on the output layer",
        "sgd_steps": "Adam steps of the SGD baseline",
    },
)
