"""Small plotting helpers shared by the experiments (matplotlib, PNG, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6, **kwargs: Any):
    """`(fig, axes)` with a consistent size per panel."""
    return plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs
    )


def mean_and_spread(
    ax: Any,
    x: Sequence[float],
    runs: Sequence[Sequence[float]],
    *,
    label: str,
    color: str | None = None,
    ls: str = "-",
) -> None:
    """Mean over runs (rows) as a line (style `ls`) and +-1 standard deviation as a
    band; runs of unequal length are cut to the shortest."""
    n = min(len(r) for r in runs)
    data = np.asarray([np.asarray(r[:n], float) for r in runs])
    x = np.asarray(x[:n], float)
    mean = np.nanmean(data, axis=0)
    line = ax.plot(
        x, mean, label=f"{label} (n={len(runs)})" if len(runs) > 1 else label, color=color, ls=ls
    )
    if len(runs) > 1:
        std = np.nanstd(data, axis=0)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=line[0].get_color())
