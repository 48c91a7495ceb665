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
import numpy as np
from jax.flatten_util import ravel_pytree

from ..estimators import bptt
from ..framework import Experiment, Setting
from ..framework.checks import methods_of, require, require_fits
from ..learners import GradientLearner, Repeated
from ..learners.mutation import MetropolisMutation, corresponding_optimizer, gd_learning_rate
from ..learners.mutation_probe import mean_step_probe
from ..runs import RunDir
from ..tasks.teacher_student import NETS, mse, population_evaluator, student, teacher_data
from ..train import train
from .neuroevolution_gd_plots import (
    WATCHED,
    loglog_slope,
    plot_losses,
    plot_scaling,
    plot_weights,
    regime_key,
    sigmas_of,
)

REGIMES = ("finite", "inf")


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


def check(config: dict[str, Any]) -> None:
    for key in ("sigmas_inf", "sigmas_finite"):
        require(len(config[key]) >= 1, f"{key} must not be empty")
        require(len(set(config[key])) == len(config[key]), f"{key} must not repeat a value")
    widest = max(config["teacher_width"], config["shallow_width"], config["deep_width"])
    params = config["n_inputs"] * widest + config["deep_layers"] * config["deep_width"] ** 2
    walkers = max(config["population"], config["probe_population"])
    require_fits(
        4.0 * (walkers * params + config["n_data"] * config["n_inputs"] + config["records"]),
        "the mutation walkers and the data",
    )


SETTINGS = (
    Setting(
        "nets",
        list(NETS),
        "shallow (one hidden layer) and/or deep (deep_layers hidden layers)",
        choices=NETS,
    ),
    Setting(
        "regimes",
        list(REGIMES),
        "finite beta (GD with lr = beta sigma^2 / 2) and/or beta = inf (normalised GD)",
        choices=REGIMES,
    ),
    Setting("n_inputs", 2, "input dimension of the teacher and the students", low=1),
    Setting("n_data", 32, "training inputs, drawn from N(0, I)", low=1),
    Setting("teacher_width", 4, "tanh hidden units of the teacher", low=1),
    Setting(
        "teacher_scale",
        2.0,
        "weight scale of the random teacher network that makes the targets",
        positive=True,
    ),
    Setting("shallow_width", 8, "hidden units of the shallow student", low=1),
    Setting("deep_width", 6, "hidden units per layer of the deep student", low=1),
    Setting("deep_layers", 4, "hidden layers of the deep student", low=2),
    Setting(
        "population",
        512,
        "R, independent mutation runs from the same initial weights",
        low=2,
        quick=128,
    ),
    Setting(
        "probe_population",
        100_000,
        "walkers of the one-step probe that fits the mean-step prefactor",
        low=2,
        quick=20_000,
    ),
    Setting(
        "sigmas_inf",
        [0.04, 0.02, 0.01, 0.005, 0.0025],
        "mutation scales for beta = inf (parameter units)",
        positive=True,
        quick=[0.04, 0.02, 0.01],
    ),
    Setting(
        "path_length",
        1.6,
        "beta = inf: total path length of normalised GD, steps x sigma / sqrt(2 pi)",
        positive=True,
    ),
    Setting(
        "beta",
        300.0,
        "inverse temperature of the finite-beta regime (1 / loss; beta = inf is the 'inf' regime)",
        positive=True,
    ),
    Setting(
        "sigmas_finite",
        [0.008, 0.004, 0.002, 0.001, 0.0005],
        "mutation scales for the finite beta (parameter units)",
        positive=True,
        quick=[0.008, 0.004, 0.002],
    ),
    Setting("gd_time", 1.0, "finite beta: total GD time, steps x beta sigma^2 / 2", positive=True),
    Setting(
        "records",
        100,
        "history entries per curve (the steps are grouped evenly between them)",
        low=2,
        quick=40,
    ),
    Setting("x64", False, "compute in float64"),
)

EXPERIMENT = Experiment(
    name="neuroevolution-gd",
    summary="R averaged Metropolis mutation runs vs gradient descent, shallow and deep nets, finite and infinite beta",
    run=run,
    settings=SETTINGS,
    check=check,
)
