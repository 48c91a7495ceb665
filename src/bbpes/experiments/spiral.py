"""`spiral`: a neural ODE dy/dt = MLP(y^3) fitted to the cubic spiral by ES and by
backpropagation (BBPES paper, section 3.3.1, Fig. 9A with 1000 hidden units, Fig. 12
with 50): minibatch loss and full-trajectory MAE over training, mean and spread over
several runs, and the iterations to the paper's target MAE of 0.04.

Independent runs (and, in `spiral-scaling`, the values of a sigma sweep) are the members
of one `bbpes.learners.Ensemble`: a single compiled, `jax.vmap`-ed step trains them all,
each member with its own initialisation, minibatches, noise and hyperparameter, and a
member whose step fails keeps its state while the others go on. Any learning signal of
`bbpes.signals` whose loss form the spiral offers is a `method`.

The full-trajectory MAE jumps from one evaluation to the next (with Adam 1e-3 it swings
between about 0.03 and 0.7 late in training, for BP as for ES), so the minibatch loss is
reported beside it and the target is read two ways (`bbpes.tasks.spiral_metrics`):
"iterations to target" is the first evaluation at or below it (the best MAE so far
reaches it, the paper's reading), and "iterations to sustained target" the first at
which the running median of the last `window` evaluations is at or below it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import plotting, signals
from ..learners import AbstractLearner, Ensemble
from ..models.neural_ode import NeuralODE
from ..runs import RunDir
from ..signals import LossForms
from ..tasks.spiral import Spiral
from ..tasks.spiral_metrics import iterations_to_target as iterations_to_target
from ..tasks.spiral_metrics import running_median, seconds_at, split_history, summarise
from ..tasks.spiral_runs import make_task, member_maes, stacked_batches, stacked_fields
from ..train import train
from .base import (
    MAX_LOOP,
    Experiment,
    methods_of,
    require,
    require_fits,
    require_mirrored_samples,
    require_positive,
)

OFFERED = LossForms(loss=Spiral.loss, ode_loss=Spiral.ode_loss)
"""The loss forms a `Spiral` offers (`loss_forms`); only which fields are set matters."""

UNSUPPORTED = signals.unsupported(OFFERED, observed=True)
"""Signals whose loss form exists but that cannot train the spiral, and why (from the
registry: the loss observes the solution at many times; an ODE fit has no truncated or
surrogate form)."""

METHODS = tuple(m for m in signals.available(OFFERED) if m not in UNSUPPORTED)


def loss_forms(task: Spiral, method: str) -> LossForms:
    """The spiral's minibatch loss, and the same as an `ODELoss` (fnde). Forward-only
    signals get the loss solved in forward mode (`ODELoss.in_forward_mode`): the same
    values, and `jax.jvp` works through it (the forward gradient needs it; reverse-mode
    signals need the default)."""
    return signals.ode_forms(signals.signal(method).family, task.loss, task.ode_loss())


def member_learners(
    task: Spiral,
    method: str,
    samples: int,
    lr: float | optax.Schedule,
    sigma: float | None = None,
) -> Callable[[Any], AbstractLearner]:
    """`hyper -> learner` of `method` (`bbpes.signals.make_learner`) with Adam at `lr` (a
    number or an optax schedule). The perturbation scale (ES, weight perturbation,
    evosax) is `sigma` when given, a constant every signal accepts, else
    `hyper["sigma"]`, traced under the ensemble's vmap so that one compiled step serves
    a sigma sweep (the signals that need a concrete sigma, evosax's, cannot sweep)."""
    forms = loss_forms(task, method)

    def make(hyper):
        settings = {"sigma": hyper["sigma"] if sigma is None else sigma, "samples": samples}
        return signals.make_learner(method, forms, optax.adam(lr), settings)

    return make


def train_members(
    task: Spiral,
    config: dict[str, Any],
    run_dir: RunDir,
    *,
    method: str,
    hidden: int,
    samples: int,
    sigmas: Sequence[float],
    seeds: Sequence[int],
    steps: int,
    label: str,
    eval_every: int | None,
    tags: dict[str, Any] | None = None,
) -> tuple[list[dict[str, np.ndarray]], NeuralODE]:
    """Train one ensemble (member m: `sigmas[m]`, `seeds[m]`; one sigma for all is passed
    as a constant, several are traced). Returns its history split
    into one curve per member (`bbpes.tasks.spiral_metrics.split_history`) and the
    trained fields, stacked."""
    hyper = {
        "sigma": jnp.asarray(sigmas, jnp.result_type(float)),
        "seed": jnp.asarray(seeds, jnp.int32),
    }
    lr = config["lr"]
    # spiral-scaling has no schedule: its timed reruns stop early, which would change it
    if config.get("lr_schedule", "constant") == "cosine":
        lr = optax.cosine_decay_schedule(lr, steps, alpha=0.1)
    shared = float(sigmas[0]) if len(set(sigmas)) == 1 else None  # no sweep: a constant
    learner = Ensemble(member_learners(task, method, samples, lr, shared), hyper)
    base = jax.random.key(config["seed"])
    result = train(
        learner,
        stacked_fields(hidden, seeds, jax.random.fold_in(base, 0)),
        jax.random.fold_in(base, 1),
        steps=steps,
        batch=stacked_batches(task, seeds, jax.random.fold_in(base, 2)),
        evaluate=member_maes(task),
        eval_every=eval_every,
        run=run_dir,
        label=label,
        tags=tags,
        resume=config["resume"],
        progress_keys=("loss", "mae"),
        max_nonfinite=config["max_nonfinite"],
    )
    return split_history(result.history, len(seeds)), result.params


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    task = make_task(config)
    seeds = list(range(config["runs"]))
    metrics: dict[str, Any] = {}
    curves, fields = {}, {}
    for method in methods_of(config, "method"):
        members, fields[method] = train_members(
            task,
            config,
            run_dir,
            method=method,
            hidden=config["hidden"],
            samples=config["samples"],
            sigmas=[config["sigma"]] * len(seeds),
            seeds=seeds,
            steps=config["steps"],
            label=method,
            eval_every=config["eval_every"],
        )
        curves[method] = members
        summary = summarise(members, config["target"], config["window"])
        for key, value in summary.items():
            metrics[f"{key}_{method}"] = value
        # All runs share one vmapped step: a run's share of the measured wall time.
        iters = summary["iterations_to_target"]
        metrics[f"seconds_to_target_{method}"] = (
            seconds_at(members[0], iters) / len(seeds) if iters is not None else None
        )
        metrics[f"seconds_per_iteration_{method}"] = seconds_at(
            members[0], float(config["steps"])
        ) / (config["steps"] * len(seeds))
    plot_curves(run_dir, curves, config)
    plot_trajectories(run_dir, task, fields)
    return metrics


def moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Mean of the last `width` values at each position (fewer at the start)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(0, idx - width)
    return (sums[idx] - sums[start]) / (idx - start)


def median_and_range(ax, x, runs, *, label: str, color: str | None, ls: str = "-") -> None:
    """Median over runs as a line, the range over runs as a band (log-scale safe)."""
    data = np.asarray(runs, float)
    line = ax.plot(x, np.median(data, axis=0), label=label, color=color, ls=ls, lw=1)
    if len(runs) > 1:
        ax.fill_between(
            x, data.min(axis=0), data.max(axis=0), alpha=0.2, color=line[0].get_color(), lw=0
        )


def plot_curves(run_dir: RunDir, curves: dict, config: dict) -> None:
    """Minibatch loss (moving average over 1% of the steps) and full-trajectory MAE
    (running median over `window` evaluations, and the best so far), median and range
    over runs (Figs. 9A, 12)."""
    fig, ((ax_loss, ax_mae),) = plotting.figure(ncols=2, width=5.5)
    n = len(curves)
    for method, members in curves.items():
        c = signals.color(method)
        width = max(1, len(members[0]["loss"]) // 100)
        loss = [moving_average(np.nan_to_num(m["loss"], nan=np.inf), width) for m in members]
        median_and_range(
            ax_loss, members[0]["step"], loss, label=f"{method} (runs={len(members)})", color=c
        )
        x = members[0]["eval_step"]
        smooth = [running_median(m["mae"], config["window"]) for m in members]
        best = [np.minimum.accumulate(np.nan_to_num(m["mae"], nan=np.inf)) for m in members]
        median_and_range(ax_mae, x, smooth, label=f"{method}, running median", color=c)
        median_and_range(ax_mae, x, best, label=f"{method}, best so far", color=c, ls=":")
    ax_mae.axhline(config["target"], color="gray", ls="--", lw=0.8, label="target")
    for ax in (ax_loss, ax_mae):
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncols=1 if n < 3 else 2)
    ax_loss.set(xlabel="iteration", ylabel="minibatch MAE", title="Training loss")
    ax_mae.set(
        xlabel="iteration",
        ylabel="MAE, whole trajectory from y(0)",
        title=f"Spiral, {config['hidden']} hidden units",
    )
    run_dir.save_figure(fig, "curves.png")


def plot_trajectories(run_dir: RunDir, task: Spiral, fields: dict[str, NeuralODE]) -> None:
    """Each method's learned trajectory from y(0) (run 0) against the truth, phase plane."""
    fig, ((ax,),) = plotting.figure(width=4.5, height=4.5)
    ax.plot(task.ys[:, 0], task.ys[:, 1], color="black", lw=1.5, label="true")
    for method, stacked in fields.items():
        ys = np.asarray(eqx.filter_jit(task.trajectory)(jax.tree.map(lambda x: x[0], stacked)))
        ax.plot(ys[:, 0], ys[:, 1], color=signals.color(method), lw=1, ls="--", label=method)
    ax.set(xlabel="y1", ylabel="y2", title="Trajectory from y(0), run 0")
    ax.legend(fontsize=8)
    run_dir.save_figure(fig, "trajectories.png")


def check(config: dict[str, Any]) -> None:
    require(config["hidden"] >= 1, "hidden must be >= 1")
    require(config["runs"] >= 1, "runs must be >= 1")
    require(config["steps"] >= 2, "steps must be >= 2")
    require_mirrored_samples(config)
    require(config["sigma"] > 0, "sigma must be positive")
    require(config["lr"] > 0, "lr must be positive")
    require(config["tol"] > 0, "tol must be positive")
    require(config["eval_every"] >= 1, "eval_every must be >= 1")
    require(config["window"] >= 1, "window must be >= 1")
    require(config["target"] > 0, "target must be positive")
    require_positive(config, "t_end")
    require(1 <= config["max_steps"] <= MAX_LOOP, f"max_steps must be in 1..{MAX_LOOP}")
    require(config["max_nonfinite"] >= 1, "max_nonfinite must be >= 1")
    # each ES member holds a perturbed copy of the field (about 5 hidden-sized vectors)
    require_fits(
        4.0 * config["runs"] * (config["samples"] + 1) * 5 * config["hidden"],
        "the ES populations of the vector fields",
    )
    require(
        2 <= config["batch_time"] < config["n_points"]
        and 1 <= config["batch_size"] <= config["n_points"] - config["batch_time"],
        "need 2 <= batch_time < n_points and 1 <= batch_size <= n_points - batch_time",
    )


DEFAULTS = {
    "hidden": 50,
    "method": ["es", "bptt"],
    "runs": 5,
    "steps": 20000,
    "samples": 150,
    "sigma": 0.003,
    "lr": 1e-3,
    "lr_schedule": "constant",
    "n_points": 1000,
    "t_end": 25.0,
    "batch_size": 20,
    "batch_time": 10,
    "tol": 1e-4,
    "max_steps": 4096,
    "eval_every": 10,
    "window": 5,
    "target": 0.04,
    "max_nonfinite": 20,
    "x64": False,
}

HELP = {
    "hidden": "tanh hidden units of the MLP vector field (paper: 50 and 1000)",
    "method": f"learning signals, comma-separated: {', '.join(METHODS)}; not offered: "
    + "; ".join(UNSUPPORTED.values()),
    "runs": "independent runs (initialisation, minibatches, noise), trained together",
    "samples": "ES perturbations per iteration (mirrored pairs)",
    "sigma": "ES perturbation scale (paper: 0.1; the H = 50 sweep here found 0.003 best)",
    "lr": "Adam learning rate, for every method",
    "lr_schedule": "constant (the paper), or cosine: decay to a tenth over the run",
    "tol": "rtol = atol of the Dopri5 solves",
    "eval_every": "iterations between full-trajectory MAE evaluations",
    "window": "evaluations in the running median that decides 'reached the target'",
    "target": "full-trajectory MAE target",
}

EXPERIMENT = Experiment(
    name="spiral",
    summary="neural ODE on the cubic spiral, ES vs BP (and any signal): loss and MAE curves (Figs. 9A, 12)",
    run=run,
    defaults=DEFAULTS,
    quick={"runs": 2, "steps": 300, "samples": 40, "eval_every": 10, "target": 0.3},
    choices={"method": METHODS, "lr_schedule": ("constant", "cosine")},
    check=check,
    help=HELP,
)
