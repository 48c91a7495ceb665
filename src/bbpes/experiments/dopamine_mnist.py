"""`dopamine-mnist`: dopaminergic neural nets on MNIST ("Biologically plausible neural
networks via evolutionary dynamics and dopaminergic plasticity", section 3.2): a fixed
Kaiming-uniform ReLU layer of `h` units and a softmax output layer trained one example
at a time by the dopamine rule (each reading of `bbpes.learners.dopamine.READINGS`,
both signs, two step units), by SGD (Adam) and by SignSGD (Eq. 5), with Table 2 of the
paper beside ours. `dnn_variants` and `baselines` restrict a long run to the methods
that matter; every method checkpoints once an epoch, so `--resume` continues a killed
run, and a log line before each method gives the run's ETA."""

from __future__ import annotations

import itertools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import plotting
from ..estimators.backprop import bptt
from ..framework import Experiment, Setting
from ..framework.checks import require, require_fits
from ..history import last
from ..learners import GradientLearner
from ..learners.dopamine import DIRECTIONS, RULES, STEPS, Dopamine
from ..models.random_features import RandomFeatures, compute_features
from ..progress import format_seconds, log
from ..runs import RunDir
from ..settings import UNSET
from ..tasks.mnist import MnistData, load_mnist
from ..tasks.mnist_settings import DATA, check_data, per_digit
from ..tasks.readout import FeatureReadout
from ..train import train

PAPER_TABLE2 = {  # test accuracy after 500 epochs, MNIST 0-9
    1000: {"sgd": 0.9034, "signsgd": 0.8684, "dnn": 0.8484},
    100_000: {"sgd": 0.9256, "signsgd": 0.9021, "dnn": 0.9076},
}
WIDE = 10_000  # from this width on, features are kept in float16 to halve their memory


BASELINES = ("sgd", "signsgd")
Variant = tuple[str, str, float, str]  # rule, direction, eps1, step unit


def variant_name(rule: str, direction: str, epsilon1: float, step_unit: str = "link") -> str:
    """The history label of one dopamine variant, e.g. `dnn_formula_decrease_eps1e-05`
    (`_logit` appended for the normalised step)."""
    suffix = "" if step_unit == "link" else f"_{step_unit}"
    return f"dnn_{rule}_{direction}_eps{epsilon1:g}{suffix}"


def parse_variant(text: str) -> Variant:
    """`RULE:DIRECTION:EPS1[:STEP]` (e.g. `winner:increase:1e-3`) as a variant; raises
    `ConfigError` on anything else."""
    parts = text.split(":")
    message = (
        f"bad dnn_variants item {text!r} (expected RULE:DIRECTION:EPS1[:STEP], rules "
        f"{', '.join(RULES)}; directions {', '.join(DIRECTIONS)}; steps {', '.join(STEPS)})"
    )
    require(len(parts) in (3, 4), message)
    rule, direction, eps, *step = parts
    step_unit = step[0] if step else "link"
    require(rule in RULES and direction in DIRECTIONS and step_unit in STEPS, message)
    try:
        epsilon1 = float(eps)
    except ValueError:
        epsilon1 = float("nan")
    require(0 < epsilon1 < float("inf"), f"{message}: EPS1 must be a positive number")
    return rule, direction, epsilon1, step_unit


def dnn_variants(config: dict[str, Any]) -> list[Variant]:
    """The variants to run: `dnn_variants` when given, else every combination of
    `dnn_rules`, `dnn_directions`, `dnn_epsilon1` and `dnn_steps`."""
    if config["dnn_variants"]:
        return [parse_variant(text) for text in config["dnn_variants"]]
    return list(
        itertools.product(
            config["dnn_rules"],
            config["dnn_directions"],
            config["dnn_epsilon1"],
            config["dnn_steps"],
        )
    )


