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

from ..framework import Experiment, Setting
from ..framework.checks import require, signal_choices
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
from ..study.regimes import BUDGETS, regimes
from .study_plots import plot_regime

REGIMES = tuple(regimes())
"""bbpes's own regimes (the modules of `bbpes.study.regimes`), in the study's order."""

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
    if config["budget"] and config["budget"] < BUDGETS[full["scale"]]:
        settings["budget"] = [config["budget"], BUDGETS[full["scale"]]]
    if settings:
        out["settings"] = settings
    if out:
        out["full"] = FULL_STUDY
    return out


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    config = {**EXPERIMENT.defaults, **config}  # a stored run's config.json may lack newer settings
    scale = config["scale"]
    budget = config["budget"] or BUDGETS[scale]
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
    require(len(config["regimes"]) >= 1, "regimes must name at least one regime")
    for m in (*config["signals"], *config["signal"]):
        signal(m)  # ConfigError for an unknown name or a bad reference
    if config["problem"]:
        check_problem(config["problem"])


class _Regimes:
    """The `regimes` values: bbpes's own, and the problems installed packages offer
    (entry-point group `bbpes.problems`, looked up when asked)."""

    def __contains__(self, name: object) -> bool:
        return name in REGIMES or name in installed_problems()

    def __iter__(self):
        return iter((*REGIMES, *installed_problems()))


SETTINGS = (
    Setting(
        "regimes",
        list(REGIMES),
        "which claims to test (default: all)",
        choices=_Regimes(),
        quick=QUICK_REGIMES,
    ),
    Setting(
        "scale",
        "reduced",
        "tiny (tests), quick (6 s a run: about 1 min per signal of a regime on 2 cores), "
        "reduced (25-40 min a regime on 2 loaded cores), paper",
        choices=tuple(BUDGETS),
        quick="quick",
    ),
    Setting(
        "budget",
        0.0,
        "training seconds per run, equal for every signal",
        "s",
        low=0,
        zero="the scale's",
    ),
    Setting("seeds", 3, "fresh runs of the selected setting per signal (spread over these)", low=1),
    Setting("sweep", 3, "values of each signal's step size tried on the tuning run", low=1, high=3),
    Setting(
        "signals",
        [],
        "only these signals (default: each regime's own list; --quick: the strongest of case B)",
        choices=signal_choices(),
        quick=QUICK_SIGNALS,
    ),
    Setting(
        "signal",
        [],
        "your own signals to compete too, on every regime: names of installed ones "
        "(entry points bbpes.signals) or package.module:OBJECT references",
    ),
    Setting(
        "problem",
        "",
        "your own problem instead of the regimes: a package.module:function reference "
        "returning a Regime or (Problem, signal names) (examples/own_study.py)",
    ),
    Setting(
        "memory_limit_gb",
        0.0,
        "skip signals whose step needs more",
        "GB",
        low=0,
        zero="80% of free memory",
    ),
)


EXPERIMENT = Experiment(
    name="signals",
    summary="where each learning signal wins: equal-budget, multi-seed leaderboard on every regime of the ES paper's claims",
    run=run,
    settings=SETTINGS,
    check=check,
)
