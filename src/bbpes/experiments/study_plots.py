"""The signals study's figure: one regime's test metric against calibrated training
seconds, one line per signal (`bbpes run signals`, beside `study.py`)."""

from __future__ import annotations

import numpy as np

from .. import plotting, signals
from ..runs import RunDir
from ..study.problem import Regime


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
        style = "-" if signals.signal(row["signal"]).family == "forward" else "--"
        plotting.mean_and_spread(
            ax, seconds, values, label=row["signal"], color=signals.color(row["signal"]), ls=style
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
