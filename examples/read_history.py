"""Read a run's history.jsonl and plot it.

Every `bbpes run` writes history.jsonl into its directory: one JSON object per line
and per iteration, with the training's `label` (the method: `es`, `bptt`...), the
`step`, the learner's metrics (`loss`, `grad_norm`, `nonfinite`), the training
`seconds` so far, and the held-out metrics on evaluation steps. Plain `json` reads it;
`bbpes.runs.RunDir(path).read_history()` does the same and skips a line cut short by
a kill. (`bbpes compare DIR DIR ...` plots several runs against each other.)

Run it: `python examples/read_history.py RUN_DIR [METRIC]`. Without RUN_DIR it first
makes a small `turn-off` run in ./example-run (BBPES_EXAMPLE_TINY=1: a tiny one).
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt

TINY = os.environ.get("BBPES_EXAMPLE_TINY") == "1"


def read_history(run_dir: Path) -> dict[str, list[dict]]:
    """The history records of `run_dir`, grouped by training label, in order."""
    by_label = defaultdict(list)
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_label[record["label"]].append(record)
    return dict(by_label)


def plot(run_dir: Path, metric: str = "loss") -> Path:
    fig, (ax_steps, ax_seconds) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, records in read_history(run_dir).items():
        kept = [r for r in records if r.get(metric) is not None]
        steps = [r["step"] for r in kept]
        seconds = [r.get("seconds", 0.0) for r in kept]
        values = [r[metric] for r in kept]
        ax_steps.plot(steps, values, label=label)
        ax_seconds.plot(seconds, values, label=label)
        print(f"{label}: {len(kept)} records, {metric} {values[0]:.4g} -> {values[-1]:.4g}")
    ax_steps.set(xlabel="iteration", ylabel=metric)
    ax_seconds.set(xlabel="training seconds", ylabel=metric)
    ax_steps.legend()
    path = run_dir / f"history-{metric}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def small_run() -> Path:
    """A `turn-off` run (one Morris-Lecar cell, ES and BPTT) to have a history to read."""
    from bbpes.framework.runner import run_experiment

    settings = {"t_end": 200, "steps": 3, "grid_points": 5, "gradient_points": 2, "samples": 4}
    if not TINY:
        settings = {"steps": 20}
    out = Path("example-run")
    run, _ = run_experiment("turn-off", settings, quick=True, out=out)
    return run.path


def main():
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else small_run()
    metric = sys.argv[2] if len(sys.argv) > 2 else "loss"
    print(f"wrote {plot(run_dir, metric)}")


if __name__ == "__main__":
    main()
