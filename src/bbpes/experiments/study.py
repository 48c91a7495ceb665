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

`--quick` is a quick look at the same protocol (equal calibrated budget, three tuning
values selected on validation, three fresh seeds): one regime, case B, at the quick
scale, with the strongest signals of the committed leaderboards (`QUICK_SIGNALS`); a
few minutes on 2 cores instead of half an hour. Any run that leaves part of the full
study out (regimes, signals, a smaller scale) says so in leaderboard.md and on the
terminal (`left_out`), with the command of the full study.
"""

from __future__ import annotations

from typing import Any

import jax

from ..imports import is_reference
from ..progress import log
from ..runs import RunDir
from ..signals import names as signal_names
from ..signals import signal
from ..study.grid import calibrate_regime, run_signal
from ..study.leaderboard import leaderboard_markdown, left_out_lines, verdict
from ..study.plugins import (
    check_problem,
    installed_problems,
    installed_regime,
    load_problem,
    with_signals,
)
from ..study.problem import Regime
from . import study_regimes as R
from .base import Experiment, require
from .fit_regimes import FIT_SIGNALS, fit_problem
from .study_plots import plot_regime


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

QUICK_REGIMES = ["case_b"]
"""`--quick`'s regime: case B, explosive cells, the ES paper's central claim (ES more
robust than BP, section 3.2.2)."""

QUICK_SIGNALS = ["bptt", "guided_es", "es_lowrank"]
"""`--quick`'s signals, the strongest of each family on case B in the committed full
results (docs/leaderboard_reduced.md, docs/leaderboard_case_b_60s.md): `bptt`, the
backprop variant (bptt_noclip's lead at 15 s was the calibration's noise: at 60 s the
two tie, 0.841 each); `guided_es`, the best forward-only signal (0.738 at 15 s, 0.760
at 60 s); `es_lowrank`, the best pure evolution strategy (0.662 against es's 0.615 at
15 s, spreads separate)."""

FULL_STUDY = "bbpes run signals"
"""The command of the full study: every regime, each with every signal of its own list,
at the default (reduced) scale: hours on 2 cores."""


def selected_signals(regime: Regime, config: dict[str, Any]) -> list[str]:
    """The regime's signals that this installation has (and `signals` filters to), and
    the user's own (`signal`)."""
    known = set(signal_names())
    wanted = [m for m in regime.signals if m in known or m.startswith("evosax:") or is_reference(m)]
    quick_pick = config.get("quick") and list(config["signals"]) == QUICK_SIGNALS
    if config["signals"] and not (quick_pick and regime.name not in REGIMES):  # yours: all
        wanted = [m for m in wanted if m in config["signals"] or m in config["signal"]]
    return wanted + [m for m in config["signal"] if m not in wanted]


def study_regimes(config: dict[str, Any]) -> dict[str, Regime]:
    """The regimes this run competes on, by name, each with the user's own signals
    (`signal`): the `problem` function's alone when one is named, else those of
    `regimes` (bbpes's, or an installed package's from the `bbpes.problems` entry
    points)."""
    table, scale = regimes(), config["scale"]
    if config["problem"]:
        chosen = [load_problem(config["problem"], scale)]
    else:
        chosen = [table[n] if n in table else installed_regime(n, scale) for n in config["regimes"]]
    return {r.name: with_signals(r, config["signal"]) for r in chosen}


