"""`evidence`: a recurrent Morris-Lecar network learns discrete evidence integration
(BBPES paper, section 3.2, Figs. 7-8): accuracy against iteration for ES and the
backpropagation methods (mean and spread over seeds, Fig. 8), a PCA of the hidden
activity of a trained network coloured by label (Fig. 7B), spike rates inside the
network, and the memory each method would need.

Cases: A, non-explosive cells, 300 ms (50 inputs of 6 ms); B, explosive cells, 300 ms;
C, non-explosive, 1 s (50 inputs of 20 ms). A method whose learning signal would need
more memory than is available (predicted from XLA's compiled buffer assignment) is
reported with its predicted need and not run.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import psutil

from .. import plotting
from ..estimators import checkpointed_scan, estimator_by_name
from ..learners import GradientLearner
from ..models.bnn import RecurrentNetwork, Weights, init_weights
from ..neurons import registry
from ..neurons.base import AbstractCell
from ..parallel import population_mesh_for
from ..runs import RunDir
from ..tasks.evidence import EvidenceTask, window_majority_accuracy
from ..train import train
from .base import Experiment, methods_of, require, require_mirrored_samples

SIGNALS = ("es", "bptt", "bptt_checkpointed", "pnde", "fnde")

CASES = {
    "A": {"neuron": "morris_lecar", "hold": 6.0},
    "B": {"neuron": "morris_lecar_explosive", "hold": 6.0},
    "C": {"neuron": "morris_lecar", "hold": 20.0},
}
"""The paper's three cases: the cell model and how long each of the 50 inputs is held (ms)."""

DEFAULT_DRIVE = 100.0
"""The current unit of cells with no entry in `neurons.registry.DRIVE`: Morris-Lecar's
tonic-firing current, µA/cm²."""


def neuron_name(config: dict[str, Any]) -> str:
    return CASES[config["case"]]["neuron"] if config["neuron"] == "case" else config["neuron"]


def hold_ms(config: dict[str, Any]) -> float:
    return CASES[config["case"]]["hold"] if config["hold"] <= 0 else config["hold"]


def cell_drive(name: str) -> float:
    """The cell's tonic-firing current (its own current unit), the unit of the weights."""
    return float(registry.DRIVE.get(name, DEFAULT_DRIVE))


def build(config: dict[str, Any]) -> tuple[EvidenceTask, RecurrentNetwork]:
    """The task and the network that `config` describes (dtype: float32 unless x64)."""
    dtype = jnp.result_type(float)
    task = EvidenceTask.from_seed(
        config["seed"],
        input_dim=config["input_dim"],
        dtype=dtype,
        n_inputs=config["n_inputs"],
        hold=hold_ms(config),
        window=config["window"],
        dt=config["dt"],
        p_null=config["p_null"],
        p_favoured=config["p_favoured"],
    )
    name = neuron_name(config)
    cell: AbstractCell = registry.cell_by_name(name)
    drive = cell_drive(name)
    network = RecurrentNetwork(
        cell, i_app=config["i_app"] * drive, current_scale=drive, dt=config["dt"]
    )
    return task, network


def initial_weights(config: dict[str, Any], task: EvidenceTask, run: int) -> Weights:
    """The starting weights of training run `run` (the same for every method)."""
    key = jax.random.fold_in(jax.random.key(config["seed"]), run)
    return init_weights(
        key,
        config["n_cells"],
        task.codes.shape[1],
        3,
        in_scale=config["in_scale"],
        rec_scale=config["rec_scale"],
        out_scale=config["out_scale"],
        out_bias=config["out_bias"],
        dtype=task.codes.dtype,
    )


def make_estimator(
    method: str, task: EvidenceTask, network: RecurrentNetwork, config: dict, mesh=None
):
    """`f(weights, key, tokens, labels) -> (loss, grads)` for `method` (ES's population
    sharded over `mesh`, if one is given)."""
    return estimator_by_name(
        method,
        loss=partial(task.loss, network),
        checkpointed_loss=partial(task.loss, network, scan=checkpointed_scan),
        ode_loss=task.ode_loss(
            network,
            rtol=config["ode_rtol"],
            atol=config["ode_atol"],
            max_steps=config["ode_max_steps"] or None,
        ),
        sigma=config["sigma"],
        samples=config["samples"],
        chunk_size=config["es_chunk"] or None,
        mesh=mesh if method == "es" else None,
    )


