"""Ranking, verdicts and the markdown leaderboard of the signals study."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .problem import Regime


def _interval(mean: float | None, std: float | None) -> tuple[float, float] | None:
    if mean is None or std is None or not math.isfinite(mean):
        return None
    return mean - std, mean + std


def rank_key(regime: Regime, row: Mapping[str, Any]) -> tuple:
    """Rows that reached the target in every seed first, by mean seconds to it; then by
    the metric at the budget (in the regime's direction); skipped rows last."""
    if row.get("skipped") or row.get("metric_mean") is None:
        return (2, 0.0)
    if row["reached"] == row["seeds"]:
        return (0, row["seconds_to_target_mean"])
    sign = -1.0 if regime.higher_is_better else 1.0
    return (1, sign * row["metric_mean"])


def ranked(regime: Regime, rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: rank_key(regime, r))


def separated(regime: Regime, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether row `a` beats row `b` with separated spreads: both reached the target in
    every seed and a's seconds-to-target interval lies below b's; or a reached it in
    every seed and b in none; or a's metric interval at the budget lies wholly on the
    better side of b's."""
    all_a, all_b = a.get("reached") == a.get("seeds"), b.get("reached") == b.get("seeds")
    if b.get("skipped"):
        return not a.get("skipped") and a.get("metric_mean") is not None
    if all_a and all_b:
        ia = _interval(a.get("seconds_to_target_mean"), a.get("seconds_to_target_std"))
        ib = _interval(b.get("seconds_to_target_mean"), b.get("seconds_to_target_std"))
        return ia is not None and ib is not None and ia[1] < ib[0]
    if all_a and b.get("reached") == 0:
        return True
    ia = _interval(a.get("metric_mean"), a.get("metric_std"))
    ib = _interval(b.get("metric_mean"), b.get("metric_std"))
    if ia is None or ib is None:
        return False
    return ia[0] > ib[1] if regime.higher_is_better else ia[1] < ib[0]


VERDICT_SEEDS = 3
"""Seeds per signal a verdict needs (mean +- std over fewer says little)."""


def verdict(regime: Regime, rows: list[dict]) -> str:
    """One line: which family wins the regime, only where the spreads over at least
    `VERDICT_SEEDS` seeds separate."""
    fwd = ranked(regime, [r for r in rows if r["family"] == "forward" and not r.get("skipped")])
    bp = ranked(regime, [r for r in rows if r["family"] == "backprop"])
    if not fwd or not bp:
        return "no verdict: needs a forward-only and a backprop signal"
    f, b = fwd[0], bp[0]
    seeds = min(r.get("seeds", 0) for r in (f, b))
    if seeds < VERDICT_SEEDS:  # one seed's spread is nil: any difference would "separate"
        return (
            f"no verdict: {seeds} seed(s), {VERDICT_SEEDS} needed; best forward-only "
            f"{f['signal']}, best backprop {b['signal']}"
        )
    if separated(regime, f, b):
        return f"forward-only wins: {f['signal']} beats {b['signal']} (spreads separate)"
    if separated(regime, b, f):
        return f"backprop wins: {b['signal']} beats {f['signal']} (spreads separate)"
    return f"no separation: best forward-only {f['signal']}, best backprop {b['signal']}"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _references_line(references: Mapping[str, float] | None) -> list[str]:
    """The regime's levels without learning, as one line (none: no line)."""
    if not references:
        return []
    levels = ", ".join(f"{name} {_fmt(value)}" for name, value in references.items())
    return [f"Without learning (test set): {levels}."]


def left_out_lines(left: Mapping[str, Any] | None) -> list[str]:
    """What a run leaves out of the full study (`bbpes.experiments.study.left_out`), as
    lines for the terminal and the leaderboard; none when it leaves nothing out."""
    if not left:
        return []
    lines = ["This run leaves out part of the full study:"]
    if left.get("regimes"):
        lines.append(f"- regimes: {', '.join(left['regimes'])}")
    for name, signals in left.get("signals", {}).items():
        lines.append(f"- signals of {name}: {', '.join(signals)}")
    settings = left.get("settings", {})
    if settings:
        changed = ", ".join(f"{k} {_fmt(v)} (full: {_fmt(f)})" for k, (v, f) in settings.items())
        lines.append(f"- settings: {changed}")
    lines.append(
        f"The full study (every regime, every signal of each, at the default scale): `{left['full']}`"
    )
    return lines


def _target_text(regime: Regime) -> str:
    if not math.isfinite(regime.target):
        return "No target: ranked by the metric at the budget."
    return f"Target: {regime.metric} {'>=' if regime.higher_is_better else '<='} {regime.target:g}."


def leaderboard_markdown(board: Mapping[str, Any], regimes: Mapping[str, Regime]) -> str:
    """The leaderboard as markdown: one table per regime, ranked, with the verdict and
    a link to the regime's figure (`NAME.png` beside the file)."""
    lines = [
        "# Signals leaderboard",
        "",
        f"Scale `{board['scale']}`, {board['budget_seconds']:g} training seconds per run for "
        f"every signal (calibrated in the same command), {board['seeds']} seeds, "
        f"{board['sweep']} tuning values per signal selected on validation data.",
        "Metric: the test metric at the budget, mean +- std over seeds. To target: seconds "
        "(calibrated clock) and forward-pass equivalents, mean over the seeds that reached it.",
        "",
    ]
    left = left_out_lines(board.get("left_out"))  # boards of earlier runs have none
    if left:
        lines += [f"**{left[0]}**", "", *left[1:-1], "", f"{left[-1]}.", ""]
    for name, verdict_text in board["verdicts"].items():
        regime = regimes[name]
        rows = ranked(regime, [r for r in board["rows"] if r["regime"] == name])
        lines += [
            f"## {name}: {regime.claim}",
            "",
            f"{board['notes'].get(name, '')}. " + _target_text(regime),
            *_references_line(board.get("references", {}).get(name)),
            "",
            f"**Verdict:** {verdict_text}.",
            "",
            "| rank | signal | family | selected | metric at budget | reached | s to target "
            "| fwd passes to target | steps | s/step | peak MB | non-finite |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for k, r in enumerate(rows, 1):
            if r.get("skipped"):
                lines.append(
                    f"| {k} | {r['signal']} | {r['family']} | - | skipped: {r['skipped']} "
                    "| - | - | - | - | - | "
                    f"{_fmt((r.get('peak_bytes') or 0) / 1e6)} | - |"
                )
                continue
            passes = [p for p in r.get("forward_passes_to_target", []) if p is not None]
            lines.append(
                f"| {k} | {r['signal']} | {r['family']} | {r['knob']}={_fmt(r['selected'])} "
                f"| {_fmt(r['metric_mean'])} +- {_fmt(r['metric_std'], 2)} "
                f"| {r['reached']}/{r['seeds']} | {_fmt(r.get('seconds_to_target_mean'))} "
                f"| {_fmt(sum(passes) / len(passes) if passes else None)} | {r['steps']} "
                f"| {_fmt(r['step_seconds'])} | {_fmt((r.get('peak_bytes') or 0) / 1e6)} "
                f"| {r['nonfinite_steps']} |"
            )
        lines += [
            "",
            f"![{name}: test metric against calibrated training seconds, mean and band over "
            f"{board['seeds']} seeds]({name}.png)",  # the run's own figure, beside this file
            "",
        ]
    return "\n".join(lines)
