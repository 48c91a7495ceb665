"""The MNIST settings that `nne-mnist`, `nne-vs-es` and `dopamine-mnist` share, and
their checks: the data (`DATA_*`, all three), and NNE's split, network and population
(`SPLIT_*`, `check_split`, `check_es`, the two NNE experiments), and the NNE rule on
that split (`nne_training`: its gene map and learner come from `bbpes.learners`, which
the task layer, `bbpes.tasks.mnist_nne_setup`, does not import)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ..learners.nne import GeneMap, random_gene_map, sample_genotypes
from ..learners.nne_variants import VARIANTS, nne_variant
from ..models.sparse_mlp import SparseMLP
from ..tasks.mnist import SCALINGS, SOURCES, MnistData, locate
from ..tasks.mnist_nne_setup import Training
from ..tasks.mnist_nne_setup import nne_training as split_training
from .base import require, require_at_least, require_fits, require_positive

DATA_DEFAULTS = {
    "data_dir": "",
    "data_source": "auto",
    "scaling": "unit",
}
DATA_HELP = {
    "data_dir": "directory of the MNIST IDX files ('' = $BBPES_DATA, then the cache, then download)",
    "data_source": "standard (train-*/t10k-*), t10k (first/last 5000 of t10k) or auto",
    "scaling": "pixels in [0, 1] (unit) or standardized",
}
DATA_CHOICES = {"data_source": SOURCES, "scaling": SCALINGS}

MOST_TRAIN_PER_DIGIT = 6742
"""Images of the most frequent digit (1) in MNIST's 60,000 training images."""
MOST_TEST_PER_DIGIT = 1135
"""Images of the most frequent digit (1) in MNIST's 10,000 test images."""


def check_data(config: dict[str, Any], *, train_zero_is_all: bool) -> None:
    """`train_per_digit` (0 = every image only where `train_zero_is_all`) and
    `test_per_digit` (0 = every image) within what MNIST holds, and `data_dir` holds
    the files. (The t10k split holds about half as many of each digit as a bound
    allows; a larger request is refused when the data are loaded.)"""
    low = 0 if train_zero_is_all else 1
    require(
        low <= config["train_per_digit"] <= MOST_TRAIN_PER_DIGIT,
        f"train_per_digit must be in {low}..{MOST_TRAIN_PER_DIGIT}"
        + (" (0: every image)" if train_zero_is_all else ""),
    )
    require(
        0 <= config["test_per_digit"] <= MOST_TEST_PER_DIGIT,
        f"test_per_digit must be in 0..{MOST_TEST_PER_DIGIT} (0: every image)",
    )
    if config["data_dir"]:
        require(locate(config["data_dir"]) is not None, f"no MNIST files in {config['data_dir']}")


NNE_METHODS = tuple(VARIANTS)
"""The NNE rules (`bbpes.learners.nne_variants.VARIANTS`): the sparse network's genes."""
ES_METHODS = ("es", "evosax:Open_ES")
"""The evolution strategies (`bbpes.signals` names): a dense MLP of the same sizes."""
METHOD_CHOICES = (*NNE_METHODS, *ES_METHODS)

SPLIT_DEFAULTS = {
    **DATA_DEFAULTS,
    "classes": 5,
    "train_per_digit": 200,
    "test_per_digit": 0,
    "hidden": 1000,
    "edge_prob": 0.1,
    "genes": 5000,
    "beta": 0.0025,
    "epsilon": 10.0,
    "sigma": 0.02,
    "lr_es": 0.03,
    "image_block": 100,
    "hidden_block": 10,
}
"""The split, the network and the population settings both NNE experiments share (the
paper's where it gives them); each adds `batch_images`, `population` and `chunk`."""
SPLIT_QUICK = {
    "train_per_digit": 40,
    "test_per_digit": 100,
    "genes": 1000,
    "population": 100,
    "chunk": 50,
}
SPLIT_CHOICES = {"classes": (5, 10), **DATA_CHOICES}
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


def nne_training(
    config: dict[str, Any],
    data: MnistData,
    net: SparseMLP,
    method: str,
    genes: int,
    generations: int,
    eval_samples: int = 0,
) -> tuple[Training, GeneMap]:
    """NNE rule `method` (`NNE_METHODS`) with `genes` genes (its `eps` schedule over
    `generations`), `eval_samples` genotypes drawn at each evaluation; returns the
    `Training` (`bbpes.tasks.mnist_nne_setup.nne_training`) and the gene map `W`."""
    rng = np.random.default_rng([config["seed"], genes])
    gene_map = random_gene_map(rng, net.n_links, genes, config["beta"])
    p0 = jnp.asarray(rng.uniform(0.0, 1.0, genes), jnp.float32)  # p^1 uniform in [0, 1]^n
    schedule = {"schedule_generations": generations} if method != "nne" else {}

    def rule(fitness):
        population, epsilon, chunk = config["population"], config["epsilon"], config["chunk"]
        return nne_variant(method, fitness, population, epsilon, chunk, **schedule)

    def sample(key, p):
        return sample_genotypes(key, p, eval_samples)

    t = split_training(config, data, net, gene_map, p0, rule, sample if eval_samples else None)
    return t, gene_map
