"""`nne-linear`: Theorem 2 of "Biologically plausible neural networks via evolutionary
dynamics and dopaminergic plasticity" (section 2.1), checked numerically.

A linear target `l(y) = a . y` (`a` in R^m, `|a| = 1`, `y` uniform in the unit ball)
and a weight-generation matrix `W` (m x n) with entries `+-sqrt(m/d)` with probability
`d/m`. As the number of genes `n` grows:

- some allele distribution `p in [0, 1]^n` gives `W p = a` (bounded least squares:
  the cosine between `W p` and `a` reaches 1 and the residual 0);
- some genotype `x in {0, 1}^n` gives `cos(W x, a) >= 1 - eps` (the proof's
  construction: `x` = the columns within the cap `w . a >= |a| |w| / sqrt(m)`);
- NNE finds such a `p`: the expected loss `E_y (a . y - x^T W^T y)^2 =
  |a - W x|^2 / (m + 2)` falls and `cos(W p, a)` rises over generations.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import lsq_linear

from .. import plotting
from ..framework import Experiment, Setting
from ..framework.checks import require, require_fits
from ..learners.nne import NNE, GeneMap, random_gene_map, sample_genotypes
from ..runs import RunDir
from ..train import train

LOSSES = ("cosine", "squared")


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    norm = np.linalg.norm(u) * np.linalg.norm(v)
    return float(u @ v / norm) if norm > 0 else 0.0


def theorem2_problem(
    rng: np.random.Generator, m: int, n: int, d: float
) -> tuple[np.ndarray, GeneMap]:
    """A unit target `a (m,)` in a uniformly random direction and `W` as in Theorem 2."""
    a = rng.normal(size=m)
    gene_map = random_gene_map(rng, m, n, d / m, values="sign", scale=float(np.sqrt(m / d)))
    return a / np.linalg.norm(a), gene_map


def best_frequencies(W: np.ndarray, a: np.ndarray) -> np.ndarray:
    """`argmin |W p - a|` over `p in [0, 1]^n` (bounded least squares)."""
    return lsq_linear(W, a, bounds=(0.0, 1.0), method="bvls").x


def cap_genotype(W: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The proof's genotype: `x(i) = 1` for the columns `w_i` with
    `w_i . a >= |a| |w_i| / sqrt(m)`."""
    norms = np.linalg.norm(W, axis=0)
    inside = W.T @ a >= np.linalg.norm(a) * norms / np.sqrt(W.shape[0])
    return (inside & (norms > 0)).astype(float)


def existence(config: dict[str, Any]) -> dict[int, dict[str, list[float]]]:
    """For each n of `genes`, over `trials` random problems: the cosine and residual
    of the best `p`, and the cosine of the cap genotype."""
    out = {}
    for n in config["genes"]:
        rows = {"cos_p": [], "residual_p": [], "cos_x": []}
        for trial in range(config["trials"]):
            rng = np.random.default_rng([config["seed"], n, trial])
            a, gene_map = theorem2_problem(rng, config["m"], n, config["d"])
            W = np.asarray(gene_map.dense())
            p = best_frequencies(W, a)
            rows["cos_p"].append(cosine(W @ p, a))
            rows["residual_p"].append(float(np.linalg.norm(W @ p - a)))
            rows["cos_x"].append(cosine(W @ cap_genotype(W, a), a))
        out[n] = rows
    return out


def linear_losses(W: Any, a: Any, kind: str):
    """`loss(weights (m, c)) -> (c,)` of each network `y -> w . y` against `l(y) = a . y`,
    `y` uniform in the unit ball of R^m:

    - `"squared"`: `E_y (a . y - w . y)^2 = |a - w|^2 / (m + 2)`;
    - `"cosine"`: one minus the correlation of output and label, `1 - cos(w, a)`, which
      ignores the output's scale (Theorem 2 is a statement about direction).
    """
    m = a.shape[0]
    if kind == "squared":
        return lambda w: jnp.sum((w - a[:, None]) ** 2, axis=0) / (m + 2)
    if kind == "cosine":
        norm = jnp.linalg.norm(a)
        return lambda w: 1.0 - (a @ w) / jnp.maximum(jnp.linalg.norm(w, axis=0) * norm, 1e-30)
    raise ValueError(f"unknown loss {kind!r}")


