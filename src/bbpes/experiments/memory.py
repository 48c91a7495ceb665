"""`memory`: how much memory one learning-signal evaluation of the evidence network
needs as the trial grows (BBPES paper, section 3.2.2, case C: "over 25 GB" for BPTT).

For each method (by default every signal of `bbpes.signals` whose loss form the
evidence task offers) and trial length (the 50 inputs held longer), the reported
`peak_bytes` is XLA's buffer assignment of the compiled learning signal, and with
`rss=true` each size that fits is also run once in a fresh subprocess and its peak
resident memory reported: the measurement is `bbpes.tasks.evidence_memory` (shared with
`bbpes bench memory`); this experiment adds the paper's claim and the figure.
"""

from __future__ import annotations

from typing import Any

from .. import plotting, signals
from ..devices import available_memory_bytes
from ..framework import Experiment, Setting
from ..framework.checks import (
    check_signals,
    methods_of,
    require,
    require_steps,
    signal_choices,
    signal_settings,
)
from ..neurons import registry
from ..runs import RunDir
from ..tasks.evidence_memory import Sweep, measurement_config, sweep
from ..tasks.evidence_setup import FORMS, member_bytes

PAPER_CLAIM_BYTES = 25e9
"""Section 3.2.2, case C (1 s, 128 cells, batch 64): BPTT needs "over 25 GB"."""

SIGNALS = tuple(m for m in signal_choices() if signals.signal(m).needs in FORMS)
"""Every signal whose loss form the evidence task offers: all are measured by default."""

QUICK_SIGNALS = [m for m in ("es", "bptt", "bptt_checkpointed", "forward_gradient") if m in SIGNALS]
"""--quick: ES, BPTT, checkpointed BPTT and the forward gradient (the memory laws)."""


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    available = available_memory_bytes()
    result = sweep(config, methods_of(config, "method"))
    metrics: dict[str, Any] = {
        "measure": "XLA compiled memory_analysis: arguments + outputs + temporaries - aliased",
        "paper_claim_bytes": PAPER_CLAIM_BYTES,
        "available_bytes": available,
        **result.metrics(),
    }
    if 1000.0 in result.lengths and "bptt" in result.peak:
        case_c = result.peak["bptt"][result.lengths.index(1000.0)]
        metrics["bptt_case_c_bytes"] = case_c
        metrics["bptt_case_c_over_paper_claim"] = case_c / PAPER_CLAIM_BYTES
    plot(run_dir, result, config, available)
    return metrics


def plot(run_dir: RunDir, result: Sweep, config: dict[str, Any], available: float) -> None:
    """Peak bytes against trial length, one line per method (log-log), with the paper's
    claim and the memory free here."""
    fig, ((ax,),) = plotting.figure(width=6.0, height=4.2)
    for method, sizes in result.peak.items():
        ax.plot(result.lengths, sizes, "o-", label=method, color=signals.color(method))
    ax.axhline(
        PAPER_CLAIM_BYTES, color="black", ls="--", lw=0.8, label="paper: BPTT case C > 25 GB"
    )
    ax.axhline(available, color="gray", ls=":", lw=0.8, label="free memory here")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(result.lengths, [f"{x:g}" for x in result.lengths])
    ax.set(
        xlabel=f"trial length (ms), {config['n_inputs']} inputs",
        ylabel="peak bytes of one learning signal",
        title=f"{config['n_cells']} cells, batch {config['batch']}, ES {config['samples']} samples",
    )
    ax.legend(fontsize=8)
    run_dir.save_figure(fig, "memory.png")


def check(config: dict[str, Any]) -> None:
    lengths = config["lengths_ms"]
    require(len(lengths) >= 1, "lengths_ms needs at least one length")
    require(list(lengths) == sorted(lengths), "lengths_ms must be increasing")
    require(len(methods_of(config, "method")) >= 1, "method needs at least one signal")
    for length in lengths:
        steps = length / config["n_inputs"] / config["dt"]
        require(
            abs(steps - round(steps)) < 1e-6 and round(steps) >= 1,
            f"{length:g} ms / {config['n_inputs']} inputs is not a whole number of steps",
        )
        require(config["window"] <= length, "window must not exceed the shortest trial")
        require_steps(length, config["dt"], f"the trial of {length:g} ms")
    sub = measurement_config(config, lengths[-1])
    check_signals(config, "method", FORMS, "evidence", sample_bytes=member_bytes(sub))


SETTINGS = (
    Setting(
        "lengths_ms",
        [100.0, 300.0, 1000.0, 3000.0],
        "trial lengths, increasing: the inputs held length / n_inputs each",
        "ms",
        positive=True,
        quick=[100.0, 300.0, 1000.0],
    ),
    Setting(
        "method",
        list(SIGNALS),
        "learning signals to measure (default: every one the evidence task offers)",
        choices=signal_choices(),
        quick=QUICK_SIGNALS,
    ),
    Setting("n_cells", 128, "cells in the recurrent network", low=1),
    Setting("batch", 64, "trials per learning signal", low=1),
    Setting("n_inputs", 50, "inputs per trial", low=1),
    Setting("input_dim", 32, "dimension of each input token", low=1),
    Setting("window", 10.0, "readout window at the end of the trial", "ms", positive=True),
    Setting("dt", 0.1, "integration step", "ms", positive=True),
    Setting(
        "neuron",
        "morris_lecar",
        "cell model (a name in bbpes.neurons.CELLS)",
        choices=registry.CELLS,
    ),
    Setting("ode_rtol", 1e-4, "pnde/fnde solver relative tolerance", positive=True),
    Setting("ode_atol", 1e-4, "pnde/fnde solver absolute tolerance", positive=True),
    Setting(
        "rss",
        False,
        "also run each size that fits once in a fresh subprocess and report its peak RSS",
    ),
    Setting("x64", False, "simulate in float64"),
    *signal_settings({"samples": 100, "es_chunk": 0}),
)

EXPERIMENT = Experiment(
    name="memory",
    summary="peak memory of one learning signal (every signal: ES, BPTT, checkpointed BPTT, adjoints...) as the evidence trial grows",
    run=run,
    settings=SETTINGS,
    check=check,
)
