"""`spiral`: a neural ODE dy/dt = MLP(y^3) fitted to the cubic spiral by ES and by
backpropagation (BBPES paper, section 3.3.1, Fig. 9A with 1000 hidden units, Fig. 12
with 50): minibatch loss and full-trajectory MAE over training, mean and spread over
several runs, and the iterations to the paper's target MAE of 0.04.

Independent runs are the members of one `bbpes.learners.Ensemble`, trained by one
compiled, `jax.vmap`-ed step (`bbpes.tasks.spiral_runs.train_members`). Any learning
signal of `bbpes.signals` whose loss form the spiral offers is a `method`.

The full-trajectory MAE jumps from one evaluation to the next (with Adam 1e-3 it swings
between about 0.03 and 0.7 late in training, for BP as for ES), so the minibatch loss is
reported beside it and the target is read two ways (`bbpes.tasks.spiral_metrics`):
"iterations to target" is the first evaluation at or below it (the best MAE so far
reaches it, the paper's reading), and "iterations to sustained target" the first at
which the running median of the last `window` evaluations is at or below it.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import numpy as np

from .. import plotting, signals
from ..framework import Experiment, Setting
from ..framework.checks import methods_of, require, require_fits
from ..models.neural_ode import NeuralODE
from ..runs import RunDir
from ..settings import by_name, with_values
from ..tasks.spiral import SETTINGS as TASK_SETTINGS
from ..tasks.spiral import Spiral
from ..tasks.spiral_metrics import running_median, seconds_at, summarise
from ..tasks.spiral_runs import OFFERED, RUN_SETTINGS, make_task, train_members

UNSUPPORTED = signals.unsupported(OFFERED, observed=True)
"""Signals whose loss form exists but that cannot train the spiral, and why (from the
registry: the loss observes the solution at many times; an ODE fit has no truncated or
surrogate form)."""

METHODS = tuple(m for m in signals.available(OFFERED) if m not in UNSUPPORTED)


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
    # each ES member holds a perturbed copy of the field (about 5 hidden-sized vectors)
    require_fits(
        4.0 * config["runs"] * (config["samples"] + 1) * 5 * config["hidden"]
        + 8.0 * config["n_points"] * 2,
        "the ES populations of the vector fields and the spiral data",
    )
    require(
        config["batch_time"] < config["n_points"]
        and config["batch_size"] <= config["n_points"] - config["batch_time"],
        "need batch_time < n_points and batch_size <= n_points - batch_time",
    )


_RUN = by_name(RUN_SETTINGS)

SETTINGS = (
    *RUN_SETTINGS,
    with_values(_RUN["runs"], quick=2),
    Setting(
        "method",
        ["es", "bptt"],
        f"learning signals, comma-separated: {', '.join(METHODS)}; not offered: "
        + "; ".join(UNSUPPORTED.values()),
        choices=METHODS,
    ),
    Setting(
        "samples",
        150,
        "ES perturbations per iteration (mirrored pairs)",
        low=2,
        even=True,
        quick=40,
    ),
    Setting(
        "sigma",
        0.003,
        "ES perturbation scale (paper: 0.1; the H = 50 sweep here found 0.003 best)",
        positive=True,
    ),
    Setting(
        "lr_schedule",
        "constant",
        "constant (the paper), or cosine: decay to a tenth over the run",
        choices=("constant", "cosine"),
    ),
    *TASK_SETTINGS,
)

EXPERIMENT = Experiment(
    name="spiral",
    summary="neural ODE on the cubic spiral, ES vs BP (and any signal): loss and MAE curves (Figs. 9A, 12)",
    run=run,
    settings=SETTINGS,
    check=check,
)
