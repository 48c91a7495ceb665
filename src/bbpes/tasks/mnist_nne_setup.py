"""Neural net evolution's MNIST split as a configuration describes it (the settings of
`nne-mnist` and `nne-vs-es`: `bbpes show nne-mnist`): the data, the paper's sparse
network, and what `bbpes.train.train` needs to train an NNE rule or an evolution
strategy on them (`Training`), every method on the same training images at every step
(`bbpes.tasks.mnist_nne.generation_images`) and evaluated on the same test set.

The task layer does not import `bbpes.learners` (docs/architecture.md): `nne_training`
takes the draw of the gene map `W` and the rule from its caller (an experiment, which
picks them from `bbpes.learners.nne` and `bbpes.learners.nne_variants`), and
`es_training` has its learner from `bbpes.signals.make_learner`. The settings are
`bbpes.tasks.mnist_settings.SPLIT`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from ..models.sparse_mlp import SparseMLP, population_inputs, random_sparse_mlp
from ..signals import make_learner
from .mnist import MnistData, load_mnist
from .mnist_nne import ClippedFitness, DenseSplit, ImageBatches, accuracy_fn

ALLELE_GRID = (0.001, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
"""The distances `x` from fixation at which NNE's evaluation counts the alleles (Fig. 2)."""


@dataclass(frozen=True)
class Training:
    """What `bbpes.train.train` needs to train one method: `learner`, initial `params`,
    `key`, `batch(i)` (step `i`'s images) and `evaluate(params) -> {"accuracy", ...}`."""

    learner: Any
    params: Any
    key: Array
    batch: Callable[[int], tuple]
    evaluate: Callable[[Any], dict]


def load_data(config: Mapping[str, Any]) -> MnistData:
    """Digits `0..classes-1`, `train_per_digit` / `test_per_digit` images of each."""
    return load_mnist(
        config["data_dir"] or None,
        digits=tuple(range(config["classes"])),
        train_per_digit=config["train_per_digit"],
        test_per_digit=config["test_per_digit"] or None,
        source=config["data_source"],
        scaling=config["scaling"],
        seed=config["seed"],
    )


def sparse_net(config: Mapping[str, Any], data: MnistData) -> SparseMLP:
    """The paper's sparse network: `hidden` units, each pixel edge with `edge_prob`."""
    rng = np.random.default_rng(config["seed"])
    return random_sparse_mlp(
        rng, data.train_x.shape[1], config["hidden"], data.classes, config["edge_prob"]
    )


def nne_evaluator(
    net: SparseMLP, gene_map: Any, data: MnistData, sample: Callable[[Array], Array] | None
):
    """`p -> metrics`: test accuracy of the most probable genotype (`p > 1/2`, the
    headline `accuracy`), of the mean weights `W p`, of the genotypes `sample(p) (s,
    n)` (mean; none when `sample` is None), and the fraction of alleles within each
    `ALLELE_GRID` distance of fixation (Fig. 2). `gene_map` is `W`, a
    `bbpes.learners.nne.GeneMap`."""
    accuracy = accuracy_fn(net, data.test_x, data.test_y)

    def evaluate(p: Array) -> dict[str, float]:
        out = {
            "accuracy": accuracy(gene_map((p > 0.5).astype(p.dtype))),
            "accuracy_mean_weights": accuracy(gene_map(p)),
        }
        if sample is not None:
            out["accuracy_sampled"] = np.mean([accuracy(gene_map(x)) for x in sample(p)])
        distance = jnp.minimum(p, 1 - p)
        for x in ALLELE_GRID:
            out[f"alleles_within_{x:g}"] = jnp.mean(distance <= x)
        return out

    return evaluate


def nne_training(
    config: Mapping[str, Any],
    data: MnistData,
    net: SparseMLP,
    genes: int,
    draw_gene_map: Callable[[np.random.Generator, int, int, float], Any],
    rule: Callable[[ClippedFitness], Any],
    sample: Callable[[Array, Array], Array] | None = None,
) -> tuple[Training, Any]:
    """An NNE rule on `net` with `genes` genes; returns the `Training` and the gene map.

    From the generator `default_rng([seed, genes])`: the gene map `W (m, n) =
    draw_gene_map(rng, m links, n genes, beta)` (`bbpes.learners.nne.random_gene_map`),
    then the first allele frequencies `p^1 (n,)` uniform in [0, 1]. `rule(fitness)` is
    the learner of the clipped fitness (`ClippedFitness`) on the images of
    `ImageBatches` (`batch_images` a generation, 0: all), and `sample(key, p) ->
    genotypes (s, n)` what the evaluation draws (`nne_evaluator`; None: nothing). The
    key is `seed`'s."""
    rng = np.random.default_rng([config["seed"], genes])
    gene_map = draw_gene_map(rng, net.n_links, genes, config["beta"])
    p0 = jnp.asarray(rng.uniform(0.0, 1.0, genes), jnp.float32)  # p^1 uniform in [0, 1]^n
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
    batches = ImageBatches(inputs, config["batch_images"] or len(data.train_x), config["seed"])
    key = jax.random.key(config["seed"])
    draw = None if sample is None else (lambda p: sample(key, p))
    evaluate = nne_evaluator(net, gene_map, data, draw)
    return Training(rule(fitness), p0, key, batches, evaluate), gene_map


def es_training(config: Mapping[str, Any], data: MnistData, method: str) -> Training:
    """ES `method` (a `bbpes.signals` name: `es`, `evosax:Open_ES`) on a dense ReLU MLP
    784-`hidden`-C: `population` members per step (mirrored pairs), `chunk` at a
    time, search std `sigma`, Adam at `lr_es` on the ES gradient, generation `i`'s
    images (`DenseSplit`)."""
    size = config["batch_images"] or len(data.train_x)
    task = DenseSplit(data.train_x, data.train_y, data.test_x, data.test_y, size, config["seed"])
    key = jax.random.key(config["seed"])
    model = task.initial_model(config["hidden"], data.classes, jax.random.fold_in(key, 1))
    knobs = {"samples": config["population"], "sigma": config["sigma"], "es_chunk": config["chunk"]}
    learner = make_learner(method, task.loss_forms(), optax.adam(config["lr_es"]), knobs)
    return Training(learner, model, key, task.batch, task.evaluate)