def evolve(config: dict[str, Any], n: int, run_dir: RunDir) -> list[dict]:
    """NNE on the linear task with `n` genes (the first trial's problem)."""
    m = config["m"]
    rng = np.random.default_rng([config["seed"], n, 0])
    a, gene_map = theorem2_problem(rng, m, n, config["d"])
    loss_of = linear_losses(gene_map.dense(), jnp.asarray(a), config["loss"])

    def fitness(genotypes):  # Eqs. 1-2 reward the negative loss
        loss = loss_of(gene_map.columns(genotypes))
        return -loss, loss

    p0 = jnp.asarray(rng.uniform(0.0, 1.0, n))
    # Theorem 1 asks eps <= 1 / (2U), U the largest expected loss. For the cosine loss
    # U = 2; for the squared loss we take U as a margin times the population's loss at
    # the start (it falls), which also keeps 1 + eps f > 0 in Eq. 3.
    if config["loss"] == "cosine":
        bound = 2.0
    else:
        start = sample_genotypes(jax.random.key(config["seed"] + 1), p0, 1000)
        bound = config["loss_margin"] * float(jnp.mean(loss_of(gene_map.columns(start))))
    epsilon = config["epsilon_scale"] / (2 * bound)
    learner = NNE(fitness, config["population"], epsilon, config["population"])

    def evaluate(p):
        return {
            "cosine": cosine(np.asarray(gene_map(p)), a),
            "cosine_mode": cosine(np.asarray(gene_map((p > 0.5).astype(p.dtype))), a),
        }

    result = train(
        learner,
        p0,
        jax.random.key(config["seed"]),
        steps=config["generations"],
        evaluate=evaluate,
        eval_every=config["eval_every"],
        run=run_dir,
        label=f"nne-n{n}",
        tags={"genes": n, "epsilon": epsilon},
        checkpoint_every=max(config["generations"] // 4, 1),
        resume=config["resume"],
        progress_keys=("loss", "cosine"),
    )
    return result.history


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    found = existence(config)
    histories = {n: evolve(config, n, run_dir) for n in config["nne_genes"]}
    metrics: dict[str, Any] = {"m": config["m"], "d": config["d"]}
    for n, rows in found.items():
        metrics[f"cosine_best_p_n{n}"] = float(np.mean(rows["cos_p"]))
        metrics[f"residual_best_p_n{n}"] = float(np.mean(rows["residual_p"]))
        metrics[f"cosine_cap_genotype_n{n}"] = float(np.mean(rows["cos_x"]))
    for n, history in histories.items():
        evals = [r for r in history if "cosine" in r]
        steps = [r for r in history if "loss" in r]
        metrics[f"nne_cosine_start_n{n}"] = evals[0]["cosine"]
        metrics[f"nne_cosine_n{n}"] = evals[-1]["cosine"]
        metrics[f"nne_cosine_mode_n{n}"] = evals[-1]["cosine_mode"]
        metrics[f"nne_population_loss_start_n{n}"] = steps[0]["loss"]
        metrics[f"nne_population_loss_n{n}"] = steps[-1]["loss"]
    metrics["generations"] = config["generations"]
    plot_existence(run_dir, found, config)
    plot_evolution(run_dir, histories, config)
    return metrics


def band(ax, genes, rows, label: str, color: str) -> None:
    """Mean over trials as a line, min to max as a band."""
    data = np.asarray(rows)  # (len(genes), trials)
    ax.plot(genes, data.mean(1), marker="o", ms=3, color=color, label=label)
    ax.fill_between(genes, data.min(1), data.max(1), color=color, alpha=0.2)


def plot_existence(run_dir: RunDir, found: dict, config: dict) -> None:
    genes = sorted(found)
    fig, ((ax_cos, ax_res),) = plotting.figure(ncols=2)
    band(ax_cos, genes, [found[n]["cos_p"] for n in genes], "best p in [0,1]^n", "tab:blue")
    band(ax_cos, genes, [found[n]["cos_x"] for n in genes], "cap genotype x in {0,1}^n", "tab:red")
    ax_cos.set(
        xscale="log",
        xlabel="number of genes n",
        ylabel="cos(W p, a)",
        title=f"Theorem 2: m = {config['m']}, d = {config['d']:g}, {config['trials']} trials",
    )
    ax_cos.legend(fontsize=8)
    band(ax_res, genes, [found[n]["residual_p"] for n in genes], "best p: |W p - a|", "tab:blue")
    ax_res.axvline(config["m"], color="gray", ls=":", lw=0.8, label="n = m")
    ax_res.set(xscale="log", xlabel="number of genes n", ylabel="residual", ylim=(0, None))
    ax_res.legend(fontsize=8)
    run_dir.save_figure(fig, "theorem2.png")


def plot_evolution(run_dir: RunDir, histories: dict, config: dict) -> None:
    fig, ((ax_cos, ax_loss),) = plotting.figure(ncols=2)
    for n, history in sorted(histories.items()):
        evals = [r for r in history if "cosine" in r]
        line = ax_cos.plot(
            [r["step"] for r in evals], [r["cosine"] for r in evals], label=f"n = {n}, W p"
        )
        ax_cos.plot(
            [r["step"] for r in evals],
            [r["cosine_mode"] for r in evals],
            ":",
            color=line[0].get_color(),
            label=f"n = {n}, most probable x",
        )
        steps = [r for r in history if "loss" in r]
        ax_loss.plot([r["step"] for r in steps], [r["loss"] for r in steps], label=f"n = {n}")
    ax_cos.set(xlabel="generation", ylabel="cos(W p, a)", title="NNE on a linear target")
    ax_loss.set(
        xlabel="generation",
        ylabel=f"population mean loss ({config['loss']})",
        yscale="log",
        title=f"m = {config['m']}, d = {config['d']:g}, N = {config['population']}",
    )
    ax_cos.legend(fontsize=7)
    run_dir.save_figure(fig, "evolution.png")


def check(config: dict[str, Any]) -> None:
    require(config["d"] <= config["m"], "d must be in (0, m]")
    require(len(config["genes"]) >= 1, "genes must not be empty")
    genes = max([*config["genes"], *config["nne_genes"]])
    require_fits(
        8.0 * config["m"] * genes * 3 + 4.0 * config["population"] * genes,
        "the dense gene map W (m x n, float64) and one population of genotypes",
    )


SETTINGS = (
    Setting("m", 20, "dimension of the linear target a", low=1),
    Setting(
        "d", 5.0, "expected nonzeros per column of W (entries +-sqrt(m/d) w.p. d/m)", positive=True
    ),
    Setting(
        "genes",
        [10, 20, 40, 80, 160, 320, 640, 1280, 2560],
        "numbers of genes n for the existence check",
        low=1,
        quick=[10, 20, 40, 80, 160, 320, 640],
    ),
    Setting("trials", 5, "random problems per n", low=1, quick=3),
    Setting(
        "nne_genes",
        [80, 320, 1280],
        "numbers of genes n for NNE runs",
        low=1,
        quick=[80, 640],
    ),
    Setting("population", 200, "genotypes per generation", low=2),
    Setting("generations", 3000, "NNE generations", low=1, quick=600),
    Setting("eval_every", 50, "generations between evaluations of cos(W p, a)", low=1, quick=20),
    Setting(
        "loss",
        "cosine",
        "cosine (1 - correlation of output and label) or squared error",
        choices=LOSSES,
    ),
    Setting(
        "epsilon_scale",
        1.0,
        "selection strength as a fraction of Theorem 1's bound 1/(2U)",
        positive=True,
    ),
    Setting(
        "loss_margin",
        2.0,
        "squared loss: U is taken as this times the population's loss at p^1",
        low=1,
    ),
)

EXPERIMENT = Experiment(
    name="nne-linear",
    summary="Theorem 2: W p approaches any linear target as genes grow, and NNE finds it",
    run=run,
    settings=SETTINGS,
    check=check,
)