def load_data(config: dict[str, Any]) -> MnistData:
    return load_mnist(
        config["data_dir"] or None,
        digits=tuple(range(10)),
        train_per_digit=config["train_per_digit"] or None,
        test_per_digit=config["test_per_digit"] or None,
        source=config["data_source"],
        scaling=config["scaling"],
        seed=config["seed"],
    )


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    data = load_data(config)
    key_features, key_readout = jax.random.split(jax.random.key(config["seed"]))
    layer = RandomFeatures(
        data.train_x.shape[1], config["hidden"], key=key_features, k=config["k_cap"]
    )
    dtype = np.float16 if config["hidden"] >= WIDE else np.float32
    features = (
        compute_features(layer, data.train_x, dtype=dtype),
        compute_features(layer, data.test_x, dtype=dtype),
    )
    bound = 1.0 / np.sqrt(config["hidden"])  # the usual default of a linear layer
    w0 = jax.random.uniform(key_readout, (config["hidden"], 10), jnp.float32, -bound, bound)
    n = len(data.train_x)

    def fit(learner, batch_size, label):
        """Train the readout from w0 for `epochs` epochs, test accuracy after each."""
        task = FeatureReadout(
            features[0], data.train_y, features[1], data.test_y, batch_size, config["seed"]
        )
        return train(
            learner,
            w0,
            jax.random.key(config["seed"]),
            steps=config["epochs"] * task.steps_per_epoch,
            batch=task.batch,
            evaluate=task.evaluate,
            eval_every=task.steps_per_epoch,
            run=run_dir,
            label=label,
            resume=config["resume"],
        ).history

    loss = FeatureReadout.loss
    optimizers = {
        "sgd": optax.adam(config["sgd_lr"]),
        "signsgd": optax.sign_sgd(config["signsgd_lr"]),
    }
    plan = [
        (name, GradientLearner(bptt(loss), optimizers[name]), config["batch_size"])
        for name in config["baselines"]
    ]
    variants = dnn_variants(config)
    for rule, direction, epsilon1, step_unit in variants:
        learner = Dopamine(rule, direction, config["dnn_epsilon0"], epsilon1, step_unit)
        plan.append(
            (variant_name(rule, direction, epsilon1, step_unit), learner, config["dnn_batch"])
        )
    histories, spent, t0 = {}, [], time.perf_counter()
    for k, (name, learner, batch_size) in enumerate(plan):
        log(progress_line(k, len(plan), name, config["epochs"], time.perf_counter() - t0, spent))
        histories[name] = fit(learner, batch_size, name)
        spent.append(histories[name][-1].get("seconds", 0.0) if histories[name] else 0.0)
    log(progress_line(len(plan), len(plan), "", config["epochs"], time.perf_counter() - t0, spent))

    metrics: dict[str, Any] = {
        "data": data.source,
        "train_images": n,
        "test_images": len(data.test_x),
        "hidden": config["hidden"],
        "k_cap": config["k_cap"],
        "epochs": config["epochs"],
    }
    for (name, _, _), seconds in zip(plan, spent):
        metrics[f"train_seconds_{name}"] = seconds  # training steps only, as in history
    for name in config["baselines"]:
        metrics[f"test_accuracy_{name}"] = last(histories[name])
    for name, history in histories.items():
        if name.startswith("dnn_"):
            metrics[f"test_accuracy_{name}"] = last(history)
            metrics[f"peak_test_accuracy_{name}"] = max(
                (r["accuracy"] for r in history if "accuracy" in r), default=float("nan")
            )
    dnn = [variant_name(*v) for v in variants]
    if dnn:
        best = max(dnn, key=lambda name: metrics[f"test_accuracy_{name}"])
        metrics["test_accuracy_dnn"] = metrics[f"test_accuracy_{best}"]
        metrics["dnn_best_variant"] = best
    paper = PAPER_TABLE2.get(config["hidden"])
    if paper is not None and not config["k_cap"]:
        metrics.update({f"paper_test_accuracy_{k}": v for k, v in paper.items()})
    write_table(run_dir, metrics, data, dnn)
    plot_epochs(run_dir, histories, data, config, n)
    return metrics


def progress_line(
    done: int, total: int, name: str, epochs: int, elapsed: float, spent: list[float]
) -> str:
    """`dopamine-mnist: sgd (1/5), 500 epochs; 0s elapsed, ETA ...`: which method
    trains now and the run's remaining time, estimated from the training seconds of
    the methods done (`spent`, the same count of epochs each)."""
    if done == total:
        return f"dopamine-mnist: {total} methods trained in {format_seconds(elapsed)}"
    eta = "?"
    if spent:
        eta = format_seconds(sum(spent) / len(spent) * (total - done))
    return (
        f"dopamine-mnist: {name} ({done + 1}/{total}), {epochs} epochs; "
        f"{format_seconds(elapsed)} elapsed, ETA {eta}"
    )


def write_table(run_dir: RunDir, metrics: dict[str, Any], data: MnistData, dnn: list[str]):
    h = metrics["hidden"]
    paper = PAPER_TABLE2.get(h) if not metrics["k_cap"] else None
    cap = f", k-cap {metrics['k_cap']}" if metrics["k_cap"] else ""
    lines = [
        f"# Table 2: test accuracy (%) on MNIST 0-9, h = {h}{cap}",
        "",
        f"Ours: {data.source}; {metrics['train_images']} training images, "
        f"{metrics['test_images']} test images, {metrics['epochs']} epochs. "
        "The paper: 500 epochs on MNIST.",
        "",
        "| model | paper | ours |",
        "| --- | --- | --- |",
    ]

    def cell(value):
        return "-" if value is None else f"{100 * value:.2f}"

    for key, name in (("sgd", "SGD (Adam)"), ("signsgd", "SignSGD")):
        if f"test_accuracy_{key}" not in metrics:
            continue
        lines.append(
            f"| {name} | {cell(paper and paper[key])} | {cell(metrics[f'test_accuracy_{key}'])} |"
        )
    for variant in dnn:
        final = metrics[f"test_accuracy_{variant}"]
        peak = metrics[f"peak_test_accuracy_{variant}"]
        lines.append(
            f"| DNN, {variant[4:]} | {cell(paper and paper['dnn'])} | "
            f"{cell(final)} (best epoch {cell(peak)}) |"
        )
    (run_dir.path / "table2.md").write_text("\n".join(lines) + "\n")


