"""`turn-off-brian2`: the turn-off task (BBPES paper, section 3.1, Fig. 5C) with the cell
simulated by Brian2, a black box to JAX, trained by ES whose population runs on a Ray
cluster (paper, discussion: "standard packages such as NEURON and Brian could be used").

The same ES maths and Adam loop as `turn-off`; the only change is who simulates. For
comparison the in-process JAX version is trained with the same key and settings
(`compare_jax`), and the loss landscape of both simulators is sampled on a grid of
currents (the check that Brian2's cell is our cell).
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import plotting
from ..estimators import es
from ..framework import Experiment, Setting
from ..framework.checks import require, require_fits, require_steps
from ..learners import GradientLearner
from ..progress import log
from ..runs import RunDir
from ..tasks.turn_off import PRESET, PRESETS, TurnOff
from ..tasks.turn_off_brian2 import METHODS, TARGETS, Brian2TurnOff
from ..train import train


class _Addresses(tuple):
    """The `address` values: '' (start a local cluster), 'auto', 'host:port' or
    'ray://host:port' (`bbpes show` lists these four forms)."""

    def __contains__(self, value: object) -> bool:
        pattern = r"|auto|(ray://)?[\w.\-]+:\d+"
        return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def params0(config: dict[str, Any]) -> dict[str, jax.Array]:
    return {"i_app": jnp.asarray(config["i_app0"], jnp.result_type(float))}


def train_one(estimator, config: dict[str, Any], run_dir: RunDir, label: str):
    return train(
        GradientLearner(estimator, optax.adam(config["lr"])),
        params0(config),
        jax.random.key(config["seed"]),
        steps=config["steps"],
        evaluate=lambda p: {"i_app": p["i_app"]},
        eval_every=1,
        run=run_dir,
        label=label,
        resume=config["resume"],
        progress_keys=("loss", "i_app"),
    )


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    from ..ray_es import ray_es
    from ..ray_evaluator import RayEvaluator

    cell = PRESETS[config["preset"]]
    brian2_loss = Brian2TurnOff(
        cell=cell,
        t_end=config["t_end"],
        dt=config["dt"],
        method=config["method"],
        target=config["target"],
    )
    jax_task = TurnOff(cell=cell, t_end=config["t_end"], dt=config["dt"])
    evaluator = RayEvaluator(
        brian2_loss,
        workers=config["workers"] or None,
        address=config["address"] or None,
        retries=config["retries"],
        timeout=config["timeout"],
        init_options={"log_to_driver": False},
    )
    metrics: dict[str, Any] = {"workers": evaluator.workers}
    with evaluator:
        log(f"building Brian2 ({config['target']}) on {evaluator.workers} Ray workers")
        grid = np.linspace(config["grid_min"], config["grid_max"], config["grid_points"])
        points = [*grid, config["i_app0"]]
        *brian2_grid, initial = evaluator.evaluate([{"i_app": np.asarray(i)} for i in points])
        brian2_grid = np.asarray(brian2_grid)
        jax_grid = np.asarray(
            jax.jit(jax.vmap(lambda i: jax_task.loss({"i_app": i})))(jnp.asarray(grid))
        )
        estimator = ray_es(evaluator, config["sigma"], config["samples"], has_aux=True)
        brian2 = train_one(estimator, config, run_dir, "es_brian2")
        stats = evaluator.stats
        final = evaluator.evaluate([{"i_app": np.asarray(brian2.params["i_app"])}])[0]
    metrics.update(
        {
            "initial_loss_brian2": float(initial),
            "final_loss_brian2": float(final),
            "final_i_app_brian2": float(brian2.params["i_app"]),
            "below_10pct_brian2": bool(final < 0.1 * initial),
            "seconds_brian2": float(brian2.history[-1]["seconds"]),
            "samples_retried": stats.retried,
            "samples_failed": stats.failed,
            "samples_timed_out": stats.timed_out,
            "workers_replaced": stats.workers_replaced,
            "landscape_max_abs_gap": float(np.nanmax(np.abs(brian2_grid - jax_grid))),
            "landscape_nonfinite_brian2": int(np.sum(~np.isfinite(brian2_grid))),
        }
    )
    if brian2.stopped:
        metrics["stopped_brian2"] = brian2.stopped
    curves = {"es_brian2": brian2.history}
    if config["compare_jax"]:
        estimator = es(jax_task.loss, config["sigma"], config["samples"])
        jax_run = train_one(estimator, config, run_dir, "es_jax")
        final_jax = float(jax_task.loss(jax_run.params))
        metrics.update(
            {
                "initial_loss_jax": float(jax_task.loss(params0(config))),
                "final_loss_jax": final_jax,
                "final_i_app_jax": float(jax_run.params["i_app"]),
                "seconds_jax": float(jax_run.history[-1]["seconds"]),
                "i_app_gap": float(brian2.params["i_app"] - jax_run.params["i_app"]),
            }
        )
        curves["es_jax"] = jax_run.history
    plot_landscape(run_dir, grid, brian2_grid, jax_grid, config)
    plot_training(run_dir, curves, initial)
    return metrics


def plot_landscape(run_dir: RunDir, grid, brian2_grid, jax_grid, config) -> None:
    fig, ((ax,),) = plotting.figure()
    ax.plot(grid, jax_grid, color="black", lw=1.2, label="JAX (leapfrog stepper)")
    ax.plot(
        grid,
        brian2_grid,
        color="tab:orange",
        ls="--",
        marker=".",
        label=f"Brian2 ({config['method']}, {config['target']})",
    )
    ax.set(
        xlabel="I_app (µA/cm²)",
        ylabel="mean T(V)",
        title=f"Turn-off loss, {config['t_end'] / 1000:g} s, dt {config['dt']:g} ms",
    )
    ax.legend()
    run_dir.save_figure(fig, "landscape.png")


def plot_training(run_dir: RunDir, curves: dict, initial_loss: float) -> None:
    fig, ((ax_loss, ax_i),) = plotting.figure(ncols=2)
    for label, history in curves.items():
        losses = [(r["step"], r["loss"]) for r in history if r.get("loss") is not None]
        ax_loss.plot(*zip(*losses), label=label)
        ax_i.plot([r["step"] for r in history], [r["i_app"] for r in history], label=label)
    ax_loss.axhline(0.1 * initial_loss, color="gray", ls="--", lw=0.8, label="10% of initial")
    ax_loss.set(xlabel="iteration", ylabel="loss", title="ES + Adam")
    ax_i.set(xlabel="iteration", ylabel="I_app (µA/cm²)", title="Learned current")
    ax_loss.legend()
    run_dir.save_figure(fig, "training.png")


def check(config: dict[str, Any]) -> None:
    for module, extra in (("brian2", "brian2"), ("ray", "cluster")):
        require(
            importlib.util.find_spec(module) is not None,
            f"turn-off-brian2 needs {module}: pip install 'bbpes[{extra}]'"
            + (
                " (Brian2 2.9 needs numpy < 2.4; use its own virtualenv)"
                if extra == "brian2"
                else ""
            ),
        )
    require_steps(config["t_end"], config["dt"])
    require(
        config["workers"] <= config["samples"] + config["grid_points"] + 1,
        "workers must be <= samples + grid_points + 1 (the most samples evaluated at once)",
    )
    require(config["grid_max"] > config["grid_min"], "grid_max must be above grid_min")
    require_fits(
        8.0 * (config["samples"] + config["grid_points"]) * 16,
        "the ES population and the landscape grid",
    )


SETTINGS = (
    Setting("t_end", 10_000.0, "time frame of the loss", "ms", positive=True, quick=2000.0),
    Setting("dt", 0.1, "time step of both simulators", "ms", positive=True),
    PRESET,
    Setting("method", "rk4", "Brian2's integrator", choices=METHODS),
    Setting(
        "target",
        "cpp_standalone",
        "Brian2's code generation (cpp_standalone: compiled once per worker)",
        choices=TARGETS,
    ),
    Setting("i_app0", 100.0, "initial current", "µA/cm²", any_value=True),
    Setting("steps", 100, "training iterations", low=1, quick=40),
    Setting("lr", 1.0, "Adam learning rate", "µA/cm² per step", positive=True),
    Setting("sigma", 5.0, "ES perturbation scale", "µA/cm²", positive=True),
    Setting(
        "samples",
        100,
        "ES perturbed members per iteration (mirrored pairs)",
        low=2,
        even=True,
        quick=20,
    ),
    Setting(
        "workers",
        0,
        "Ray workers (one CPU each)",
        low=0,
        zero="every free CPU of the cluster",
    ),
    Setting(
        "address",
        "",
        "an existing Ray cluster ('auto', 'ray://host:10001'); empty: start a local one",
        choices=_Addresses(("", "auto", "host:port", "ray://host:port")),
    ),
    Setting("retries", 2, "tries again for a sample that fails (exception, timeout, NaN)", low=0),
    Setting(
        "timeout",
        120.0,
        "seconds one sample may run before its worker is replaced",
        "s",
        positive=True,
    ),
    Setting("compare_jax", True, "also train the JAX simulation in-process, same key and settings"),
    Setting("grid_min", 40.0, "lowest current of the landscape", "µA/cm²", any_value=True),
    Setting("grid_max", 160.0, "highest current of the landscape", "µA/cm²", positive=True),
    Setting(
        "grid_points",
        25,
        "currents on which both simulators' losses are compared",
        low=2,
        quick=13,
    ),
    Setting("x64", False, "simulate in float64"),
)

EXPERIMENT = Experiment(
    name="turn-off-brian2",
    summary="turn-off with the cell simulated by Brian2, trained by ES on a Ray cluster",
    run=run,
    settings=SETTINGS,
    check=check,
)
