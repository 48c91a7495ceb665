"""`evidence`: a recurrent Morris-Lecar network learns discrete evidence integration
(BBPES paper, section 3.2, Figs. 7-8): accuracy against iteration for every chosen
learning signal (mean and spread over seeds, Fig. 8), a PCA of the hidden activity of a
trained network coloured by label (Fig. 7B), spike rates inside the network, and the
memory each method would need.

Cases: A, non-explosive cells, 300 ms (50 inputs of 6 ms); B, explosive cells, 300 ms;
C, non-explosive, 1 s (50 inputs of 20 ms). A method whose learning signal would need
more memory than is available (predicted from XLA's compiled buffer assignment) is
reported with its predicted need and not run. Each method's step is compiled once: that
executable gives the prediction and trains every seed. The task, the network and the loss forms
are built by `bbpes.tasks.evidence_setup`; the learner of each method comes from
`bbpes.signals.make_learner`, so every signal whose loss form the task offers is a
`method` here.
"""

from __future__ import annotations

import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..framework import Experiment, Setting
from ..framework.checks import (
    check_signals,
    methods_of,
    require,
    require_fits,
    require_steps,
    signal_choices,
    signal_settings,
)
from ..history import first_at_least, nonfinite_steps, seconds_per_iteration
from ..memory import memory_limit_bytes
from ..models.bnn import RecurrentNetwork, Weights
from ..parallel import population_mesh_for
from ..runs import RunDir
from ..tasks import evidence_setup
from ..tasks.evidence import EvidenceTask, window_majority_accuracy
from ..tasks.evidence_setup import (
    FORMS,
    build,
    example_batch,
    hold_ms,
    initial_weights,
    make_learner,
    member_bytes,
    neuron_name,
    spike_rates,
)
from ..train import compile_step, train
from .evidence_plots import plot_accuracy, plot_pca

SIGNALS = signal_choices()
"""Every method name `method` accepts (those whose form the task lacks are refused)."""

PAPER_METHODS = ["es", "bptt", "bptt_checkpointed", "pnde", "fnde"]
"""The methods run by default: the paper's ES and the backpropagation methods."""


def memory_limit(config: dict[str, Any]) -> float:
    """Bytes a method may use: `memory_limit_gb`, or 80% of the memory available now."""
    return memory_limit_bytes(config["memory_limit_gb"])


def shards(method: str) -> bool:
    """Whether `method`'s population is split over the devices (ES)."""
    return method == "es"


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
        mesh = population_mesh_for(config["samples"]) if shards(method) else None
        learner = make_learner(method, task, network, config, mesh)
        # one compilation per method: its peak memory, and every seed's training
        step = compile_step(
            learner,
            initial_weights(config, task, 0),
            jax.random.key(0),
            *example_batch(config, task),
        )
        need = step.peak_bytes or 0
        metrics[f"compile_seconds_{method}"] = step.compile_seconds
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
            method, learner, task, network, test, config, run_dir, step
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


def train_method(method, learner, task, network, test, config, run_dir, step=None):
    """Train `seeds` runs of one method from the same initial weights as every other
    method, with the compiled `step` of `learner` if given (`bbpes.train.compile_step`:
    one compilation for every seed). Returns (one history per run, the first run's
    weights, stop notes)."""
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
            step=step,
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
        f"nonfinite_steps_{method}": sum(map(nonfinite_steps, runs)),
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


def check(config: dict[str, Any]) -> None:
    check_signals(config, "method", FORMS, "evidence", sample_bytes=member_bytes(config))
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
    require_steps(config["n_inputs"] * hold, config["dt"], "the trial (n_inputs x hold)")
    require(
        config["p_null"] + config["p_favoured"] <= 1 and config["p_null"] < 1,
        "p_null and p_favoured must add up to at most 1, p_null < 1",
    )
    require(
        1 <= config["pca_trials"] <= config["test_trials"], "need 1 <= pca_trials <= test_trials"
    )
    require_fits(evidence_bytes(config), "the evidence network and its test set")


def evidence_bytes(config: dict[str, Any]) -> float:
    """A lower bound on the bytes a run holds besides the ES population (float32): one
    network on a batch, and the test and rate trials' tokens."""
    trials = (config["test_trials"] + config["batch"]) * config["n_inputs"]
    return member_bytes(config) + 4.0 * trials


SETTINGS = (
    evidence_setup.SETTINGS[0],  # case
    Setting(
        "method",
        PAPER_METHODS,
        "learning signals to compare (any of `bbpes.signals`; "
        "those predicted not to fit in memory are skipped)",
        choices=SIGNALS,
        quick=["es", "bptt"],
    ),
    *evidence_setup.SETTINGS[1:],
    Setting(
        "lr_schedule",
        "cosine",
        "constant, or cosine (decay to a tenth over the run)",
        choices=("constant", "cosine"),
    ),
    Setting("steps", 300, "training iterations", low=1, quick=150),
    Setting("seeds", 5, "seeds per method", low=1, quick=1),
    Setting("eval_every", 10, "iterations between test evaluations", low=1),
    Setting(
        "memory_limit_gb",
        0.0,
        "skip methods predicted to need more",
        "GB",
        low=0,
        zero="80% of free memory",
    ),
    Setting(
        "rate_trials",
        64,
        "test trials on which the spike rates inside the network are measured",
        low=1,
    ),
    Setting(
        "pca_trials", 90, "test trials shown in the PCA of the hidden activity (Fig. 7B)", low=1
    ),
    Setting("x64", False, "simulate in float64"),
    *signal_settings(evidence_setup.KNOBS, {"samples": 20}),
)
"""The task's settings (`bbpes.tasks.evidence_setup.SETTINGS`), the methods, the
training run and what is measured."""

EXPERIMENT = Experiment(
    name="evidence",
    summary="recurrent Morris-Lecar network on evidence integration: ES vs BPTT and adjoints, cases A-C (Figs. 7-8)",
    run=run,
    settings=SETTINGS,
    check=check,
)
