"""`nne-mnist`: neural net evolution on MNIST ("Biologically plausible neural networks
via evolutionary dynamics and dopaminergic plasticity", section 3.1): test accuracy over
generations and wall time, the allele distribution (Fig. 2), accuracy against the
number of genes (Fig. 3), NNE + SignSGD on the output layer (Eq. 5) and SGD (Adam) on
the same architecture, with Table 1 of the paper beside ours."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from .. import plotting
from ..estimators.backprop import bptt
from ..learners import GradientLearner
from ..learners.nne import NNE, GeneMap, random_gene_map, sample_genotypes
from ..models.sparse_mlp import (
    PopulationInputs,
    SparseMLP,
    cross_entropy,
    population_inputs,
    population_logits,
    population_weights,
    random_sparse_mlp,
)
from ..runs import RunDir
from ..tasks.mnist import SCALINGS, SOURCES, MnistData, batch_indices, load_mnist, locate
from ..train import train
from .base import Experiment, require

PAPER_TABLE1 = {  # test accuracy on MNIST digits 0-4 (5 classes) and 0-9 (10 classes)
    5: {"nne": 0.921, "nne_signsgd": 0.916, "sgd": 0.96},
    10: {"nne": 0.788, "nne_signsgd": 0.856, "sgd": 0.882},
}
ALLELE_GRID = (0.001, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
ROWS = {"nne": "NNE", "nne_signsgd": "NNE + SignSGD", "sgd": "SGD (Adam)"}


class ClippedFitness(eqx.Module):
    """Section 3.1: `delta_x = mean over S of max(0, alpha^2 - CE)`, with
    `alpha = log(classes)` the loss of a uniform guess.

    **Fields:** `gene_map`, the rows of `W` for `PopulationInputs.links`;
    `alpha_squared`. Called as `fitness(genotypes (c, n), inputs)` it returns
    `(delta (c,), mean cross-entropy (c,))`.
    """

    gene_map: GeneMap
    alpha_squared: float

    def __call__(self, genotypes: Array, inputs: PopulationInputs) -> tuple[Array, Array]:
        first, output = population_weights(inputs, self.gene_map.columns(genotypes))

        def image_block(totals, block):
            pixels, labels = block
            logits = population_logits(first, output, pixels)
            loss = cross_entropy(logits, jnp.broadcast_to(labels[:, None], logits.shape[:2]))
            fitness = jnp.maximum(0.0, self.alpha_squared - loss)
            return (totals[0] + fitness.sum(0), totals[1] + loss.sum(0)), None

        zeros = jnp.zeros(genotypes.shape[0], first[0].dtype)
        (fitness, loss), _ = jax.lax.scan(
            image_block, (zeros, zeros), (inputs.pixels, inputs.labels)
        )
        return fitness / inputs.n_images, loss / inputs.n_images


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


def accuracy_fn(net: SparseMLP, data: MnistData):
    """`weights (m,) -> test accuracy` of one network, jitted."""
    x, y = jnp.asarray(data.test_x), jnp.asarray(data.test_y)
    return jax.jit(lambda weights: jnp.mean(jnp.argmax(net.logits(weights, x), -1) == y))


def nne_evaluator(net: SparseMLP, gene_map: GeneMap, data: MnistData, samples: int, key: Array):
    """`p -> metrics`: test accuracy of the most probable genotype (`p > 1/2`, the
    headline `accuracy`), of the mean weights `W p`, of `samples` genotypes drawn from
    `p` (mean), and the allele distances from fixation of Fig. 2."""
    accuracy = accuracy_fn(net, data)

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
    learner = NNE(fitness, config["population"], config["epsilon"], config["chunk"])
    p0 = jnp.asarray(rng.uniform(0.0, 1.0, genes), jnp.float32)  # p^1 uniform in [0, 1]^n
    key = jax.random.key(config["seed"])
    result = train(
        learner,
        p0,
        key,
        steps=generations,
        batch=lambda i: (inputs,),
        evaluate=nne_evaluator(net, gene_map, data, config["eval_samples"], key),
        eval_every=config["eval_every"],
        run=run_dir,
        label=label,
        tags={"genes": genes},
        checkpoint_every=config["checkpoint_every"],
        resume=config["resume"],
        progress_keys=("loss", "fitness_mean", "accuracy"),
    )
    return result.params, gene_map, result.history


def generation_rate(history: list[dict]) -> float:
    """Generations per second of training steps, leaving out the first (compilation)."""
    steps = [r for r in history if "seconds" in r]
    if len(steps) < 2 or steps[-1]["seconds"] <= steps[0]["seconds"]:
        return float("nan")
    return (steps[-1]["step"] - steps[0]["step"]) / (steps[-1]["seconds"] - steps[0]["seconds"])


def readout_loss(w: Array, features: Array, labels: Array) -> Array:
    """Mean cross-entropy of the output layer `w (H, C)` on fixed hidden `features`."""
    return jnp.mean(cross_entropy(features.astype(w.dtype) @ w, labels))


def readout_accuracy(w: Array, features: np.ndarray, labels: np.ndarray, chunk: int = 500) -> float:
    """Test accuracy of the output layer `w` on features `(N, H)`, `chunk` rows at a time
    (very wide features stay on the host, in float16)."""
    correct = 0
    for start in range(0, len(features), chunk):
        f = jnp.asarray(features[start : start + chunk])
        correct += int(_correct(w, f, jnp.asarray(labels[start : start + chunk])))
    return correct / len(features)


@jax.jit
def _correct(w, f, y):
    return jnp.sum(jnp.argmax(f.astype(w.dtype) @ w, -1) == y)


def fit_readout(
    config: dict[str, Any],
    learner: Any,
    w: Array,
    features: tuple[np.ndarray, np.ndarray],
    labels: tuple[np.ndarray, np.ndarray],
    *,
    steps: int,
    batch_size: int,
    run_dir: RunDir,
    label: str,
) -> tuple[Array, list[dict]]:
    """Train the output layer `w (H, C)` on fixed hidden features `(train, test)` with
    `learner` (whose `step` takes `(features (B, H), labels (B,))`), batches of
    `batch_size`; test accuracy after every epoch. Returns the weights and history."""
    (train_f, test_f), (train_y, test_y) = features, labels
    n = len(train_f)

    def batch(i):
        index = batch_indices(i, n, batch_size, config["seed"])
        return jnp.asarray(train_f[index]), jnp.asarray(train_y[index])

    result = train(
        learner,
        w,
        jax.random.key(config["seed"]),
        steps=steps,
        batch=batch,
        evaluate=lambda w: {"accuracy": readout_accuracy(w, test_f, test_y)},
        eval_every=max(n // batch_size, 1),
        run=run_dir,
        label=label,
        resume=config["resume"],
    )
    return result.params, result.history


def sgd_baseline(
    config: dict[str, Any], data: MnistData, net: SparseMLP, run_dir: RunDir
) -> list[dict]:
    """SGD (Adam) on every weight of the same sparse architecture (no biases)."""
    mask = net.mask()
    k1, k2 = jax.random.split(jax.random.key(config["seed"] + 1))
    bound1 = np.sqrt(6.0 / (net.n_inputs * config["edge_prob"]))  # He uniform, mean fan-in
    bound2 = 1.0 / np.sqrt(net.n_hidden)
    params = {
        "w1": jax.random.uniform(k1, mask.shape, minval=-bound1, maxval=bound1) * mask,
        "w2": jax.random.uniform(k2, (net.n_hidden, net.n_classes), minval=-bound2, maxval=bound2),
    }

    def loss(params, x, y):
        hidden = jax.nn.relu(x @ (params["w1"] * mask).T)
        return jnp.mean(cross_entropy(hidden @ params["w2"], y))

    test_x, test_y = jnp.asarray(data.test_x), jnp.asarray(data.test_y)
    accuracy = jax.jit(
        lambda p: jnp.mean(
            jnp.argmax(jax.nn.relu(test_x @ (p["w1"] * mask).T) @ p["w2"], -1) == test_y
        )
    )
    n = len(data.train_x)
    train_x, train_y = jnp.asarray(data.train_x), jnp.asarray(data.train_y)

    def batch(i):
        index = batch_indices(i, n, config["batch_size"], config["seed"] + 1)
        return train_x[index], train_y[index]

    result = train(
        GradientLearner(bptt(loss), optax.adam(config["sgd_lr"])),
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
    evolved `p`, then SignSGD (Eq. 5) on its output layer only. Returns the drawn
    network's accuracy before training and the history."""
    genotype = sample_genotypes(jax.random.key(config["seed"] + 2), p, 1)[0]
    weights = gene_map(genotype)
    w1, w2 = net.split(weights)
    start = float(accuracy_fn(net, data)(weights))
    features = tuple(
        np.asarray(jax.nn.relu(jnp.asarray(x) @ w1.T)) for x in (data.train_x, data.test_x)
    )
    _, history = fit_readout(
        config,
        GradientLearner(bptt(readout_loss), optax.sign_sgd(config["signsgd_lr"])),
        w2,
        features,
        (data.train_y, data.test_y),
        steps=config["signsgd_steps"],
        batch_size=config["batch_size"],
        run_dir=run_dir,
        label="nne+signsgd",
    )
    return start, history


