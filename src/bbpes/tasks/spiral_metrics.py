"""Reading the spiral's training curves: one curve per ensemble member, the iterations
and the seconds to the target full-trajectory MAE, and the summary over runs.

The full-trajectory MAE jumps from one evaluation to the next, so the target is read
two ways: the first evaluation at or below it (the best MAE so far reaches it, the
paper's reading), and the first at which the running median of the last `window`
evaluations is at or below it (the target held by most recent evaluations).
"""

from __future__ import annotations

import numpy as np


def split_history(history: list[dict], members: int) -> list[dict[str, np.ndarray]]:
    """The records of an ensemble's training as one curve per member: `step`,
    `seconds`, `loss` and `rejected` (1 where the member's step was rejected) at every
    step, `eval_step` and `mae` at every evaluation."""
    steps = [r for r in history if "loss_0" in r]
    evals = [r for r in history if "mae_0" in r]

    def column(records, key):
        return np.asarray([np.nan if r.get(key) is None else r[key] for r in records], float)

    return [
        {
            "step": column(steps, "step"),
            "seconds": column(steps, "seconds"),
            "loss": column(steps, f"loss_{m}"),
            "rejected": column(steps, f"rejected_{m}"),
            "eval_step": column(evals, "step"),
            "mae": column(evals, f"mae_{m}"),
        }
        for m in range(members)
    ]


def running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the last `window` values at each position (fewer at the start); NaN
    (a failed solve) counts as +inf."""
    values = np.where(np.isnan(values), np.inf, values)
    return np.asarray(
        [np.median(values[max(0, i + 1 - window) : i + 1]) for i in range(len(values))]
    )


def iterations_to_target(curve: dict, target: float, window: int) -> tuple[float, float]:
    """`(first, sustained)`: the first evaluated step whose MAE is <= `target` (the best
    MAE so far reaches it), and the first whose running median over `window` evaluations
    is (the target held by most recent evaluations); NaN if never."""
    steps, mae = curve["eval_step"], np.nan_to_num(curve["mae"], nan=np.inf)
    first = np.flatnonzero(mae <= target)
    sustained = np.flatnonzero(running_median(mae, window) <= target)
    return (
        float(steps[first[0]]) if first.size else float("nan"),
        float(steps[sustained[0]]) if sustained.size else float("nan"),
    )


def seconds_at(curve: dict, step: float) -> float:
    """Training seconds (evaluation excluded) up to `step`, without the first step,
    which includes compilation: (t[step] - t[1]) * step / (step - 1). A target met
    before training (step 0) took 0 s; after one step it cannot be told from compiling."""
    if step == 0:
        return 0.0
    if not np.isfinite(step) or step < 2:
        return float("nan")
    t = dict(zip(curve["step"].astype(int), curve["seconds"]))
    return (t[int(step)] - t[1]) * step / (step - 1)


def summarise(curves: list[dict], target: float, window: int) -> dict:
    """Over members: mean and spread of the final MAE (running median of the last
    `window` evaluations); the mean best MAE; the mean minibatch loss over the last 10%
    of the steps; the median iterations to target (first evaluation at or below it) and
    to a sustained target (running median at or below it) of the members that got there,
    with how many did; the fraction of evaluations at or below target after the first
    hit; and how many member steps were rejected as non-finite, in all."""
    final = [running_median(c["mae"], window)[-1] for c in curves]
    losses = [np.nanmean(c["loss"][-max(1, len(c["loss"]) // 10) :]) for c in curves]
    hits = np.asarray([iterations_to_target(c, target, window) for c in curves])
    first, sustained = np.isfinite(hits[:, 0]), np.isfinite(hits[:, 1])
    after = [
        np.mean(np.nan_to_num(c["mae"][c["eval_step"] >= h], nan=np.inf) <= target)
        for c, h in zip(curves, hits[:, 0])
        if np.isfinite(h)
    ]
    return {
        "final_mae": float(np.mean(final)),
        "final_mae_std": float(np.std(final)),
        "best_mae": float(np.mean([np.nanmin(c["mae"]) for c in curves])),
        "final_loss": float(np.mean(losses)),
        "runs_reached_target": int(first.sum()),
        "iterations_to_target": float(np.median(hits[first, 0])) if first.any() else None,
        "runs_sustained_target": int(sustained.sum()),
        "iterations_to_sustained_target": float(np.median(hits[sustained, 1]))
        if sustained.any()
        else None,
        "fraction_below_target_after_hit": float(np.mean(after)) if after else None,
        "rejected_steps": int(sum(np.nansum(c.get("rejected", [])) for c in curves)),
    }
