"""`memory`: how much memory one learning-signal evaluation of the evidence network
needs as the trial grows (BBPES paper, section 3.2.2, case C: "over 25 GB" for BPTT).

For each method (by default every signal of `bbpes.signals` whose loss form the
evidence task offers) and trial length (the 50 inputs held longer), the reported
`peak_bytes` is XLA's buffer assignment of the compiled learning signal: the estimator
`(weights, key, tokens, labels) -> (loss, grads)` of a gradient signal, one learner step
of any other (`bbpes.memory.learning_signal_peak_bytes`): arguments + outputs +
temporaries - aliased buffers. It is deterministic and needs compiling only, so sizes
far beyond this machine's memory are measured too. With `rss=true`, each size that fits
is also run once in a fresh subprocess and its peak resident memory reported (minus that
of a subprocess that builds the same problem and runs nothing).

pnde's figure is the dense-output buffer diffrax allocates for `max_steps` steps (the
fixed stepper's step count by default), not the steps a solve happens to take.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jax

from .. import plotting, signals
from ..devices import available_memory_bytes
from ..memory import learning_signal_peak_bytes
from ..neurons import registry
from ..runs import RunDir
from ..tasks.evidence_setup import FORMS, build, example_batch, initial_weights
from . import evidence
from .base import (
    Experiment,
    check_signals,
    methods_of,
    require,
    require_at_least,
    require_positive,
    require_steps,
    signal_choices,
    signal_help,
    signal_knobs,
    signal_settings,
)

PAPER_CLAIM_BYTES = 25e9
"""Section 3.2.2, case C (1 s, 128 cells, batch 64): BPTT needs "over 25 GB"."""

SIGNALS = tuple(m for m in signal_choices() if signals.signal(m).needs in FORMS)
"""Every signal whose loss form the evidence task offers: all are measured by default."""

QUICK_SIGNALS = [m for m in ("es", "bptt", "bptt_checkpointed", "forward_gradient") if m in SIGNALS]
"""--quick: ES, BPTT, checkpointed BPTT and the forward gradient (the memory laws)."""


def evidence_config(config: dict[str, Any], length_ms: float) -> dict[str, Any]:
    """The `evidence` configuration of one measurement: its defaults, this experiment's
    sizes, and each input held `length_ms / n_inputs`."""
    shared = ("n_cells", "batch", "n_inputs", "input_dim", "dt", "window", "seed")
    knobs = tuple(signal_knobs(config))
    return {
        **evidence.EXPERIMENT.defaults,
        **{key: config[key] for key in (*shared, *knobs, "ode_rtol", "ode_atol")},
        "ode_max_steps": 0,
        "neuron": config["neuron"],
        "hold": length_ms / config["n_inputs"],
    }


def problem(config: dict[str, Any]):
    """`(estimator inputs, task, network)` for an `evidence` configuration."""
    task, network = build(config)
    weights = initial_weights(config, task, 0)
    return (weights, jax.random.key(0), *example_batch(config, task)), task, network


def peak_bytes(method: str, config: dict[str, Any]) -> int:
    """XLA's peak bytes of one learning signal of `method` (an `evidence` configuration)."""
    args, task, network = problem(config)
    return learning_signal_peak_bytes(evidence.make_learner(method, task, network, config), *args)