def reuses_main_run(config: dict[str, Any], genes: int) -> bool:
    """Whether the Fig. 3 point for `genes` is the main run's record at
    `sweep_generations` (same genes, and a generation the main run evaluated)."""
    return (
        genes == config["genes"]
        and config["sweep_generations"] <= config["generations"]
        and config["sweep_generations"] % config["eval_every"] == 0
    )


def last(history: list[dict], key: str = "accuracy") -> float:
    values = [r[key] for r in history if r.get(key) is not None]
    return float(values[-1]) if values else float("nan")


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    data = load_data(config)
    net = random_sparse_mlp(
        np.random.default_rng(config["seed"]),
        data.train_x.shape[1],
        config["hidden"],
        data.classes,
        config["edge_prob"],
    )
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
    metrics: dict[str, Any] = {
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
        "generations_per_second": generation_rate(history),
        "nne_train_seconds": train_seconds,
        "network_evaluations_per_second": generation_rate(history)
        * config["population"]
        * len(data.train_x),
        **{f"paper_test_accuracy_{k}": v for k, v in PAPER_TABLE1[data.classes].items()},
        **{f"test_accuracy_nne_genes{g}": last(h) for g, h in sweep.items()},
    }
    write_table(run_dir, metrics, data)
    plot_accuracy(run_dir, history, signsgd_history, sgd_history, data)
    plot_alleles(run_dir, history, data)
    if sweep:
        plot_genes(run_dir, sweep, data, config)
    return metrics


