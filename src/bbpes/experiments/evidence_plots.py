"""The figures of `evidence`: accuracy against iteration per method (mean and spread
over seeds, Fig. 8) and the PCA of a trained network's hidden activity (Fig. 7B)."""

from __future__ import annotations

import equinox as eqx
import numpy as np

from .. import plotting, signals
from ..runs import RunDir
from ..tasks.evidence import EvidenceTask
from ..tasks.evidence_setup import neuron_name


def plot_accuracy(run_dir: RunDir, curves: dict, config: dict, task: EvidenceTask) -> None:
    fig, ((ax,),) = plotting.figure(width=6.0, height=4.0)
    for method, runs in curves.items():
        evaluated = [[r for r in history if "accuracy" in r] for history in runs]
        steps = [r["step"] for r in evaluated[0]]
        plotting.mean_and_spread(
            ax,
            steps,
            [[r["accuracy"] for r in h] for h in evaluated],
            label=method,
            color=signals.color(method),
        )
    ax.axhline(1 / 3, color="gray", ls=":", lw=0.8, label="chance")
    ax.axhline(0.95, color="gray", ls="--", lw=0.8, label="95%")
    ax.set(
        xlabel="iteration",
        ylabel="test accuracy",
        ylim=(0, 1.02),
        title=f"Evidence integration, case {config['case']}: {config['n_cells']} "
        f"{neuron_name(config)} cells, {task.duration:g} ms",
    )
    ax.legend(fontsize=8, loc="lower right")
    run_dir.save_figure(fig, "accuracy.png")


def plot_pca(run_dir, network, weights, task, tokens, labels, method, config) -> None:
    """Fig. 7B: the hidden activity (mean T(V) of each cell per input slot) of
    `pca_trials` test trials, projected on its first two principal components and
    coloured by label. Every trial starts from the same resting state, so most of the
    variance is a time course common to all trials; it is removed first (the mean over
    trials at each slot), leaving the part that depends on the evidence."""
    n = config["pca_trials"]
    activity = eqx.filter_jit(network.slot_activity)(
        weights, task.inputs(tokens[:n]), task.hold_steps
    )
    activity = np.asarray(activity, np.float64)  # (n_slots, n, N)
    activity = activity - activity.mean(axis=1, keepdims=True)
    flat = activity.reshape(-1, activity.shape[-1])
    _, singular, basis = np.linalg.svd(flat, full_matrices=False)
    explained = singular**2 / max(float(np.sum(singular**2)), 1e-30)
    projected = activity @ basis[:2].T  # (n_slots, n, 2)
    fig, ((ax,),) = plotting.figure(width=5.0, height=4.5)
    colors = ("tab:red", "tab:green", "tab:blue")
    for trial in range(projected.shape[1]):
        label = int(labels[trial])
        ax.plot(*projected[:, trial].T, color=colors[label], lw=0.6, alpha=0.4)
        ax.scatter(*projected[-1, trial], color=colors[label], s=14, zorder=3)
    for label in range(3):  # bold: the mean trajectory of the trials with this label
        mine = projected[:, np.asarray(labels[:n]) == label]
        if mine.shape[1]:
            ax.plot(*mine.mean(axis=1).T, color=colors[label], lw=2.5)
        ax.plot([], [], color=colors[label], label=f"type {label + 1} most frequent")
    ax.set(
        xlabel=f"PC1 ({explained[0]:.0%})",
        ylabel=f"PC2 ({explained[1]:.0%})" if len(explained) > 1 else "PC2",
        title=f"Hidden activity, {method}-trained\n(dots: end of trial; bold: mean per label)",
    )
    ax.legend(fontsize=8)
    run_dir.save_figure(fig, "pca.png")
