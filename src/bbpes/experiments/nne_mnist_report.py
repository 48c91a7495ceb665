"""The outputs of `nne-mnist`: Table 1 beside the paper's, accuracy over generations
and wall time, the allele distribution (Fig. 2) and accuracy against genes (Fig. 3);
and of `nne-vs-es`: accuracy against wall seconds, one line per method, and its table."""

from __future__ import annotations

from typing import Any

from .. import plotting
from ..history import first_at_least, last
from ..runs import RunDir
from ..tasks.mnist import MnistData
from ..tasks.mnist_nne_setup import ALLELE_GRID

PAPER_TABLE1 = {  # test accuracy on MNIST digits 0-4 (5 classes) and 0-9 (10 classes)
    5: {"nne": 0.921, "nne_signsgd": 0.916, "sgd": 0.96},
    10: {"nne": 0.788, "nne_signsgd": 0.856, "sgd": 0.882},
}
ROWS = {"nne": "NNE", "nne_signsgd": "NNE + SignSGD", "sgd": "SGD (Adam)"}


def finish(run_dir: RunDir, fig, ax, name: str, legend_size: float = 8, **labels: str) -> None:
    """Set `ax`'s `labels` (`xlabel`, `ylabel`, `title`), its title in 8 pt and its
    legend in `legend_size` pt, and save `fig` in the run directory as `name`."""
    ax.set(**labels)
    ax.title.set_fontsize(8)
    ax.legend(fontsize=legend_size)
    run_dir.save_figure(fig, name)


def write_table(run_dir: RunDir, metrics: dict[str, Any], data: MnistData) -> None:
    digits = f"0-{data.classes - 1}"
    lines = [
        f"# Table 1: test accuracy (%) on MNIST {digits}",
        "",
        f"Ours: {data.source}; {metrics['train_images']} training images, "
        f"{metrics['test_images']} test images; {metrics['generations']} generations "
        f"({metrics['generations_per_second']:.3g} generations/s, "
        f"{metrics['nne_train_seconds']:.0f} s of evolution). The paper: hundreds of "
        "thousands of generations, the full MNIST test set.",
        "",
        f"| model | paper, MNIST {digits} | ours |",
        "| --- | --- | --- |",
    ]
    for key, name in ROWS.items():
        ours = metrics[f"test_accuracy_{key}"]
        paper = PAPER_TABLE1[data.classes][key]
        lines.append(f"| {name} | {100 * paper:.1f} | {100 * ours:.1f} |")
    (run_dir.path / "table1.md").write_text("\n".join(lines) + "\n")


def plot_accuracy(run_dir, history, signsgd_history, sgd_history, data: MnistData) -> None:
    fig, ((ax_gen, ax_time),) = plotting.figure(ncols=2)
    evals = [r for r in history if "accuracy" in r]
    # Wall time of the generations themselves: from the end of the first (compiling) one.
    t0 = next((r["seconds"] for r in history if r["step"] == 1 and "seconds" in r), 0.0)
    for key, name, style in (
        ("accuracy", "most probable genotype", "-"),
        ("accuracy_mean_weights", "mean weights W p", "--"),
        ("accuracy_sampled", "sampled genotypes (mean)", ":"),
    ):
        points = [(r["step"], r.get("seconds", 0.0), r[key]) for r in evals if key in r]
        if points:
            steps, seconds, values = zip(*points)
            seconds = [max(t - t0, 0.0) for t in seconds]
            ax_gen.plot(steps, values, style, label=name, color="tab:green")
            ax_time.plot(seconds, values, style, label=name, color="tab:green")
    for hist, name, color in (
        (signsgd_history, "NNE + SignSGD", "tab:orange"),
        (sgd_history, "SGD (Adam)", "tab:blue"),
    ):
        final = last(hist)
        ax_gen.axhline(final, color=color, ls="-.", lw=0.8, label=f"{name} (final)")
    chance = 1.0 / data.classes
    for ax in (ax_gen, ax_time):
        ax.axhline(chance, color="gray", lw=0.6, ls=":")
        ax.set_ylabel("test accuracy")
    ax_gen.set(xlabel="generation", title=f"NNE, digits 0-{data.classes - 1}")
    ax_time.set(xlabel="wall time of generations 2.. (s)", title=data.split_tag)
    ax_gen.legend(fontsize=7)
    run_dir.save_figure(fig, "accuracy.png")


