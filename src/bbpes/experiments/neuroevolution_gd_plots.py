"""The figures of `neuroevolution-gd`: loss curves of the mutation walkers against
gradient descent on the matched time axis, the watched weights, and the gap and the
mean-step prefactor against sigma."""

from __future__ import annotations

from typing import Any

import matplotlib.ticker
import numpy as np

from .. import plotting
from ..framework.checks import methods_of
from ..runs import RunDir

WATCHED = 3  # weights whose mean trajectories are plotted


def regime_key(regime: str) -> str:
    """The regime's name in metric keys and file names."""
    return "beta_inf" if regime == "inf" else "beta_finite"


def sigmas_of(config: dict[str, Any], regime: str) -> list[float]:
    """The mutation scales of `regime` (parameter units)."""
    return list(config["sigmas_inf"] if regime == "inf" else config["sigmas_finite"])


def loglog_slope(x, y) -> float:
    """The slope of log y against log x over the positive pairs (NaN for fewer than 2)."""
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
