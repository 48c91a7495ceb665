"""`signals`: where each learning signal wins. An equal-budget, multi-seed competition
of every learning signal on every regime the ES paper makes a claim about, written as
a leaderboard (leaderboard.md, leaderboard.json) and one metric-vs-seconds plot per
regime.

The protocol (`bbpes.study.grid`): every signal of a regime gets the same training
seconds per run, measured in this command (a calibrated step count); it is tuned on
three values of its step size on run 0 and selected on validation data; the selected
value then trains on `seeds` fresh runs whose test metric is reported with its spread.
A forward-only signal "wins" a regime only when its interval (mean +- std over seeds)
separates from the best backpropagation variant's.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from .. import plotting
from ..runs import RunDir
from ..signals import names as signal_names
from ..signals import signal
from ..study.grid import calibrate_regime, run_signal
from ..study.leaderboard import leaderboard_markdown, verdict
from ..study.problem import Regime
from . import study_regimes as R
from .base import Experiment, require
from .fit_regimes import FIT_SIGNALS, fit_problem


def _regime(name, claim, metric, higher, target, signals, build) -> Regime:
    return Regime(name, claim, metric, higher, target, R.sweeps(signals), build)


def regimes() -> dict[str, Regime]:
    """Every regime of the study, by name."""
    evidence_fwd = ("es", "es_lowrank", "forward_gradient", "guided_es")
    return {
        r.name: r
        for r in (
            _regime(
                "case_a",
                "control: non-explosive cells, BP is expected to be fine",
                "accuracy",
                True,
                0.9,
                (
                    *evidence_fwd,
                    "evosax:SNES",
                    "evosax:Open_ES",
                    "bptt",
                    "bptt_noclip",
                    "bptt_checkpointed",
                ),
                lambda s: R.evidence_problem("A", s),
            ),
            _regime(
                "case_b",
                "explosive cells: ES is more robust than BP (section 3.2.2)",
                "accuracy",
                True,
                0.9,
                (*evidence_fwd, "bptt", "bptt_noclip", "pnde"),
                lambda s: R.evidence_problem("B", s),
            ),
            _regime(
                "hard",
                "hard-threshold spike output: no gradient for BP",
                "accuracy",
                True,
                0.9,
                (
                    "es",
                    "es_lowrank",
                    "guided_es",
                    "evosax:SNES",
                    "evosax:Open_ES",
                    "bptt_surrogate",
                    "bptt",
                ),
                lambda s: R.evidence_problem("A", s, transmitter="hard"),
            ),
            _regime(
                "long_1s",
                "long trials (case C; 1 s at paper scale): BP runs out of memory, ES does not",
                "accuracy",
                True,
                0.9,
                ("es", "es_lowrank", "forward_gradient", "bptt", "bptt_checkpointed"),
                lambda s: R.evidence_problem("C", s),
            ),
            _regime(
                "long_3s",
                "long trials (case C, inputs held 3x longer; 3 s at paper scale): BP runs out of memory, ES does not",
                "accuracy",
                True,
                0.9,
                ("es", "es_lowrank", "forward_gradient", "bptt", "bptt_checkpointed"),
                lambda s: R.evidence_problem("C", s, hold=60.0),
            ),
            _regime(
                "spiral",
                "over-parameterised neural ODE (H = 1000)",
                "mae",
                False,
                0.04,
                ("es", "forward_gradient", "bptt", "fnde"),
                R.spiral_problem,
            ),
            _regime(
                "rober_plain",
                "stiff neural ODE, plain field",
                "loss_ratio",
                False,
                0.1,
                ("es", "bptt"),
                lambda s: R.rober_problem("plain", s),
            ),
            _regime(
                "rober_normalised",
                "stiff neural ODE, normalised field",
                "loss_ratio",
                False,
                0.1,
                ("es", "bptt"),
                lambda s: R.rober_problem("normalised", s),
            ),
            _regime(
                "fit_hh",
                "fitting a cell to features: population methods are the field's habit (Neuroptimus test case 1)",
                "max_rel_error",
                False,
                0.01,
                FIT_SIGNALS,
                lambda s: fit_problem("hh", s),
            ),
            _regime(
                "fit_pospischil",
                "fitting 7 parameters of the Pospischil model to features of 4 sweeps (ground truth)",
                "max_rel_error",
                False,
                0.01,
                FIT_SIGNALS,
                lambda s: fit_problem("pospischil", s),
            ),
            _regime(
                "fit_real",
                "fitting the Pospischil model to a real cell (B6, 5 sweeps): eFEL z-score loss",
                "loss",
                False,
                1.0,
                FIT_SIGNALS,
                lambda s: fit_problem("real", s),
            ),
        )
    }


REGIMES = tuple(regimes())


def selected_signals(regime: Regime, config: dict[str, Any]) -> list[str]:
    """The regime's signals that this installation has (and `signals` filters to)."""
    known = set(signal_names())
    wanted = [m for m in regime.signals if m in known or m.startswith("evosax:")]
    if config["signals"]:
        wanted = [m for m in wanted if m in config["signals"]]
    return wanted


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    scale = config["scale"]
    budget = config["budget"] or R.BUDGETS[scale]
    rows, notes, references = [], {}, {}
    table = regimes()
    for name in config["regimes"]:
        regime = table[name]
        problem = regime.build(scale)
        notes[name], references[name] = problem.notes, dict(problem.references)
        with jax.enable_x64(problem.x64):
            methods = selected_signals(regime, config)
            limit = config["memory_limit_gb"] * 1e9 or None
            calibrate_regime(problem, methods, run_dir, name, memory_limit=limit)  # interleaved
            for method in methods:
                rows.append(
                    run_signal(
                        regime,
                        problem,
                        method,
                        budget=budget,
                        seeds=config["seeds"],
                        sweep=config["sweep"],
                        run_dir=run_dir,
                        resume=config["resume"],
                        memory_limit=limit,
                    )
                )
        plot_regime(
            run_dir, regime, [r for r in rows if r["regime"] == name], budget, references[name]
        )
    board = {
        "scale": scale,
        "budget_seconds": budget,
        "seeds": config["seeds"],
        "sweep": config["sweep"],
        "notes": notes,
        "references": references,
        "claims": {n: table[n].claim for n in config["regimes"]},
        "targets": {n: table[n].target for n in config["regimes"]},
        "verdicts": {
            n: verdict(table[n], [r for r in rows if r["regime"] == n]) for n in config["regimes"]
        },
        "rows": rows,
    }
    run_dir.write_json("leaderboard.json", board)
    run_dir.file("leaderboard.md").write_text(leaderboard_markdown(board, table))
    metrics: dict[str, Any] = {"budget_seconds": budget, "rows": len(rows)}
    for row in rows:
        key = f"{row['regime']}_{row['signal'].replace(':', '_')}"
        metrics[f"metric_{key}"] = row.get("metric_mean")
        metrics[f"reached_{key}"] = row.get("reached")
    for name, text in board["verdicts"].items():
        metrics[f"verdict_{name}"] = text
    return metrics