def left_out(config: dict[str, Any]) -> dict[str, Any]:
    """What a run at `config` leaves out of the full study (`FULL_STUDY`): `regimes` it
    does not run, `signals` (regime -> names) of the regimes it runs, `settings` (name
    -> [this run's value, the full study's]) where its scale or protocol is smaller, and
    `full`, the full study's command; {} when it leaves nothing out."""
    if config["problem"] or any(n not in REGIMES for n in config["regimes"]):
        return {}  # the user's problem: nothing of bbpes's study is left out of it
    table = regimes()
    out: dict[str, Any] = {}
    missing = [n for n in table if n not in config["regimes"]]
    if missing:
        out["regimes"] = missing
    signals = {}
    for name in config["regimes"]:
        chosen = selected_signals(table[name], config)
        omitted = [m for m in table[name].signals if m not in chosen]
        if omitted:
            signals[name] = omitted
    if signals:
        out["signals"] = signals
    full = EXPERIMENT.defaults
    settings = {
        k: [config[k], full[k]] for k in ("scale", "seeds", "sweep") if config[k] != full[k]
    }
    if config["budget"] and config["budget"] < R.BUDGETS[full["scale"]]:
        settings["budget"] = [config["budget"], R.BUDGETS[full["scale"]]]
    if settings:
        out["settings"] = settings
    if out:
        out["full"] = FULL_STUDY
    return out


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    scale = config["scale"]
    budget = config["budget"] or R.BUDGETS[scale]
    rows, notes, references = [], {}, {}
    table = study_regimes(config)
    omitted = left_out(config)
    for line in left_out_lines(omitted):
        log(f"[signals] {line}")
    for name, regime in table.items():
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
        "claims": {n: r.claim for n, r in table.items()},
        "targets": {n: r.target for n, r in table.items()},
        "verdicts": {
            n: verdict(r, [row for row in rows if row["regime"] == n]) for n, r in table.items()
        },
        "rows": rows,
    }
    if omitted:
        board["left_out"] = omitted
    run_dir.write_json("leaderboard.json", board)
    run_dir.file("leaderboard.md").write_text(leaderboard_markdown(board, table))
    for name, text in board["verdicts"].items():  # string metrics do not reach the terminal
        log(f"[signals] verdict {name}: {text}")
    for line in left_out_lines(omitted):
        log(f"[signals] {line}")
    metrics: dict[str, Any] = {"budget_seconds": budget, "rows": len(rows)}
    for row in rows:
        key = f"{row['regime']}_{row['signal'].replace(':', '_')}"
        metrics[f"metric_{key}"] = row.get("metric_mean")
        metrics[f"reached_{key}"] = row.get("reached")
    for name, text in board["verdicts"].items():
        metrics[f"verdict_{name}"] = text
    return metrics


def check(config: dict[str, Any]) -> None:
    require(config["seeds"] >= 1, "seeds must be >= 1 (3 for a verdict)")
    require(1 <= config["sweep"] <= 3, "sweep must be 1, 2 or 3 (values per signal)")
    require(config["budget"] >= 0, "budget must be >= 0 seconds (0: the scale's)")
    require(config["memory_limit_gb"] >= 0, "memory_limit_gb must be >= 0 (0: 80% of free)")
    require(len(config["regimes"]) >= 1, "regimes must name at least one regime")
    for m in (*config["signals"], *config["signal"]):
        signal(m)  # ConfigError for an unknown name or a bad reference
    if config["problem"]:
        check_problem(config["problem"])


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
        "signal": [],
        "problem": "",
        "memory_limit_gb": 0.0,
    },
    quick={"scale": "quick", "regimes": QUICK_REGIMES, "signals": QUICK_SIGNALS},
    choices={"regimes": (*REGIMES, *installed_problems()), "scale": tuple(R.BUDGETS)},
    check=check,
    help={
        "regimes": "which claims to test (default: all)",
        "scale": "tiny (tests), quick (6 s a run: about 1 min per signal of a regime on 2 cores), reduced (25-40 min a regime on 2 loaded cores), paper",
        "budget": "training seconds per run, equal for every signal (0: the scale's)",
        "seeds": "fresh runs of the selected setting per signal (spread over these)",
        "sweep": "values of each signal's step size tried on the tuning run (1-3)",
        "signals": "only these signals (default: each regime's own list; --quick: the strongest of case B)",
        "memory_limit_gb": "skip signals whose step needs more (0: 80% of free memory)",
        "signal": "your own signals to compete too, on every regime: names of installed ones (entry points bbpes.signals) or package.module:OBJECT references",
        "problem": "your own problem instead of the regimes: a package.module:function reference returning a Regime or (Problem, signal names) (examples/own_study.py)",
    },
)
