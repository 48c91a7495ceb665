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
from ..framework import Experiment, Setting
from ..framework.checks import require_fits
from ..history import last, seconds_per_iteration, steps_per_second
from ..learners import GradientLearner
from ..learners.nne import GeneMap, random_gene_map, sample_genotypes
from ..learners.nne_variants import VARIANTS, nne_variant
from ..models.sparse_mlp import SparseMLP
from ..runs import RunDir
from ..settings import by_name, with_values
from ..tasks.mnist import MnistData, batch_indices
from ..tasks.mnist_nne import accuracy_fn, masked_initial_params, masked_logits, masked_loss
from ..tasks.mnist_nne_setup import Training, es_training, load_data, sparse_net
from ..tasks.mnist_nne_setup import nne_training as split_training
from ..tasks.mnist_settings import (
    ES_METHODS,
    SPLIT,
    check_es,
    check_split,
    dense_population_bytes,
)
from ..tasks.readout import FeatureReadout
from ..train import train
from .nne_mnist_report import (
    PAPER_TABLE1,
    plot_accuracy,
    plot_alleles,
    plot_es,
    plot_genes,
    write_table,
)

METHODS = (*VARIANTS, *ES_METHODS)
"""The NNE rules (`bbpes.learners.nne_variants.VARIANTS`), which evolve the sparse
network's genes, and the evolution strategies, which train a dense MLP."""


def nne_training(
    config: dict[str, Any],
    data: MnistData,
    net: SparseMLP,
    method: str,
    genes: int,
    generations: int,
    eval_samples: int = 0,
) -> tuple[Training, GeneMap]:
    """NNE rule `method` (`VARIANTS`) with `genes` genes (its `eps` schedule over
    `generations`), `eval_samples` genotypes drawn at each evaluation: the `Training`
    of `bbpes.tasks.mnist_nne_setup.nne_training` and the gene map `W`."""

    def rule(fitness):
        population, epsilon, chunk = config["population"], config["epsilon"], config["chunk"]
        return nne_variant(
            method, fitness, population, epsilon, chunk, schedule_generations=generations
        )

    def sample(key, p):
        return sample_genotypes(key, p, eval_samples)

    draw = sample if eval_samples else None
    return split_training(config, data, net, genes, random_gene_map, rule, draw)


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
    check_es(config, [config["method"]])
    if config["method"] in ES_METHODS:
        require_fits(
            dense_population_bytes(config),
            f"{config['chunk']} perturbed dense MLPs evaluated at once",
        )
    genes = max([config["genes"], *config["genes_sweep"]])
    pixels = 28 * 28
    require_fits(
        4.0 * (config["hidden"] * pixels * 4 + (config["chunk"] + config["eval_samples"]) * genes)
        + 8.0 * config["population"],
        "the network (dense first layer and Adam's moments) and the genotypes",
    )


SETTINGS = (
    *SPLIT,
    with_values(by_name(SPLIT)["hidden"], quick=200),
    Setting(
        "method",
        "nne",
        "nne: the paper's rule; nne_improved: centered ranks, Malthusian selection, cosine "
        "epsilon (docs/nne_dopamine.md); es, evosax:Open_ES: a dense MLP of the same sizes "
        "(accuracy.png only)",
        choices=METHODS,
    ),
    Setting(
        "batch_images",
        0,
        "training images per generation / ES step (the paper: all; a multiple of image_block)",
        low=1,
        zero="every training image",
    ),
    Setting(
        "population",
        1000,
        "genotypes per generation N (the paper: 1000), and ES members per step",
        low=2,
        quick=100,
    ),
    Setting("generations", 1000, "NNE generations (ES steps) of the main run", low=1, quick=80),
    Setting("eval_every", 20, "generations (ES steps) between test evaluations", low=1, quick=10),
    Setting(
        "eval_samples", 4, "genotypes drawn from p at each evaluation (0: none)", low=0, quick=2
    ),
    Setting(
        "genes_sweep",
        [500, 1000, 2000, 5000],
        "numbers of genes for Fig. 3 (empty: skip)",
        low=1,
        quick=[250, 1000],
    ),
    Setting("sweep_generations", 100, "generations of each Fig. 3 run", low=1, quick=20),
    Setting(
        "chunk",
        125,
        "genotypes / ES members evaluated at once (memory, not results)",
        low=1,
        quick=50,
    ),
    Setting("checkpoint_every", 10, "generations between checkpoints", low=1),
    Setting("batch_size", 50, "minibatch of SignSGD and the SGD baseline", low=1),
    Setting("signsgd_lr", 0.01, "SignSGD step epsilon' on the output layer (Eq. 5)", positive=True),
    Setting("signsgd_steps", 300, "SignSGD steps on the output layer", low=1, quick=100),
    Setting("sgd_lr", 1e-3, "Adam learning rate of the SGD baseline", positive=True),
    Setting("sgd_steps", 2000, "Adam steps of the SGD baseline", low=1, quick=200),
)

EXPERIMENT = Experiment(
    name="nne-mnist",
    summary="neural net evolution (allele frequencies, Eq. 3) on MNIST: Table 1, Figs. 2-3",
    run=run,
    settings=SETTINGS,
    check=check,
)
