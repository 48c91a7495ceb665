"""Ranking and verdicts of the signals study, on hand-made rows."""

from bbpes.study.leaderboard import (
    leaderboard_markdown,
    left_out_lines,
    ranked,
    separated,
    verdict,
)
from bbpes.study.problem import Regime, Sweep

REGIME = Regime("r", "claim", "accuracy", True, 0.9, {"es": Sweep("lr_es")}, build=None)
LOWER = Regime("s", "claim", "mae", False, 0.04, {"es": Sweep("lr_es")}, build=None)


def row(signal, family, mean, std, reached=0, seeds=3, to_target=None, to_std=0.0, **extra):
    out = {
        "regime": "r",
        "signal": signal,
        "family": family,
        "metric_mean": mean,
        "metric_std": std,
        "reached": reached,
        "seeds": seeds,
        **extra,
    }
    if to_target is not None:
        out["seconds_to_target_mean"], out["seconds_to_target_std"] = to_target, to_std
    return out


def test_rows_that_reach_the_target_rank_first_by_time_then_by_metric():
    rows = [
        row("a", "forward", 0.95, 0.01, reached=3, to_target=50.0),
        row("b", "backprop", 0.97, 0.01, reached=3, to_target=20.0),
        row("c", "forward", 0.99, 0.0, reached=2),  # best metric, but not every seed
        row("d", "forward", 0.5, 0.0),
    ]
    assert [r["signal"] for r in ranked(REGIME, rows)] == ["b", "a", "c", "d"]


def test_lower_is_better_regimes_rank_the_smallest_metric_first():
    rows = [row("a", "forward", 0.2, 0.0), row("b", "backprop", 0.1, 0.0)]
    assert [r["signal"] for r in ranked(LOWER, rows)] == ["b", "a"]


def test_a_win_needs_separated_spreads():
    close = [row("es", "forward", 0.80, 0.05), row("bptt", "backprop", 0.78, 0.05)]
    assert verdict(REGIME, close).startswith("no separation")
    apart = [row("es", "forward", 0.80, 0.01), row("bptt", "backprop", 0.70, 0.01)]
    assert verdict(REGIME, apart).startswith("forward-only wins: es")
    one_seed = [{**r, "seeds": 1, "metric_std": 0.0} for r in apart]
    assert verdict(REGIME, one_seed).startswith("no verdict: 1 seed(s), 3 needed")
    # in time to target: intervals 10 +- 2 and 30 +- 5 separate; 10 +- 2 and 13 +- 2 do not
    fast = row("es", "forward", 0.95, 0.0, reached=3, to_target=10.0, to_std=2.0)
    slow = row("bptt", "backprop", 0.95, 0.0, reached=3, to_target=30.0, to_std=5.0)
    near = row("bptt", "backprop", 0.95, 0.0, reached=3, to_target=13.0, to_std=2.0)
    assert separated(REGIME, fast, slow) and not separated(REGIME, slow, fast)
    assert not separated(REGIME, fast, near)
    assert verdict(REGIME, [fast, slow]).startswith("forward-only wins")


def test_backprop_can_win_and_a_skipped_backprop_loses_to_any_run():
    rows = [row("es", "forward", 0.6, 0.01), row("bptt", "backprop", 0.9, 0.01)]
    assert verdict(REGIME, rows).startswith("backprop wins: bptt")
    skipped = {**row("bptt", "backprop", None, None), "skipped": "needs 9 GB"}
    assert verdict(REGIME, [row("es", "forward", 0.6, 0.01), skipped]).startswith(
        "forward-only wins"
    )


def trained(signal, family, mean, knob, selected, steps, step_seconds, nonfinite=0, **extra):
    """A row as `run_signal` writes it for a signal that ran: `row` plus its setting."""
    return {
        **row(signal, family, mean, 0.01),
        "knob": knob,
        "selected": selected,
        "steps": steps,
        "step_seconds": step_seconds,
        "nonfinite_steps": nonfinite,
        **extra,
    }


def board_of(rows, verdict_text, **extra):
    """A one-regime ("r") board of `rows`, as the study experiment writes it."""
    return {
        "scale": "tiny",
        "budget_seconds": 1.0,
        "seeds": 3,
        "sweep": 3,
        "notes": {"r": "n"},
        "verdicts": {"r": verdict_text},
        "rows": rows,
        **extra,
    }


def test_markdown_has_one_table_per_regime_in_rank_order():
    rows = [
        trained("es", "forward", 0.6, "lr_es", 0.01, 10, 0.1, peak_bytes=1e6),
        trained("bptt", "backprop", 0.9, "lr", 0.001, 5, 0.2, nonfinite=1, peak_bytes=5e6),
    ]
    text = leaderboard_markdown(board_of(rows, verdict(REGIME, rows)), {"r": REGIME})
    assert text.index("| 1 | bptt") < text.index("| 2 | es")
    assert "backprop wins" in text
    assert "](r.png)" in text  # the regime's figure, beside the leaderboard


def test_markdown_states_the_references_of_a_regime_that_has_them():
    rows = [trained("es", "forward", 0.6, "lr_es", 0.01, 10, 0.1)]
    assert "Without learning" not in leaderboard_markdown(board_of(rows, "v"), {"r": REGIME})
    levels = {"r": {"chance": 1 / 3, "last input": 0.58203125}}
    text = leaderboard_markdown(board_of(rows, "v", references=levels), {"r": REGIME})
    assert "Without learning (test set): chance 0.333, last input 0.582." in text


def test_markdown_says_what_a_run_leaves_out_and_earlier_boards_read_as_before():
    rows = [trained("es", "forward", 0.6, "lr_es", 0.01, 10, 0.1)]
    assert "leaves out" not in leaderboard_markdown(board_of(rows, "v"), {"r": REGIME})
    left = {
        "regimes": ["case_a", "hard"],
        "signals": {"r": ["bptt_noclip", "pnde"]},
        "settings": {"scale": ["quick", "reduced"]},
        "full": "bbpes run signals",
    }
    text = leaderboard_markdown(board_of(rows, "v", left_out=left), {"r": REGIME})
    assert "**This run leaves out part of the full study:**" in text
    assert "- regimes: case_a, hard" in text and "- signals of r: bptt_noclip, pnde" in text
    assert "- settings: scale quick (full: reduced)" in text
    assert "`bbpes run signals`" in text
    assert text.index("leaves out") < text.index("## r:")  # before the tables
    assert left_out_lines({}) == []