def child_rss(method: str, config: dict[str, Any]) -> int:
    """Run in a subprocess: build the problem, evaluate `method` once (unless "none"),
    return the process's peak resident memory in bytes."""
    import resource

    args, task, network = problem(config)
    if method != "none":
        learner = evidence.make_learner(method, task, network, config)
        estimator = getattr(learner, "estimator", None)
        if estimator is not None:
            jax.block_until_ready(jax.jit(estimator)(*args))
        else:
            jax.block_until_ready(jax.jit(learner.step)(learner.init(args[0]), *args[1:]))
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measured_rss(method: str, config: dict[str, Any]) -> int:
    code = (
        "import json, sys, jax\n"
        f"jax.config.update('jax_enable_x64', {bool(config['x64'])})\n"
        "from bbpes.experiments.memory import child_rss\n"
        "print(json.dumps(child_rss(sys.argv[1], json.loads(sys.argv[2]))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, method, json.dumps(config)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    from ..progress import log

    lengths = [float(x) for x in config["lengths_ms"]]
    methods = methods_of(config, "method")
    available = available_memory_bytes()
    metrics: dict[str, Any] = {
        "measure": "XLA compiled memory_analysis: arguments + outputs + temporaries - aliased",
        "paper_claim_bytes": PAPER_CLAIM_BYTES,
        "available_bytes": available,
    }
    table: dict[str, list[int]] = {m: [] for m in methods}
    for length in lengths:
        sub = evidence_config(config, length)
        baseline = measured_rss("none", sub) if config["rss"] else 0
        for method in methods:
            need = peak_bytes(method, sub)
            table[method].append(need)
            key = f"{method}_{length:g}ms"
            metrics[f"peak_bytes_{key}"] = need
            log(f"[memory] {method:18s} {length:6g} ms: {need / 1e6:10.1f} MB")
            if config["rss"] and need < 0.5 * available:
                metrics[f"rss_bytes_{key}"] = measured_rss(method, sub) - baseline
    for method, sizes in table.items():
        metrics[f"growth_{method}"] = sizes[-1] / sizes[0]
    if 1000.0 in lengths and "bptt" in methods:
        case_c = table["bptt"][lengths.index(1000.0)]
        metrics["bptt_case_c_bytes"] = case_c
        metrics["bptt_case_c_over_paper_claim"] = case_c / PAPER_CLAIM_BYTES
    plot(run_dir, lengths, table, config, available)
    return metrics


def plot(run_dir: RunDir, lengths, table, config, available) -> None:
    fig, ((ax,),) = plotting.figure(width=6.0, height=4.2)
    for method, sizes in table.items():
        ax.plot(lengths, sizes, "o-", label=method, color=signals.color(method))
    ax.axhline(
        PAPER_CLAIM_BYTES, color="black", ls="--", lw=0.8, label="paper: BPTT case C > 25 GB"
    )
    ax.axhline(available, color="gray", ls=":", lw=0.8, label="free memory here")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(lengths, [f"{x:g}" for x in lengths])
    ax.set(
        xlabel="trial length (ms), 50 inputs",
        ylabel="peak bytes of one learning signal",
        title=f"{config['n_cells']} cells, batch {config['batch']}, ES {config['samples']} samples",
    )
    ax.legend(fontsize=8)
    run_dir.save_figure(fig, "memory.png")


def check(config: dict[str, Any]) -> None:
    lengths = config["lengths_ms"]
    require(len(lengths) >= 1, "lengths_ms needs at least one length")
    require(all(x > 0 for x in lengths), "lengths_ms must be positive")
    require(list(lengths) == sorted(lengths), "lengths_ms must be increasing")
    require(len(methods_of(config, "method")) >= 1, "method needs at least one signal")
    require_at_least(config, 1, "n_cells", "batch", "n_inputs", "input_dim")
    require_positive(config, "dt", "window", "ode_rtol", "ode_atol")
    for length in lengths:
        steps = length / config["n_inputs"] / config["dt"]
        require(
            abs(steps - round(steps)) < 1e-6 and round(steps) >= 1,
            f"{length:g} ms / {config['n_inputs']} inputs is not a whole number of steps",
        )
        require(config["window"] <= length, "window must not exceed the shortest trial")
        require_steps(length, config["dt"], f"the trial of {length:g} ms")
    require(config["neuron"] in registry.CELLS, "unknown neuron")
    sub = evidence_config(config, lengths[-1])
    check_signals(config, "method", FORMS, "evidence", sample_bytes=evidence.member_bytes(sub))


EXPERIMENT = Experiment(
    name="memory",
    summary="peak memory of one learning signal (every signal: ES, BPTT, checkpointed BPTT, adjoints...) as the evidence trial grows",
    run=run,
    defaults=signal_settings(
        {
            "lengths_ms": [100.0, 300.0, 1000.0, 3000.0],
            "method": list(SIGNALS),
            "n_cells": 128,
            "batch": 64,
            "samples": 100,
            "es_chunk": 0,
            "n_inputs": 50,
            "input_dim": 32,
            "window": 10.0,
            "dt": 0.1,
            "neuron": "morris_lecar",
            "ode_rtol": 1e-4,
            "ode_atol": 1e-4,
            "rss": False,
            "x64": False,
        }
    ),
    quick={"lengths_ms": [100.0, 300.0, 1000.0], "method": QUICK_SIGNALS},
    choices={"method": signal_choices()},
    check=check,
    help=signal_help(
        {
            "lengths_ms": "trial lengths: the 50 inputs held length / 50 each",
            "rss": "also run each size that fits once in a fresh subprocess and report its peak RSS",
            "es_chunk": "ES samples evaluated at once (0: all)",
            "method": "learning signals to measure (default: every one the evidence task offers)",
        }
    ),
)