def plot_alleles(run_dir: RunDir, history: list[dict], data: MnistData) -> None:
    """Fig. 2: the fraction of alleles at distance at least x from 0 and 1."""
    evals = [r for r in history if f"alleles_within_{ALLELE_GRID[0]:g}" in r]
    if not evals:
        return
    picks = sorted({0, len(evals) // 4, len(evals) // 2, len(evals) - 1})
    fig, ((ax,),) = plotting.figure()
    for i in picks:
        record = evals[i]
        y = [1.0 - record[f"alleles_within_{x:g}"] for x in ALLELE_GRID]
        ax.plot(ALLELE_GRID, y, marker="o", ms=3, label=f"t = {record['step']}")
    finish(
        run_dir,
        fig,
        ax,
        "alleles.png",
        xlabel="x (distance from 0 or 1)",
        ylabel="fraction of alleles in [x, 1 - x]",
        title=f"Allele distribution (Fig. 2); {data.split_tag}",
    )


def plot_genes(run_dir: RunDir, sweep: dict[int, list[dict]], data: MnistData, config) -> None:
    """Fig. 3: accuracy against the number of genes after `sweep_generations`."""
    genes = sorted(sweep)
    fig, ((ax_n, ax_t),) = plotting.figure(ncols=2)
    ax_n.plot(genes, [last(sweep[g]) for g in genes], marker="o", color="tab:green")
    ax_n.set_xscale("log")
    ax_n.set_xticks(genes, [str(g) for g in genes], minor=False)
    ax_n.set_xticks([], minor=True)
    ax_n.set(
        xlabel="number of genes n",
        ylabel="test accuracy",
        title=f"Fig. 3, digits 0-{data.classes - 1}, {config['sweep_generations']} generations",
    )
    for g in genes:
        evals = [r for r in sweep[g] if "accuracy" in r]
        ax_t.plot([r["step"] for r in evals], [r["accuracy"] for r in evals], label=f"n = {g}")
    finish(
        run_dir,
        fig,
        ax_t,
        "genes.png",
        xlabel="generation",
        ylabel="test accuracy",
        title=data.split_tag,
    )


def plot_es(run_dir: RunDir, history: list[dict], method: str, data: MnistData) -> None:
    """`nne-mnist` with an ES `method`: test accuracy over steps and step seconds."""
    fig, ((ax_step, ax_time),) = plotting.figure(ncols=2)
    evals = [r for r in history if "accuracy" in r]
    steps = [r["step"] for r in evals]
    seconds = [r.get("seconds", 0.0) for r in evals]
    accuracy = [r["accuracy"] for r in evals]
    ax_step.plot(steps, accuracy, color="tab:purple", label=f"{method}, dense MLP")
    ax_time.plot(seconds, accuracy, color="tab:purple")
    for ax in (ax_step, ax_time):
        ax.axhline(1.0 / data.classes, color="gray", lw=0.6, ls=":")
        ax.set_ylabel("test accuracy")
    ax_step.set(xlabel="step", title=f"{method}, digits 0-{data.classes - 1}")
    ax_time.set(xlabel="wall time of the steps (s, compilation included)", title=data.split_tag)
    ax_step.legend(fontsize=7)
    run_dir.save_figure(fig, "accuracy.png")


METHOD_STYLES = {
    "nne": ("NNE (the paper's rule)", "tab:green", "-"),
    "nne_improved": ("NNE improved", "tab:olive", "-"),
    "es": ("ES (bbpes)", "tab:purple", "--"),
    "evosax:Open_ES": ("OpenES (evosax)", "tab:blue", "--"),
}


def comparison_rows(rows: list[dict], histories: dict, target: float) -> list[dict]:
    """Each row (`method`, `network`, `steps`, `step_seconds`, ...) with its
    `accuracy` at the budget (the last evaluation), the measured `seconds` of its
    steps, and the first evaluated `step_to_target` and `seconds_to_target` at which
    the test accuracy reached `target` (None: not reached)."""
    out = []
    for row in rows:
        history = histories[row["method"]]
        hit = first_at_least(history, target)
        at = {r["step"]: r.get("seconds", 0.0) for r in history}
        out.append(
            {
                **row,
                "accuracy": last(history),
                "seconds": max((r.get("seconds", 0.0) for r in history), default=0.0),
                "step_to_target": hit,
                "seconds_to_target": None if hit is None else at[hit],
            }
        )
    return out


def write_comparison(run_dir, rows, histories, target, config, data: MnistData) -> list[dict]:
    """`comparison.md`: per method the network, steps, seconds per step, accuracy at
    the budget and the seconds to `target` (the paper's NNE); returns the rows."""
    rows = comparison_rows(rows, histories, target)
    digits = f"0-{data.classes - 1}"
    lines = [
        f"# NNE beside ES on MNIST {digits}: {config['seconds']:g} s per method",
        "",
        f"{data.source}; {len(data.train_x)} training images, {len(data.test_x)} test "
        f"images; {config['batch_images'] or len(data.train_x)} training images and "
        f"{config['population']} networks per step for every method. Seconds: the "
        "steps' measured wall time (compilation and test evaluations excluded); steps: "
        f"the budget / the calibrated seconds per step. Target: {100 * target:.1f}%, "
        "the paper's NNE (Table 1).",
        "",
        f"| method | network | steps | s / step | s trained | accuracy at budget (%) "
        f"| s to {100 * target:.1f}% | step to {100 * target:.1f}% |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        reached = r["step_to_target"] is not None
        to_seconds = f"{r['seconds_to_target']:.1f}" if reached else "-"
        lines.append(
            f"| `{r['method']}` | {r['network']} | {r['steps']} | {r['step_seconds']:.3g} "
            f"| {r['seconds']:.0f} | {100 * r['accuracy']:.1f} | {to_seconds} "
            f"| {r['step_to_target'] if reached else '-'} |"
        )
    (run_dir.path / "comparison.md").write_text("\n".join(lines) + "\n")
    return rows


def plot_accuracy_vs_seconds(run_dir, histories: dict, target: float, budget, data) -> None:
    """`accuracy_vs_seconds.png`: test accuracy against the steps' wall seconds, one
    line per method, the paper's NNE and the budget marked."""
    fig, ((ax,),) = plotting.figure()
    for method, history in histories.items():
        name, color, style = METHOD_STYLES.get(method, (method, None, "-"))
        evals = [r for r in history if "accuracy" in r]
        seconds = [r.get("seconds", 0.0) for r in evals]
        ax.plot(seconds, [r["accuracy"] for r in evals], style, color=color, label=name)
    ax.axhline(target, color="black", lw=0.8, ls="-.", label=f"paper's NNE ({100 * target:.1f}%)")
    ax.axhline(1.0 / data.classes, color="gray", lw=0.6, ls=":")
    ax.axvline(budget, color="gray", lw=0.6, ls="--")
    finish(
        run_dir,
        fig,
        ax,
        "accuracy_vs_seconds.png",
        legend_size=7,
        xlabel="wall seconds of training steps",
        ylabel="test accuracy",
        title=f"NNE vs ES, MNIST 0-{data.classes - 1}; {data.split_tag}",
    )