def compiled_peak_bytes(fn, *args) -> int:
    """Peak memory of `fn(*args)` from XLA's buffer assignment of the compiled program
    (arguments + outputs + temporaries - aliased): deterministic, and obtained by
    compiling only, so it also predicts sizes that would not fit."""
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    return int(
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        + analysis.temp_size_in_bytes
        - analysis.alias_size_in_bytes
    )


def memory_limit(config: dict[str, Any]) -> float:
    """Bytes a method may use: `memory_limit_gb`, or 80% of the memory available now."""
    if config["memory_limit_gb"] > 0:
        return config["memory_limit_gb"] * 1e9
    return 0.8 * psutil.virtual_memory().available


def first_at_least(history: list[dict], threshold: float) -> int | None:
    for record in history:
        if record.get("accuracy") is not None and record["accuracy"] >= threshold:
            return int(record["step"])
    return None


def seconds_per_iteration(history: list[dict]) -> float | None:
    """Mean time of a step after the first (which includes compilation)."""
    timed = [r for r in history if "seconds" in r]
    if len(timed) < 2:
        return None
    return (timed[-1]["seconds"] - timed[0]["seconds"]) / (timed[-1]["step"] - timed[0]["step"])


def spike_rates(network, weights, task, tokens) -> tuple[float, float]:
    """(mean rate in Hz over cells and trials, fraction of cells that spike at all)."""
    rates = eqx.filter_jit(network.firing_rates)(weights, task.inputs(tokens), task.hold_steps)
    return float(jnp.mean(rates)), float(jnp.mean(jnp.mean(rates, axis=0) > 0))


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    task, network = build(config)
    test = task.trials(config["test_trials"], [config["seed"], 1])
    metrics: dict[str, Any] = {
        "neuron": neuron_name(config),
        "trial_ms": task.duration,
        "i_app": network.i_app,
        # what a short memory gets: the majority of the last fifth, or half, of the stream
        "majority_of_last_fifth_accuracy": window_majority_accuracy(
            *test, max(1, task.n_inputs // 5)
        ),
        "majority_of_last_half_accuracy": window_majority_accuracy(
            *test, max(1, task.n_inputs // 2)
        ),
    }
    rate_tokens = test[0][: config["rate_trials"]]
    rate, active = spike_rates(network, initial_weights(config, task, 0), task, rate_tokens)
    metrics["spike_rate_hz_init"], metrics["active_fraction_init"] = rate, active
    limit = memory_limit(config)
    curves: dict[str, list[list[dict]]] = {}
    trained: dict[str, Weights] = {}
    for method in methods_of(config, "method"):
        mesh = population_mesh_for(config["samples"]) if method == "es" else None
        estimator = make_estimator(method, task, network, config, mesh)
        example = task.trials(config["batch"], [config["seed"], 2, 0, 0])
        need = compiled_peak_bytes(
            estimator, initial_weights(config, task, 0), jax.random.key(0), *example
        )
        if mesh is not None and jax.default_backend() == "cpu":
            need *= mesh.size  # XLA reports one device; a split CPU's devices share its memory
        metrics[f"predicted_bytes_{method}"] = need
        if need > limit:
            metrics[f"skipped_{method}"] = (
                f"needs {need / 1e9:.1f} GB for one learning signal, more than the "
                f"{limit / 1e9:.1f} GB available"
            )
            continue
        curves[method], trained[method], stopped = train_method(
            method, estimator, task, network, test, config, run_dir
        )
        metrics.update(stopped)
        metrics.update(summarise(method, curves[method]))
        rate, active = spike_rates(network, trained[method], task, rate_tokens)
        metrics[f"spike_rate_hz_{method}"], metrics[f"active_fraction_{method}"] = rate, active
    metrics["neuron_steps_per_second"] = (
        es_rate(metrics, task, config)
        if metrics.get("seconds_per_iteration_es")
        else measured_rate(task, network, config)
    )
    if curves:
        plot_accuracy(run_dir, curves, config, task)
        method = "es" if "es" in trained else next(iter(trained))
        plot_pca(run_dir, network, trained[method], task, *test, method, config)
    return metrics


def optimizer(config: dict[str, Any], method: str) -> optax.GradientTransformation:
    """Adam at `lr_es` (ES) or `lr` (the rest), with an optional cosine decay to a tenth
    over the run and an optional clip of the gradient's global norm before it (BPTT's
    gradient through spikes has rare huge outliers that unsettle Adam's moments)."""
    lr = config["lr_es" if method == "es" else "lr"]
    if config["lr_schedule"] == "cosine":
        lr = optax.cosine_decay_schedule(lr, config["steps"], alpha=0.1)
    adam = optax.adam(lr)
    return optax.chain(optax.clip_by_global_norm(config["clip"]), adam) if config["clip"] else adam


def train_method(method, estimator, task, network, test, config, run_dir):
    """Train `seeds` runs of one method from the same initial weights as every other
    method. Returns (one history per run, the first run's weights, stop notes)."""
    learner = GradientLearner(estimator, optimizer(config, method))
    accuracy = eqx.filter_jit(task.accuracy)
    runs, stopped, first = [], {}, None
    for k in range(config["seeds"]):
        result = train(
            learner,
            initial_weights(config, task, k),
            jax.random.key(config["seed"] * 1000 + k),
            steps=config["steps"],
            batch=lambda i, k=k: task.trials(config["batch"], [config["seed"], 2, k, i]),
            evaluate=lambda w: {"accuracy": accuracy(network, w, *test)},
            eval_every=config["eval_every"],
            run=run_dir,
            label=f"{method}-seed{k}",
            tags={"method": method, "run": k},
            resume=config["resume"],
        )
        runs.append(result.history)
        first = result.params if first is None else first
        if result.stopped:
            stopped[f"stopped_{method}_seed{k}"] = result.stopped
    return runs, first, stopped


def es_rate(metrics: dict[str, Any], task: EvidenceTask, config: dict[str, Any]) -> float:
    """Neuron-steps per second of a whole ES iteration: (samples + 1) networks of
    `n_cells` on `batch` trials for every step of the trial."""
    n_steps = task.n_inputs * task.hold_steps
    work = (config["samples"] + 1) * config["batch"] * config["n_cells"] * n_steps
    return work / metrics["seconds_per_iteration_es"]


def summarise(method: str, runs: list[list[dict]]) -> dict[str, Any]:
    """The issue's metrics for one method, as means over the seeds."""
    finals = [r[-1]["accuracy"] for r in runs]
    reached = [first_at_least(r, 0.9) for r in runs]
    hit = [s for s in reached if s is not None]
    seconds = [s for s in map(seconds_per_iteration, runs) if s is not None]
    return {
        f"test_accuracy_{method}": float(np.mean(finals)),
        f"test_accuracy_{method}_std": float(np.std(finals)),
        f"iterations_to_90_{method}": float(np.mean(hit)) if hit else None,
        f"runs_reaching_90_{method}": len(hit),
        f"nonfinite_steps_{method}": sum(bool(r.get("nonfinite")) for h in runs for r in h),
        f"seconds_per_iteration_{method}": float(np.mean(seconds)) if seconds else None,
    }


def measured_rate(task: EvidenceTask, network: RecurrentNetwork, config: dict) -> float:
    """Neuron-steps per second of the ES forward pass (population x batch in one vmapped
    computation), timed once on a short trial when ES did not train."""
    samples = min(config["samples"], 16)
    w = initial_weights(config, task, 0)
    population = jax.tree.map(lambda x: jnp.broadcast_to(x, (samples, *x.shape)), w)
    tokens, labels = task.trials(config["batch"], [config["seed"], 3])
    short = min(task.n_inputs, 5)
    evaluate = jax.jit(jax.vmap(lambda p: task.loss(network, p, tokens[:, :short], labels)))
    evaluate(population).block_until_ready()
    t0 = time.perf_counter()
    evaluate(population).block_until_ready()
    seconds = time.perf_counter() - t0
    return samples * config["batch"] * config["n_cells"] * short * task.hold_steps / seconds


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
            color=plotting.color(method),
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


def check(config: dict[str, Any]) -> None:
    require(config["n_cells"] >= 1 and config["batch"] >= 1, "n_cells and batch must be >= 1")
    require_mirrored_samples(config)
    require(config["sigma"] > 0, "sigma must be positive")
    require(config["steps"] >= 1 and config["seeds"] >= 1, "steps and seeds must be >= 1")
    require(config["eval_every"] >= 1, "eval_every must be >= 1")
    require(config["dt"] > 0 and config["window"] > 0, "dt and window must be positive")
    require(config["n_inputs"] >= 1 and config["input_dim"] >= 1, "need inputs")
    hold = hold_ms(config)
    for name, value in (("hold", hold), ("window", config["window"])):
        steps = value / config["dt"]
        require(
            abs(steps - round(steps)) < 1e-6 and round(steps) >= 1,
            f"{name}={value} ms must be a whole number of steps of dt={config['dt']} ms",
        )
    require(
        config["window"] <= config["n_inputs"] * hold, "window must not exceed the trial length"
    )
    require(
        min(config["p_null"], config["p_favoured"]) >= 0
        and config["p_null"] + config["p_favoured"] <= 1,
        "p_null and p_favoured must be probabilities with p_null + p_favoured <= 1",
    )
    require(
        1 <= config["pca_trials"] <= config["test_trials"], "need 1 <= pca_trials <= test_trials"
    )
    require(config["clip"] >= 0, "clip must be >= 0 (0: off)")
    require(config["neuron"] == "case" or config["neuron"] in registry.CELLS, "unknown neuron")


EXPERIMENT = Experiment(
    name="evidence",
    summary="recurrent Morris-Lecar network on evidence integration: ES vs BPTT and adjoints, cases A-C (Figs. 7-8)",
    run=run,
    defaults={
        "case": "A",
        "method": list(SIGNALS),
        "neuron": "case",
        "hold": 0.0,
        "n_cells": 128,
        "batch": 64,
        "samples": 100,
        "sigma": 0.02,
        "lr": 5e-4,
        "lr_es": 0.002,
        "lr_schedule": "cosine",
        "clip": 20.0,
        "steps": 300,
        "seeds": 5,
        "eval_every": 10,
        "test_trials": 1000,
        "n_inputs": 50,
        "input_dim": 32,
        "window": 10.0,
        "dt": 0.1,
        "p_null": 0.25,
        "p_favoured": 0.5,
        "i_app": 1.0,
        "in_scale": 1.0,
        "rec_scale": 0.0,
        "out_scale": 0.1,
        "out_bias": 1 / 3,
        "es_chunk": 20,
        "ode_rtol": 1e-4,
        "ode_atol": 1e-4,
        "ode_max_steps": 0,
        "memory_limit_gb": 0.0,
        "rate_trials": 64,
        "pca_trials": 90,
        "x64": False,
    },
    quick={
        "method": ["es", "bptt"],
        "n_cells": 32,
        "batch": 32,
        "samples": 20,
        "lr": 0.002,
        "steps": 150,
        "seeds": 1,
        "test_trials": 256,
        "n_inputs": 10,
    },
    choices={"case": tuple(CASES), "method": SIGNALS, "lr_schedule": ("constant", "cosine")},
    check=check,
    help={
        "case": "A: non-explosive 300 ms; B: explosive 300 ms; C: non-explosive 1 s",
        "method": "learning signals to compare (all that fit in memory by default)",
        "neuron": "cell model (a name in bbpes.neurons.CELLS), or 'case' for the case's",
        "hold": "ms each input is held (0: the case's, 6 or 20 ms)",
        "samples": "ES population per iteration (mirrored pairs)",
        "sigma": "ES perturbation std, in weight units",
        "lr": "Adam learning rate of the backprop methods",
        "lr_es": "Adam learning rate of ES",
        "lr_schedule": "constant, or cosine (decay to a tenth over the run)",
        "clip": "clip each gradient's global norm to this before Adam (0: off)",
        "i_app": "fixed bias current, in units of the cell's tonic-firing current",
        "in_scale": "std of W_in x at init (units of the cell's tonic-firing current)",
        "rec_scale": "std of W_rec T at init for all cells firing (same units)",
        "es_chunk": "ES samples evaluated at once (0: all)",
        "memory_limit_gb": "skip methods predicted to need more (0: 80% of free memory)",
        "ode_max_steps": "pnde/fnde solver step budget (0: the stepper's step count; pnde's "
        "memory grows with it; Hodgkin-Huxley needs about 10x)",
        "p_null": "probability of a null input",
        "p_favoured": "probability of the trial's favoured type (the rest split evenly)",
    },
)