def plot_epochs(run_dir: RunDir, histories: dict, data: MnistData, config, n: int) -> None:
    fig, ((ax,),) = plotting.figure(width=6.5, height=4.2)
    styles = {"sgd": ("SGD (Adam)", "tab:blue", "-"), "signsgd": ("SignSGD", "tab:orange", "-")}
    cycle = itertools.cycle(["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:olive"])
    for name, history in histories.items():
        label, color, style = styles.get(name, (name[4:], next(cycle), "--"))
        batch = config["batch_size"] if name in styles else config["dnn_batch"]
        evals = [r for r in history if "accuracy" in r]
        epochs = [r["step"] * batch / n for r in evals]
        ax.plot(epochs, [r["accuracy"] for r in evals], style, color=color, label=label)
    ax.set(
        xlabel="epoch",
        ylabel="test accuracy",
        ylim=(0, 1),
        title=f"h = {config['hidden']}"
        + (f", k-cap {config['k_cap']}" if config["k_cap"] else "")
        + f"; {data.split_tag}",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    run_dir.save_figure(fig, "accuracy.png")


def check(config: dict[str, Any]) -> None:
    check_data(config)
    require(config["k_cap"] <= config["hidden"], f"k_cap must be <= hidden ({config['hidden']})")
    names = [variant_name(*v) for v in dnn_variants(config)]
    require(len(set(names)) == len(names), "dnn_variants lists a variant twice")
    require(len(set(config["baselines"])) == len(config["baselines"]), "baselines lists one twice")
    images = 10 * (config["train_per_digit"] or 6000) + 10 * (config["test_per_digit"] or 1000)
    width = 2 if config["hidden"] >= WIDE else 4
    require_fits(
        images * config["hidden"] * width + 16.0 * config["hidden"] * 10,
        f"the features of {images} images on {config['hidden']} hidden units",
    )


SETTINGS = (
    *DATA,
    *per_digit((0, UNSET), (0, 200), train_zero="every training image"),
    Setting(
        "hidden", 1000, "width h of the fixed random layer (the paper: 1000 and 100000)", low=1
    ),
    Setting(
        "k_cap",
        0,
        "only the k most driven hidden units fire (at most hidden; the paper: 256)",
        low=1,
        zero="no cap",
    ),
    Setting("epochs", 20, "passes over the training set (the paper: 500)", low=1, quick=2),
    Setting("batch_size", 50, "minibatch of SGD and SignSGD", low=1),
    Setting("sgd_lr", 1e-3, "Adam learning rate of the SGD baseline", positive=True),
    Setting("signsgd_lr", 1e-3, "SignSGD step epsilon' (Eq. 5)", positive=True),
    Setting(
        "baselines",
        list(BASELINES),
        "gradient baselines to train beside the rule (sgd, signsgd; empty: none)",
        choices=BASELINES,
    ),
    Setting(
        "dnn_rules",
        ["formula", "prose"],
        "readings of the dopamine rule (bbpes.learners.dopamine.READINGS): " + ", ".join(RULES),
        choices=RULES,
    ),
    Setting(
        "dnn_directions",
        list(DIRECTIONS),
        "increase (as printed) or decrease (the opposite sign)",
        choices=DIRECTIONS,
    ),
    Setting("dnn_epsilon0", 0.75, "loss threshold eps0 of the rule (the paper: 0.75)", low=0),
    Setting(
        "dnn_epsilon1",
        [1.0, 1e-4],
        "step sizes eps1 of the rule to run (the paper: 1)",
        positive=True,
    ),
    Setting(
        "dnn_steps",
        ["link"],
        "step unit: link (eps1 per fired link) or logit (eps1 / summed activity)",
        choices=STEPS,
    ),
    Setting(
        "dnn_variants",
        [],
        "RULE:DIRECTION:EPS1[:STEP] items to run instead of every combination of "
        "dnn_rules, dnn_directions, dnn_epsilon1 and dnn_steps",
    ),
    Setting(
        "dnn_batch",
        100,
        "examples per training-loop step (the rule still sees one at a time)",
        low=1,
    ),
)

EXPERIMENT = Experiment(
    name="dopamine-mnist",
    summary="dopaminergic plasticity vs SGD and SignSGD on fixed random ReLU features (Table 2)",
    run=run,
    settings=SETTINGS,
    check=check,
)