def plot_regime(
    run_dir: RunDir,
    regime: Regime,
    rows: list[dict],
    budget: float,
    references: dict[str, float] | None = None,
) -> None:
    """Test metric against training seconds (calibrated clock), mean and band over seeds;
    the target and the `references` (levels without learning) as horizontal lines."""
    fig, ((ax,),) = plotting.figure(width=6.0, height=4.0)
    for row in rows:
        if "curves" not in row:
            continue
        steps = [c["step"] for c in row["curves"][0]]
        seconds = np.asarray(steps) * row["step_seconds"]
        values = [[c[regime.metric] for c in curve][: len(steps)] for curve in row["curves"]]
        style = "-" if signal(row["signal"]).family == "forward" else "--"
        plotting.mean_and_spread(
            ax, seconds, values, label=row["signal"], color=plotting.color(row["signal"]), ls=style
        )
    ax.axhline(regime.target, color="gray", ls=":", lw=0.8, label="target")
    for name, level in (references or {}).items():
        ax.axhline(level, color="0.75", ls=(0, (1, 3)), lw=0.8)
        ax.annotate(
            name,
            (1.0, level),
            xycoords=("axes fraction", "data"),
            fontsize=6,
            color="0.5",
            ha="right",
            va="bottom",
        )
    ax.set(
        xlabel="training seconds (calibrated)",
        ylabel=f"test {regime.metric}",
        title=f"{regime.name}: {regime.claim}\nbudget {budget:g} s per run; dashed: backprop",
    )
    if not regime.higher_is_better:
        ax.set_yscale("log")
    ax.legend(fontsize=7, loc="best")
    run_dir.save_figure(fig, f"{regime.name}.png")


def check(config: dict[str, Any]) -> None:
    require(config["seeds"] >= 1, "seeds must be >= 1 (3 for a verdict)")
    require(1 <= config["sweep"] <= 3, "sweep must be 1, 2 or 3 (values per signal)")
    require(config["budget"] >= 0, "budget must be >= 0 seconds (0: the scale's)")
    require(config["memory_limit_gb"] >= 0, "memory_limit_gb must be >= 0 (0: 80% of free)")
    require(len(config["regimes"]) >= 1, "regimes must name at least one regime")
    for m in config["signals"]:
        signal(m)  # ConfigError for an unknown name


EXPERIMENT = Experiment(
    name="signals",
    summary="where each learning signal wins: equal-budget, multi-seed leaderboard on every regime of the ES paper's claims",
    run=run,
    defaults={
        "regimes": list(REGIMES),
        "scale": "reduced",
        "budget": 0.0,
        "seeds": 3,
        "sweep": 3,
        "signals": [],
        "memory_limit_gb": 0.0,
    },
    quick={"scale": "quick", "regimes": ["case_a", "case_b", "hard"]},
    choices={"regimes": REGIMES, "scale": tuple(R.BUDGETS)},
    check=check,
    help={
        "regimes": "which claims to test (default: all)",
        "scale": "tiny (tests), quick (about 10 min a regime), reduced (25-40 min a regime on 2 loaded cores), paper",
        "budget": "training seconds per run, equal for every signal (0: the scale's)",
        "seeds": "fresh runs of the selected setting per signal (spread over these)",
        "sweep": "values of each signal's step size tried on the tuning run (1-3)",
        "signals": "only these signals (default: each regime's own list)",
        "memory_limit_gb": "skip signals whose step needs more (0: 80% of free memory)",
    },
)
