"""`turn-off`: learn the current of one Morris-Lecar cell to stop it firing (BBPES
paper, section 3.1, Fig. 5): the loss landscape and its Gaussian smoothing (5A), their
derivatives with the BPTT and ES gradients at the same points (5B), and training curves
of every chosen method from I_app = 100 with Adam (5C). Any signal of `bbpes.signals`
whose loss form the task offers is a method here; with the hard readout the task also
offers the surrogate-spike form (`surrogate_threshold`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import plotting, signals
from ..estimators import es
from ..estimators.backprop import bptt
from ..framework import Experiment, Setting
from ..framework.checks import (
    check_signals,
    methods_of,
    require,
    require_fits,
    require_steps,
    signal_choices,
    signal_learner,
    signal_optimizer,
    signal_settings,
)
from ..runs import RunDir
from ..tasks.turn_off import (
    PRESET,
    PRESETS,
    READOUTS,
    TurnOff,
    forms_offered,
    gaussian_smooth,
    loss_forms,
)
from ..train import train


def make_task(config: dict[str, Any]) -> TurnOff:
    return TurnOff(
        cell=PRESETS[config["preset"]],
        t_end=float(config["t_end"]),
        dt=float(config["dt"]),
        readout=READOUTS[config["readout"]],
    )


def landscape(task: TurnOff, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """Loss, smoothed loss and their derivatives on the grid; BPTT and ES gradients
    at `gradient_points` points of it."""
    lo, hi, n = config["grid_min"], config["grid_max"], config["grid_points"]
    h = (hi - lo) / (n - 1)
    pad = int(np.ceil(4 * config["sigma"] / h))  # smoothing needs the loss beyond the edges
    wide = lo + h * np.arange(-pad, n + pad)
    loss_at = jax.jit(jax.vmap(lambda i: task.loss({"i_app": i})))
    wide_losses = np.asarray(loss_at(jnp.asarray(wide, jnp.result_type(float))))
    smooth = gaussian_smooth(wide, wide_losses, config["sigma"])[pad : pad + n]
    grid, losses = wide[pad : pad + n], wide_losses[pad : pad + n]
    points = np.linspace(lo, hi, config["gradient_points"])
    bptt_grad = jax.jit(jax.vmap(lambda i: bptt(task.loss)({"i_app": i}, None)[1]["i_app"]))
    estimate = es(task.loss, config["sigma"], config["samples"])
    keys = jax.random.split(jax.random.key(config["seed"] + 1), len(points))
    es_grad = jax.jit(jax.vmap(lambda i, k: estimate({"i_app": i}, k)[1]["i_app"]))
    dtype = jnp.result_type(float)
    return {
        "grid": grid,
        "loss": losses,
        "smoothed": smooth,
        "d_loss": np.gradient(losses, grid),
        "d_smoothed": np.gradient(smooth, grid),
        "points": points,
        "bptt": np.asarray(bptt_grad(jnp.asarray(points, dtype))),
        "es": np.asarray(es_grad(jnp.asarray(points, dtype), keys)),
    }


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    task = make_task(config)
    scape = landscape(task, config)
    params0 = {"i_app": jnp.asarray(config["i_app0"], jnp.result_type(float))}
    initial_loss = float(task.loss(params0))
    metrics: dict[str, Any] = {"initial_loss": initial_loss}
    curves = {}
    forms = loss_forms(
        task, hard=config["readout"] == "hard", surrogate_slope=config["surrogate_slope"]
    )
    for method in methods_of(config, "methods"):
        optimizer = signal_optimizer(method, config, optax.adam)
        learner = signal_learner(method, forms, optimizer, config, params0)
        result = train(
            learner,
            params0,
            jax.random.key(config["seed"]),
            steps=config["steps"],
            evaluate=lambda p: {"i_app": p["i_app"]},
            eval_every=1,
            run=run_dir,
            label=method,
            resume=config["resume"],
            progress_keys=("loss", "i_app"),
        )
        final = float(task.loss(result.params))
        metrics[f"final_loss_{method}"] = final
        metrics[f"final_i_app_{method}"] = float(result.params["i_app"])
        metrics[f"below_10pct_{method}"] = bool(final < 0.1 * initial_loss)
        if result.stopped:
            metrics[f"stopped_{method}"] = result.stopped
        curves[method] = result.history
    plot_landscape(run_dir, scape, config)
    plot_gradients(run_dir, scape, config)
    plot_training(run_dir, curves, initial_loss, config)
    metrics["bptt_grad_sign_positive_fraction"] = float(np.mean(scape["bptt"] > 0))
    metrics["es_grad_sign_positive_fraction"] = float(np.mean(scape["es"] > 0))
    return metrics


def plot_landscape(run_dir: RunDir, scape: dict, config: dict) -> None:
    fig, ((ax, zoom),) = plotting.figure(ncols=2)
    near = np.abs(scape["grid"] - config["i_app0"]) <= config["zoom_width"] / 2
    for axis, mask in ((ax, slice(None)), (zoom, near)):
        axis.plot(
            scape["grid"][mask], scape["loss"][mask], color="black", lw=0.8, label="loss L(I_app)"
        )
        axis.plot(
            scape["grid"][mask],
            scape["smoothed"][mask],
            color="tab:red",
            label=f"smoothed, sigma={config['sigma']:g}",
        )
        axis.set(xlabel="I_app (µA/cm²)", ylabel="mean T(V)")
    ax.set_title(f"Turn-off loss landscape, {config['t_end'] / 1000:g} s")
    zoom.set_title(f"zoom around I_app = {config['i_app0']:g}: a staircase")
    ax.legend()
    run_dir.save_figure(fig, "landscape.png")


def plot_gradients(run_dir: RunDir, scape: dict, config: dict) -> None:
    fig, ((ax,),) = plotting.figure()
    ax.plot(scape["grid"], scape["d_loss"], color="black", lw=0.6, label="dL/dI (grid)")
    ax.plot(scape["grid"], scape["d_smoothed"], color="tab:red", label="d(smoothed L)/dI")
    ax.scatter(
        scape["points"], scape["bptt"], color="tab:blue", s=14, label="BPTT gradient", zorder=3
    )
    ax.scatter(
        scape["points"],
        scape["es"],
        color="tab:orange",
        marker="x",
        s=18,
        label=f"ES gradient (S={config['samples']})",
        zorder=3,
    )
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set(xlabel="I_app (µA/cm²)", ylabel="derivative", title="Gradients along I_app")
    ax.legend(fontsize=8)
    run_dir.save_figure(fig, "gradients.png")


def plot_training(run_dir: RunDir, curves: dict, initial_loss: float, config: dict) -> None:
    fig, ((ax_loss, ax_i),) = plotting.figure(ncols=2)
    for method, history in curves.items():
        steps = [r["step"] for r in history if "loss" in r]
        ax_loss.plot(
            steps,
            [r["loss"] for r in history if "loss" in r],
            label=method,
            color=signals.color(method),
        )
        ax_i.plot(
            [r["step"] for r in history],
            [r["i_app"] for r in history],
            label=method,
            color=signals.color(method),
        )
    ax_loss.axhline(0.1 * initial_loss, color="gray", ls="--", lw=0.8, label="10% of initial")
    ax_loss.set(xlabel="iteration", ylabel="loss", title="Training (Adam)")
    ax_i.set(xlabel="iteration", ylabel="I_app (µA/cm²)", title="Learned current")
    ax_loss.legend()
    run_dir.save_figure(fig, "training.png")


def check(config: dict[str, Any]) -> None:
    hard = config["readout"] == "hard"
    check_signals(
        config,
        "methods",
        forms_offered(hard),
        f"turn-off ({config['readout']} readout)",
        sample_bytes=64.0,
    )
    require_steps(config["t_end"], config["dt"])
    require(config["grid_max"] > config["grid_min"], "grid_max must be above grid_min")
    # the landscape: grid_points losses and their smoothing (4 sigma beyond each edge)
    h = (config["grid_max"] - config["grid_min"]) / (config["grid_points"] - 1)
    require(
        config["grid_points"] + 8 * config["sigma"] / h <= 10_000_000,
        "the landscape grid (grid_points plus 4 sigma each side) must stay under 1e7 points",
    )
    # the ES gradients at the gradient points are one vmapped computation
    require_fits(
        64.0
        * config["gradient_points"]
        * min(config["samples"], config["es_chunk"] or config["samples"]),
        "the ES estimates at every gradient point",
    )


SETTINGS = (
    Setting("t_end", 10_000.0, "time frame of the loss", "ms", positive=True, quick=2000.0),
    Setting("dt", 0.1, "step of the leapfrog stepper", "ms", positive=True),
    PRESET,
    Setting(
        "readout",
        "soft",
        "spike output T(V): soft sigmoid (Eq. 11) or hard threshold (Eq. 10)",
        choices=tuple(READOUTS),
    ),
    Setting("i_app0", 100.0, "initial current", "µA/cm²", any_value=True),
    Setting(
        "methods",
        ["es", "bptt"],
        "learning signals to train with (any of `bbpes.signals`)",
        choices=signal_choices(),
    ),
    Setting("steps", 100, "training iterations", low=1, quick=60),
    Setting(
        "lr", 1.0, "Adam learning rate of the gradient signals", "µA/cm² per step", positive=True
    ),
    Setting(
        "lr_es",
        1.0,
        "Adam learning rate of the losses-only signals (ES, weight perturbation)",
        "µA/cm² per step",
        positive=True,
    ),
    Setting(
        "clip",
        0.0,
        "clip the gradient's global norm to this before Adam (bptt_noclip never)",
        low=0,
        zero="off",
    ),
    Setting("grid_min", 0.0, "lowest current of the landscape", "µA/cm²", any_value=True),
    Setting("grid_max", 200.0, "highest current of the landscape", "µA/cm²", positive=True),
    Setting("grid_points", 2001, "currents on the landscape grid", low=3, quick=801),
    Setting(
        "gradient_points",
        41,
        "currents at which the BPTT and ES gradients are computed",
        low=1,
        quick=21,
    ),
    Setting(
        "zoom_width", 10.0, "width of the zoomed landscape around i_app0", "µA/cm²", positive=True
    ),
    Setting("x64", False, "simulate in float64"),
    *signal_settings({"samples": 100}),
    Setting("sigma", 5.0, "ES perturbation scale and smoothing width", "µA/cm²", positive=True),
)

EXPERIMENT = Experiment(
    name="turn-off",
    summary="single Morris-Lecar cell learns to stop firing: landscape, gradients, ES vs BPTT (Fig. 5)",
    run=run,
    settings=SETTINGS,
    check=check,
)
