"""`neuroevolution-gd`: averaged Metropolis mutation runs against gradient descent
(Whitelam et al., "Correspondence between neuroevolution and gradient descent").

A shallow (one hidden layer) and a deep (several hidden layers) tanh network learn a
fixed random teacher network on inputs drawn from the seed. For each mutation scale
sigma, R independent mutation walkers start from the same weights and are compared, in
matched time units, with the gradient-descent rule of the mean-step law (an optax
transformation, `corresponding_optimizer`):

- finite beta: `optax.sgd(beta sigma^2 / 2)`; time t = steps x learning rate;
- beta = inf: normalised gradient descent with step sigma / sqrt(2 pi); time = path
  length s = steps x sigma / sqrt(2 pi).

A one-step probe with a large population at the initial weights fits the prefactor of
the mean step against the exact gradient (`bbpes.learners.mutation_probe`). The task is
`bbpes.tasks.teacher_student`; each curve is a history of `records` entries of
`bbpes.learners.Repeated` steps. See docs/neuroevolution.md.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.ticker
import numpy as np
from jax.flatten_util import ravel_pytree

from .. import plotting
from ..estimators import bptt
from ..learners import GradientLearner, Repeated
from ..learners.mutation import MetropolisMutation, corresponding_optimizer, gd_learning_rate
from ..learners.mutation_probe import mean_step_probe
from ..runs import RunDir
from ..tasks.teacher_student import NETS, mse, population_evaluator, student, teacher_data
from ..train import train
from .base import Experiment, methods_of, require, require_at_least, require_fits, require_positive

REGIMES = ("finite", "inf")
WATCHED = 3  # weights whose mean trajectories are plotted


def regime_beta(config: dict[str, Any], regime: str) -> float:
    return math.inf if regime == "inf" else float(config["beta"])


def time_per_step(beta: float, sigma: float) -> float:
    """The matched time unit: the GD learning rate (finite beta) or the normalised GD
    step, i.e. the length of the mean mutation step (beta = inf)."""
    return sigma / math.sqrt(2 * math.pi) if math.isinf(beta) else gd_learning_rate(beta, sigma)


def schedule(config: dict[str, Any], regime: str, sigma: float) -> tuple[int, int]:
    """(records, steps per record): at least the configured total time, in about
    `records` history entries."""
    total = config["path_length"] if regime == "inf" else config["gd_time"]
    steps = max(1, math.ceil(total / time_per_step(regime_beta(config, regime), sigma)))
    per_record = max(1, math.ceil(steps / config["records"]))
    return math.ceil(steps / per_record), per_record


def regime_key(regime: str) -> str:
    return "beta_inf" if regime == "inf" else "beta_finite"


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    inputs, targets = teacher_data(config)
    metrics: dict[str, Any] = {}
    results: dict[tuple[str, str, float], dict] = {}
    probes: dict[tuple[str, str, float], dict] = {}
    for net in methods_of(config, "nets"):
        params0 = student(config, net)
        loss = lambda p: mse(p, inputs, targets)
        flat0, grad0 = (ravel_pytree(t)[0] for t in (params0, jax.grad(loss)(params0)))
        watched = np.argsort(-np.abs(np.asarray(grad0)))[:WATCHED]  # the fastest-moving weights
        evaluators = {p: population_evaluator(loss, flat0, watched, p) for p in (True, False)}
        metrics[f"n_params_{net}"] = int(flat0.size)
        metrics[f"initial_loss_{net}"] = float(loss(params0))
        metrics[f"initial_grad_norm_{net}"] = float(jnp.linalg.norm(grad0))
        for regime in methods_of(config, "regimes"):
            probe = mean_step_probe(
                loss, params0, regime_beta(config, regime), config["probe_population"]
            )
            probe_key = jax.random.fold_in(jax.random.key(config["seed"] + 3), NETS.index(net))
            for i, sigma in enumerate(sigmas_of(config, regime)):
                fit = probes[net, regime, sigma] = probe(sigma, jax.random.fold_in(probe_key, i))
                curves = results[net, regime, sigma] = compare(
                    config, run_dir, loss, evaluators, params0, net, regime, sigma
                )
                metrics.update(sigma_metrics(f"{net}_{sigma:g}_{regime_key(regime)}", fit, curves))
            metrics.update(slopes(config, net, regime, results, probes))
    for regime in methods_of(config, "regimes"):
        plot_losses(run_dir, config, results, regime)
        plot_weights(run_dir, config, results, regime)
    plot_scaling(run_dir, config, results, probes)
    return metrics


def sigmas_of(config: dict[str, Any], regime: str) -> list[float]:
    return list(config["sigmas_inf"] if regime == "inf" else config["sigmas_finite"])


def sigma_metrics(name: str, fit: dict, curves: dict) -> dict[str, Any]:
    """The flat metrics of one (net, sigma, regime); `name` is `<net>_<sigma>_<regime>`."""
    return {
        f"relative_gap_{name}": curves["relative_gap"],
        f"relative_gap_mean_weights_{name}": curves["relative_gap_mean_weights"],
        f"weight_gap_{name}": curves["weight_gap"],
        f"prefactor_fitted_{name}": fit["fitted"],
        f"prefactor_stderr_{name}": fit["stderr"],
        f"prefactor_predicted_{name}": fit["predicted"],
        f"prefactor_predicted_linear_{name}": fit["linear"],
        f"prefactor_ratio_{name}": fit["fitted"] / fit["predicted"],
        f"acceptance_{name}": curves["acceptance"],
        f"final_loss_mutation_{name}": float(curves["mutation"]["loss_mean"][-1]),
        f"final_loss_gd_{name}": float(curves["gd"]["loss_mean"][-1]),
        f"time_{name}": float(curves["time"][-1]),
        f"steps_{name}": curves["steps"],
    }


def slopes(config, net, regime, results, probes) -> dict[str, float]:
    """Log-log slopes against sigma of the gaps (mean loss, and loss of the mean
    weights) and of the fitted prefactor (the law predicts 2 for finite beta, 1 for
    beta = inf)."""
    sigmas = sigmas_of(config, regime)
    if len(sigmas) < 2:
        return {}
    name = f"{net}_{regime_key(regime)}"
    gaps = [results[net, regime, s]["relative_gap"] for s in sigmas]
    at_mean = [results[net, regime, s]["relative_gap_mean_weights"] for s in sigmas]
    fitted = [probes[net, regime, s]["fitted"] for s in sigmas]
    return {
        f"gap_slope_{name}": loglog_slope(sigmas, gaps),
        f"gap_mean_weights_slope_{name}": loglog_slope(sigmas, at_mean),
        f"prefactor_slope_{name}": loglog_slope(sigmas, fitted),
    }


def compare(config, run_dir, loss, evaluators, params0, net, regime, sigma) -> dict[str, Any]:
    """Train R mutation walkers and the corresponding GD from `params0`; return both
    curves on the matched time axis and the gaps between them."""
    beta = regime_beta(config, regime)
    records, per_record = schedule(config, regime, sigma)
    tag = f"{net}-sigma={sigma:g}-{regime_key(regime)}"
    learners = {
        "mutation": MetropolisMutation(loss, sigma, beta, population=config["population"]),
        "gd": GradientLearner(bptt(loss), corresponding_optimizer(beta, sigma)),
    }
    curves: dict[str, Any] = {"steps": records * per_record}
    final = {}
    for method, learner in learners.items():
        result = train(
            Repeated(learner, per_record),
            params0,
            jax.random.fold_in(jax.random.key(config["seed"] + 2), NETS.index(net)),
            steps=records,
            evaluate=evaluators[method == "mutation"],
            eval_every=1,
            run=run_dir,
            label=f"{method}-{tag}",
            resume=config["resume"],
            progress_keys=("loss", "acceptance"),
        )
        curves[method] = history_columns(result.history)
        weights = result.params
        if method == "mutation":
            weights = jax.tree.map(lambda x: jnp.mean(x, axis=0), weights)
            accepted = [r["acceptance"] for r in result.history if "acceptance" in r]
            curves["acceptance"] = float(np.mean(accepted))
        final[method] = ravel_pytree(weights)[0]
    n = min(len(curves[m]["step"]) for m in learners)  # equal unless a run stopped early
    for method in learners:
        curves[method] = {k: v[:n] for k, v in curves[method].items()}
    curves["time"] = curves["gd"]["step"] * per_record * time_per_step(beta, sigma)
    gd, mut = curves["gd"]["loss_mean"], curves["mutation"]
    drop = gd[0] - np.min(gd)
    curves["relative_gap"] = float(np.mean(np.abs(mut["loss_mean"] - gd)) / drop)
    gap_at_mean = np.abs(mut["loss_at_mean_weights"] - gd)
    curves["relative_gap_mean_weights"] = float(np.mean(gap_at_mean) / drop)
    travelled = jnp.linalg.norm(final["gd"] - ravel_pytree(params0)[0])
    curves["weight_gap"] = float(jnp.linalg.norm(final["mutation"] - final["gd"]) / travelled)
    return curves


def history_columns(history: list[dict]) -> dict[str, np.ndarray]:
    """The evaluated records (step 0 and after every iteration) as columns."""
    rows = [r for r in history if "loss_mean" in r]
    keys = set.intersection(*(set(r) for r in rows)) - {"label"}
    return {k: np.array([r[k] for r in rows]) for k in rows[0] if k in keys}


def loglog_slope(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def _time_label(regime: str) -> str:
    return "path length s = steps σ/√(2π)" if regime == "inf" else "GD time t = steps βσ²/2"


def plot_losses(run_dir: RunDir, config: dict, results: dict, regime: str) -> None:
    nets = methods_of(config, "nets")
    sigmas = sigmas_of(config, regime)
    fig, axes = plotting.figure(
        ncols=len(sigmas), nrows=len(nets), width=4.0, height=3.2, layout="constrained"
    )
    for row, net in enumerate(nets):
        for col, sigma in enumerate(sigmas):
            ax, curves = axes[row][col], results[net, regime, sigma]
            t, mut = curves["time"], curves["mutation"]
            ax.plot(
                t,
                mut["loss_mean"],
                color="tab:red",
                label=f"mutation mean (R={config['population']})",
            )
            ax.fill_between(
                t,
                np.maximum(mut["loss_mean"] - mut["loss_std"], mut["loss_min"]),
                mut["loss_mean"] + mut["loss_std"],
                color="tab:red",
                alpha=0.2,
                label="±1 std",
            )
            ax.plot(t, mut["loss_min"], color="tab:red", lw=0.5, ls=":", label="min / max")
            ax.plot(t, mut["loss_max"], color="tab:red", lw=0.5, ls=":")
            ax.plot(t, curves["gd"]["loss_mean"], color="black", ls="--", label="gradient descent")
            ax.set_yscale("log")
            ax.set(
                title=f"{net}, σ={sigma:g}: gap {curves['relative_gap']:.3f}",
                xlabel=_time_label(regime),
                ylabel="loss (MSE)",
            )
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    beta = "∞" if regime == "inf" else f"{config['beta']:g}"
    fig.suptitle(f"Metropolis mutation vs gradient descent, β = {beta}")
    run_dir.save_figure(fig, f"loss_{regime_key(regime)}.png")


def plot_weights(run_dir: RunDir, config: dict, results: dict, regime: str) -> None:
    """Watched weights of the mean mutation network and of GD, at the smallest sigma."""
    nets = methods_of(config, "nets")
    sigma = min(sigmas_of(config, regime))
    fig, axes = plotting.figure(ncols=len(nets), width=4.5, height=3.4, layout="constrained")
    for col, net in enumerate(nets):
        ax, curves = axes[0][col], results[net, regime, sigma]
        for i in range(WATCHED):
            line = ax.plot(
                curves["time"], curves["mutation"][f"w_{i}"], label=f"mean mutation w{i}"
            )
            ax.plot(
                curves["time"],
                curves["gd"][f"w_{i}"],
                ls="--",
                color=line[0].get_color(),
                label=f"GD w{i}",
            )
        ax.set(
            title=f"{net}, σ={sigma:g}: weight gap {curves['weight_gap']:.3f}",
            xlabel=_time_label(regime),
            ylabel="weight",
        )
        ax.legend(fontsize=6, ncols=2)
    run_dir.save_figure(fig, f"weights_{regime_key(regime)}.png")


def plot_scaling(run_dir: RunDir, config: dict, results: dict, probes: dict) -> None:
    """Gap against sigma (log-log) and fitted against predicted prefactor."""
    fig, ((ax_gap, ax_pre),) = plotting.figure(ncols=2, width=5.5, height=4.0, layout="constrained")
    for regime in methods_of(config, "regimes"):
        sigmas = np.asarray(sigmas_of(config, regime))
        for net, marker in zip(methods_of(config, "nets"), "os"):
            label = f"{net}, {regime_key(regime)}"
            gaps = [results[net, regime, s]["relative_gap"] for s in sigmas]
            ax_gap.loglog(
                sigmas,
                gaps,
                marker=marker,
                label=f"{label} (slope {loglog_slope(sigmas, gaps):.2f})",
            )
            fits = [probes[net, regime, s] for s in sigmas]
            ax_pre.errorbar(
                sigmas,
                [f["fitted"] for f in fits],
                yerr=[2 * f["stderr"] for f in fits],
                marker=marker,
                ls="none",
                label=f"fitted, {label}",
            )
            ax_pre.plot(sigmas, [f["linear"] for f in fits], lw=0.6, color="gray")
        ax_pre.plot(
            sigmas,
            [
                probes[next(iter(methods_of(config, "nets"))), regime, s]["predicted"]
                for s in sigmas
            ],
            color="black",
            ls="--",
            lw=0.8,
        )
    ax_gap.set(xlabel="σ", ylabel="relative gap (mean loss vs GD)", title="Gap shrinks with σ")
    ax_pre.set(
        xscale="log",
        yscale="log",
        xlabel="σ",
        ylabel="prefactor k",
        title="Mean step: fitted (±2 s.e.), law (dashed), linear-exact (gray)",
    )
    for ax in (ax_gap, ax_pre):
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax_gap.legend(fontsize=7)
    ax_pre.legend(fontsize=6)
    run_dir.save_figure(fig, "scaling.png")


def check(config: dict[str, Any]) -> None:
    require(config["population"] >= 2, "population must be >= 2 (independent mutation runs)")
    require(config["probe_population"] >= 2, "probe_population must be >= 2")
    require(config["records"] >= 2, "records must be >= 2")
    require(
        config["beta"] > 0 and math.isfinite(config["beta"]),
        "beta must be positive and finite (beta = inf is the 'inf' regime)",
    )
    for key in ("sigmas_inf", "sigmas_finite"):
        require(
            len(config[key]) >= 1 and all(s > 0 for s in config[key]), f"{key} must be positive"
        )
        require(len(set(config[key])) == len(config[key]), f"{key} must not repeat a value")
    require(
        config["path_length"] > 0 and config["gd_time"] > 0,
        "path_length and gd_time must be positive",
    )
    require_at_least(
        config, 1, "n_inputs", "n_data", "teacher_width", "shallow_width", "deep_width"
    )
    require(config["deep_layers"] >= 2, "deep_layers must be >= 2 (the deep network)")
    require_positive(config, "teacher_scale")
    widest = max(config["teacher_width"], config["shallow_width"], config["deep_width"])
    params = config["n_inputs"] * widest + config["deep_layers"] * config["deep_width"] ** 2
    walkers = max(config["population"], config["probe_population"])
    require_fits(
        4.0 * (walkers * params + config["n_data"] * config["n_inputs"] + config["records"]),
        "the mutation walkers and the data",
    )


EXPERIMENT = Experiment(
    name="neuroevolution-gd",
    summary="R averaged Metropolis mutation runs vs gradient descent, shallow and deep nets, finite and infinite beta",
    run=run,
    defaults={
        "nets": list(NETS),
        "regimes": list(REGIMES),
        "n_inputs": 2,
        "n_data": 32,
        "teacher_width": 4,
        "teacher_scale": 2.0,
        "shallow_width": 8,
        "deep_width": 6,
        "deep_layers": 4,
        "population": 512,
        "probe_population": 100_000,
        "sigmas_inf": [0.04, 0.02, 0.01, 0.005, 0.0025],
        "path_length": 1.6,
        "beta": 300.0,
        "sigmas_finite": [0.008, 0.004, 0.002, 0.001, 0.0005],
        "gd_time": 1.0,
        "records": 100,
        "x64": False,
    },
    quick={
        "population": 128,
        "probe_population": 20_000,
        "sigmas_inf": [0.04, 0.02, 0.01],
        "sigmas_finite": [0.008, 0.004, 0.002],
        "records": 40,
    },
    choices={"nets": NETS, "regimes": REGIMES},
    check=check,
    help={
        "nets": "shallow (one hidden layer) and/or deep (deep_layers hidden layers)",
        "regimes": "finite beta (GD with lr = beta sigma^2 / 2) and/or beta = inf (normalised GD)",
        "teacher_scale": "weight scale of the random teacher network that makes the targets",
        "population": "R, independent mutation runs from the same initial weights",
        "probe_population": "walkers of the one-step probe that fits the mean-step prefactor",
        "sigmas_inf": "mutation scales for beta = inf (parameter units)",
        "path_length": "beta = inf: total path length of normalised GD, steps x sigma / sqrt(2 pi)",
        "beta": "inverse temperature of the finite-beta regime (1 / loss)",
        "sigmas_finite": "mutation scales for the finite beta",
        "gd_time": "finite beta: total GD time, steps x beta sigma^2 / 2",
        "records": "history entries per curve (the steps are grouped evenly between them)",
    },
)