def write_table(run_dir: RunDir, metrics: dict[str, Any], data: MnistData) -> None:
    digits = f"0-{data.classes - 1}"
    lines = [
        f"# Table 1: test accuracy (%) on MNIST {digits}",
        "",
        f"Ours: {data.source}; {metrics['train_images']} training images, "
        f"{metrics['test_images']} test images; {metrics['generations']} generations "
        f"({metrics['generations_per_second']:.3g} generations/s, "
        f"{metrics['nne_train_seconds']:.0f} s of evolution). The paper: hundreds of "
        "thousands of generations, the full MNIST test set.",
        "",
        f"| model | paper, MNIST {digits} | ours |",
        "| --- | --- | --- |",
    ]
    for key, name in ROWS.items():
        ours = metrics[f"test_accuracy_{key}"]
        paper = PAPER_TABLE1[data.classes][key]
        lines.append(f"| {name} | {100 * paper:.1f} | {100 * ours:.1f} |")
    (run_dir.path / "table1.md").write_text("\n".join(lines) + "\n")


def plot_accuracy(run_dir, history, signsgd_history, sgd_history, data: MnistData) -> None:
    fig, ((ax_gen, ax_time),) = plotting.figure(ncols=2)
    evals = [r for r in history if "accuracy" in r]
    # Wall time of the generations themselves: from the end of the first (compiling) one.
    t0 = next((r["seconds"] for r in history if r["step"] == 1 and "seconds" in r), 0.0)
    for key, name, style in (
        ("accuracy", "most probable genotype", "-"),
        ("accuracy_mean_weights", "mean weights W p", "--"),
        ("accuracy_sampled", "sampled genotypes (mean)", ":"),
    ):
        points = [(r["step"], r.get("seconds", 0.0), r[key]) for r in evals if key in r]
        if points:
            steps, seconds, values = zip(*points)
            seconds = [max(t - t0, 0.0) for t in seconds]
            ax_gen.plot(steps, values, style, label=name, color="tab:green")
            ax_time.plot(seconds, values, style, label=name, color="tab:green")
    for hist, name, color in (
        (signsgd_history, "NNE + SignSGD", "tab:orange"),
        (sgd_history, "SGD (Adam)", "tab:blue"),
    ):
        final = last(hist)
        ax_gen.axhline(final, color=color, ls="-.", lw=0.8, label=f"{name} (final)")
    chance = 1.0 / data.classes
    for ax in (ax_gen, ax_time):
        ax.axhline(chance, color="gray", lw=0.6, ls=":")
        ax.set_ylabel("test accuracy")
    ax_gen.set(xlabel="generation", title=f"NNE, digits 0-{data.classes - 1}")
    ax_time.set(xlabel="wall time of generations 2.. (s)", title=data.split_tag)
    ax_gen.legend(fontsize=7)
    run_dir.save_figure(fig, "accuracy.png")


