"""`spiral-scaling`: how many ES samples the spiral neural ODE needs (BBPES paper,
section 3.3.1, Figs. 9B, 9C and 13): for each sample count S, the iterations and the
wall time ES takes to reach the target full-trajectory MAE (0.04) with the best sigma
of a sweep, against backpropagation's, all measured in the same run.

1. For each S, one `Ensemble` trains every (sigma, seed) pair of the sweep at once: a
   single compiled step, sigma passed as data. A pair's iterations to target are read
   from its MAE evaluations (running median over `window` evaluations, as in `spiral`);
   the best sigma reaches the target in the fewest iterations (median over seeds).
2. BP (`bp_method`) trains the same seeds, one run at a time (`Ensemble` of one member).
3. Wall time: each S's best sigma is trained again alone, same seed, for exactly the
   iterations it needed, and that run's training time (evaluation and compilation
   excluded) is its seconds to target; BP's comes from its own run in step 2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import plotting, signals
from ..framework import Experiment, Setting
from ..framework.checks import require, require_fits
from ..runs import RunDir
from ..settings import by_name, with_values
from ..tasks.spiral import SETTINGS as TASK_SETTINGS
from ..tasks.spiral_metrics import iterations_to_target, running_median, seconds_at
from ..tasks.spiral_runs import RUN_SETTINGS, make_task, train_members


def sweep(task, config: dict, run_dir: RunDir, samples: int) -> dict[float, list[dict]]:
    """Curves of every (sigma, seed) pair at `samples` samples, by sigma."""
    sigmas, seeds = config["sigmas"], list(range(config["runs"]))
    pairs = [(sigma, seed) for sigma in sigmas for seed in seeds]
    curves, _ = train_members(
        task,
        config,
        run_dir,
        method="es",
        hidden=config["hidden"],
        samples=samples,
        sigmas=[p[0] for p in pairs],
        seeds=[p[1] for p in pairs],
        steps=config["steps"],
        label=f"es-S{samples}",
        eval_every=config["eval_every"],
        tags={"samples": samples},
    )
    return {sigma: [c for c, p in zip(curves, pairs) if p[0] == sigma] for sigma in sigmas}


def median_iterations(curves: list[dict], config: dict) -> float:
    """Median over seeds of the iterations to target (inf for a seed that never got there)."""
    hits = [iterations_to_target(c, config["target"], config["window"])[0] for c in curves]
    return float(np.median([h if np.isfinite(h) else np.inf for h in hits]))


def final_mae(curves: list[dict], config: dict) -> float:
    return float(np.mean([running_median(c["mae"], config["window"])[-1] for c in curves]))


def timed_run(
    task,
    config: dict,
    run_dir: RunDir,
    method: str,
    samples: int,
    sigma: float,
    steps: int,
    label: str,
) -> tuple[float, float]:
    """Seconds of `steps` iterations of one run (seed 0, evaluation only at the ends) and
    its MAE at the end."""
    (curve,), _ = train_members(
        task,
        config,
        run_dir,
        method=method,
        hidden=config["hidden"],
        samples=samples,
        sigmas=[sigma],
        seeds=[0],
        steps=steps,
        label=label,
        eval_every=None,
        tags={"samples": samples, "timed": True},
    )
    return seconds_at(curve, float(steps)), float(curve["mae"][-1])


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    task = make_task(config)
    metrics: dict[str, Any] = {}
    bp = config["bp_method"]
    seeds = list(range(config["runs"]))
    bp_curves = [
        train_members(
            task,
            config,
            run_dir,
            method=bp,
            hidden=config["hidden"],
            samples=2,
            sigmas=[1.0],
            seeds=[seed],
            steps=config["steps"],
            label=f"{bp}-seed{seed}",
            eval_every=config["eval_every"],
        )[0][0]
        for seed in seeds
    ]
    bp_hits = [iterations_to_target(c, config["target"], config["window"])[0] for c in bp_curves]
    bp_iters = float(np.median([h if np.isfinite(h) else np.inf for h in bp_hits]))
    metrics[f"iterations_to_target_{bp}"] = bp_iters if np.isfinite(bp_iters) else None
    metrics[f"seconds_to_target_{bp}"] = (
        float(np.median([seconds_at(c, h) for c, h in zip(bp_curves, bp_hits) if np.isfinite(h)]))
        if np.isfinite(bp_iters)
        else None
    )
    metrics[f"final_mae_{bp}"] = final_mae(bp_curves, config)

    table = {}
    for samples in config["samples_list"]:
        by_sigma = sweep(task, config, run_dir, samples)
        iters = {s: median_iterations(c, config) for s, c in by_sigma.items()}
        maes = {s: final_mae(c, config) for s, c in by_sigma.items()}
        for sigma in by_sigma:
            it = iters[sigma]
            metrics[f"iterations_to_target_es_s{samples}_sigma{sigma:g}"] = (
                it if np.isfinite(it) else None
            )
            metrics[f"final_mae_es_s{samples}_sigma{sigma:g}"] = maes[sigma]
        best = min(by_sigma, key=lambda s: (iters[s], maes[s]))
        row = {"sigma": best, "iterations": iters[best], "mae": maes[best], "seconds": np.nan}
        if np.isfinite(iters[best]) and config["timed"]:
            row["seconds"], row["timed_mae"] = timed_run(
                task, config, run_dir, "es", samples, best, int(iters[best]), f"es-S{samples}-timed"
            )
            metrics[f"timed_run_mae_es_s{samples}"] = row["timed_mae"]
        table[samples] = row
        metrics[f"best_sigma_es_s{samples}"] = best
        metrics[f"iterations_to_target_es_s{samples}"] = (
            row["iterations"] if np.isfinite(row["iterations"]) else None
        )
        metrics[f"seconds_to_target_es_s{samples}"] = (
            row["seconds"] if np.isfinite(row["seconds"]) else None
        )
        metrics[f"final_mae_es_s{samples}"] = row["mae"]
        plot_scaling(run_dir, table, metrics, config)
    return metrics


def plot_scaling(run_dir: RunDir, table: dict, metrics: dict, config: dict) -> None:
    """Fig. 9B (iterations to target vs S), 9C (seconds to target vs S) and 13 (best sigma
    vs S), BP as a dotted line."""
    bp = config["bp_method"]
    s = sorted(table)
    fig, ((ax_it, ax_sec, ax_sig),) = plotting.figure(ncols=3, width=4.2)
    iters = [table[k]["iterations"] for k in s]
    secs = [table[k]["seconds"] for k in s]
    ax_it.plot(
        s,
        np.where(np.isfinite(iters), iters, np.nan),
        "o-",
        color=signals.color("es"),
        label="ES, best sigma",
    )
    ax_sec.plot(s, secs, "o-", color=signals.color("es"), label="ES, best sigma")
    for ax, key in ((ax_it, "iterations_to_target"), (ax_sec, "seconds_to_target")):
        value = metrics.get(f"{key}_{bp}")
        if value is not None:
            ax.axhline(value, color=signals.color(bp), ls=":", label=bp)
        ax.set_xlabel("ES samples S")
        ax.legend(fontsize=8)
    ax_it.set(ylabel=f"iterations to MAE {config['target']:g}", title="Iterations to target")
    ax_sec.set(ylabel="seconds (training only)", title="Wall time to target")
    ax_sig.plot(s, [table[k]["sigma"] for k in s], "o", color=signals.color("es"))
    ax_sig.set(xlabel="ES samples S", ylabel="best sigma", yscale="log", title="Best sigma")
    run_dir.save_figure(fig, "scaling.png")


def check(config: dict[str, Any]) -> None:
    require(
        config["batch_time"] < config["n_points"]
        and config["batch_size"] <= config["n_points"] - config["batch_time"],
        "need batch_time < n_points and batch_size <= n_points - batch_time",
    )
    require(len(config["samples_list"]) >= 1, "samples_list must not be empty")
    require(len(config["sigmas"]) >= 1, "sigmas must not be empty")
    # every (sigma, seed) pair trains at once: its MLP (about 5 hidden weights per unit,
    # with Adam's two moments) and its ES population's perturbed copies of a chunk
    members = len(config["sigmas"]) * config["runs"]
    params = 5 * config["hidden"] + 2
    require_fits(
        4.0 * members * params * (3 + 2 + max(config["samples_list"]))
        + 8.0 * config["n_points"] * 2,
        "the ensemble of MLP vector fields and the spiral data",
    )


_RUN = by_name(RUN_SETTINGS)

SETTINGS = (
    *RUN_SETTINGS,
    with_values(_RUN["hidden"], default=1000, quick=50),
    with_values(
        _RUN["runs"],
        default=1,
        help="seeds per (S, sigma) pair and for BP; iterations are medians over seeds",
    ),
    with_values(_RUN["steps"], default=3000, help="iteration cap of every training"),
    Setting(
        "samples_list",
        [10, 20, 50, 100, 150],
        "ES sample counts S (mirrored pairs)",
        low=2,
        even=True,
        quick=[10, 40],
    ),
    Setting(
        "sigmas",
        [1e-1, 1e-2, 1e-3, 1e-4],
        "the sigma sweep, trained together for each S",
        positive=True,
        quick=[1e-1, 1e-2],
    ),
    Setting(
        "bp_method",
        "bptt",
        "the backpropagation method to compare with",
        choices=("bptt", "fnde"),
    ),
    Setting("timed", True, "train each S's best sigma again alone to measure its wall time"),
    *TASK_SETTINGS,
)

EXPERIMENT = Experiment(
    name="spiral-scaling",
    summary="spiral neural ODE: ES iterations and seconds to MAE 0.04 per sample count, best sigma, vs BP (Figs. 9B, 9C, 13)",
    run=run,
    settings=SETTINGS,
    check=check,
)