def plot_alleles(run_dir: RunDir, history: list[dict], data: MnistData) -> None:
    """Fig. 2: the fraction of alleles at distance at least x from 0 and 1."""
    evals = [r for r in history if f"alleles_within_{ALLELE_GRID[0]:g}" in r]
    if not evals:
        return
    picks = sorted({0, len(evals) // 4, len(evals) // 2, len(evals) - 1})
    fig, ((ax,),) = plotting.figure()
    for i in picks:
        record = evals[i]
        y = [1.0 - record[f"alleles_within_{x:g}"] for x in ALLELE_GRID]
        ax.plot(ALLELE_GRID, y, marker="o", ms=3, label=f"t = {record['step']}")
    ax.set(
        xlabel="x (distance from 0 or 1)",
        ylabel="fraction of alleles in [x, 1 - x]",
        title=f"Allele distribution (Fig. 2); {data.split_tag}",
    )
    ax.title.set_fontsize(8)
    ax.legend(fontsize=8)
    run_dir.save_figure(fig, "alleles.png")


def plot_genes(run_dir: RunDir, sweep: dict[int, list[dict]], data: MnistData, config) -> None:
    """Fig. 3: accuracy against the number of genes after `sweep_generations`."""
    genes = sorted(sweep)
    fig, ((ax_n, ax_t),) = plotting.figure(ncols=2)
    ax_n.plot(genes, [last(sweep[g]) for g in genes], marker="o", color="tab:green")
    ax_n.set_xscale("log")
    ax_n.set_xticks(genes, [str(g) for g in genes], minor=False)
    ax_n.set_xticks([], minor=True)
    ax_n.set(
        xlabel="number of genes n",
        ylabel="test accuracy",
        title=f"Fig. 3, digits 0-{data.classes - 1}, {config['sweep_generations']} generations",
    )
    for g in genes:
        evals = [r for r in sweep[g] if "accuracy" in r]
        ax_t.plot([r["step"] for r in evals], [r["accuracy"] for r in evals], label=f"n = {g}")
    ax_t.set(xlabel="generation", ylabel="test accuracy", title=data.split_tag)
    ax_t.title.set_fontsize(8)
    ax_t.legend(fontsize=8)
    run_dir.save_figure(fig, "genes.png")


def check(config: dict[str, Any]) -> None:
    require(config["hidden"] >= 1 and config["genes"] >= 1, "hidden and genes must be >= 1")
    require(all(g >= 1 for g in config["genes_sweep"]), "genes_sweep values must be >= 1")
    require(0 < config["edge_prob"] <= 1 and 0 < config["beta"] <= 1, "probabilities in (0, 1]")
    require(config["population"] >= 2, "population must be >= 2")
    require(
        config["population"] % config["chunk"] == 0,
        f"chunk {config['chunk']} must divide population {config['population']}",
    )
    n_train = config["train_per_digit"] * config["classes"]
    require(config["train_per_digit"] >= 1, "train_per_digit must be >= 1")
    require(
        n_train % config["image_block"] == 0,
        f"image_block {config['image_block']} must divide the {n_train} training images",
    )
    require(config["epsilon"] > 0, "epsilon must be positive")
    require(config["generations"] >= 1 and config["sweep_generations"] >= 1, "generations >= 1")
    require(config["eval_every"] >= 1 and config["checkpoint_every"] >= 1, "eval/checkpoint >= 1")
    require(config["batch_size"] >= 1, "batch_size must be >= 1")
    if config["data_dir"]:
        require(locate(config["data_dir"]) is not None, f"no MNIST files in {config['data_dir']}")


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

EXPERIMENT = Experiment(
    name="nne-mnist",
    summary="neural net evolution (allele frequencies, Eq. 3) on MNIST: Table 1, Figs. 2-3",
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
        "population": 1000,
        "epsilon": 10.0,
        "generations": 1000,
        "eval_every": 20,
        "eval_samples": 4,
        "genes_sweep": [500, 1000, 2000, 5000],
        "sweep_generations": 100,
        "chunk": 125,
        "image_block": 100,
        "hidden_block": 10,
        "checkpoint_every": 10,
        "batch_size": 50,
        "signsgd_lr": 0.01,
        "signsgd_steps": 300,
        "sgd_lr": 1e-3,
        "sgd_steps": 2000,
    },
    quick={
        "train_per_digit": 40,
        "test_per_digit": 100,
        "hidden": 200,
        "genes": 1000,
        "population": 100,
        "chunk": 50,
        "image_block": 100,
        "generations": 80,
        "eval_every": 10,
        "eval_samples": 2,
        "genes_sweep": [250, 1000],
        "sweep_generations": 20,
        "signsgd_steps": 100,
        "sgd_steps": 200,
    },
    choices={"classes": (5, 10), "data_source": SOURCES, "scaling": SCALINGS},
    check=check,
    help={
        **DATA_HELP,
        "classes": "digits 0..classes-1 (5: MNIST 0-4, 10: MNIST 0-9)",
        "train_per_digit": "training images per digit (the set S; the paper: 200)",
        "test_per_digit": "test images per digit (0 = every one)",
        "hidden": "hidden ReLU units (the paper: 1000)",
        "edge_prob": "probability of each input-hidden edge (the paper: 0.1)",
        "genes": "number of genes n",
        "beta": "density of the weight-generation matrix W (the paper: 0.0025)",
        "population": "genotypes per generation N (the paper: 1000)",
        "epsilon": "selection strength of Eq. 3 (the paper does not give it; see docs)",
        "genes_sweep": "numbers of genes for Fig. 3 (empty: skip)",
        "chunk": "genotypes evaluated at once (memory, not results)",
        "image_block": "training images per block of the population forward pass",
        "hidden_block": "hidden units per cache block of the population forward pass",
        "signsgd_lr": "SignSGD step epsilon' on the output layer (Eq. 5)",
        "sgd_lr": "Adam learning rate of the SGD baseline",
    },
)
