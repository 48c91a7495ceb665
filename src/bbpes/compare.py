"""Several runs of one experiment side by side: `bbpes compare RUN_DIR [RUN_DIR ...]`.

`compare_runs` reads each run directory (config.json, history.jsonl, metrics.json) and
writes into `out`:

- `compare.png`: the chosen history metric against iterations (left) and against
  training seconds (right), one line per training inside each run (its history
  `label`: `es`, `bptt`, ...), each run labelled by the settings that differ between
  the runs;
- `compare.md` and `compare.json`: the settings that differ and the final metrics
  (metrics.json) of every run side by side.

Everything is checked before anything is written: a missing directory, a directory
that holds no run, runs of different experiments or a metric that a run's history
lacks raise `ConfigError` and leave `out` untouched. A run that has not finished yet
(no metrics.json) is compared too; its final metrics are left blank.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .runs import CONFIG, METRICS, RunDir, atomic_write_bytes, atomic_write_json, to_jsonable

FIGURE, TABLE_MD, TABLE_JSON = "compare.png", "compare.md", "compare.json"
DEFAULT_METRIC = "loss"


@dataclass
class RunRecord:
    """One run directory as read: its settings, its history lines and final metrics."""

    path: Path
    config: dict[str, Any]
    lines: dict[str, list[dict]]  # history records by training label, in file order
    metrics: dict[str, Any] | None  # None: the run has not written metrics.json yet
    label: str = ""


@dataclass(frozen=True)
class Comparison:
    """What `compare_runs` wrote and what it put in the plot's legend."""

    experiment: str
    metric: str
    runs: list[RunRecord]
    differing: list[str]  # setting keys whose values differ between the runs
    files: dict[str, Path] = field(default_factory=dict)  # "figure", "markdown", "json"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_run(path: str | Path) -> RunRecord:
    """The run stored in `path`; `ConfigError` if there is none."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise ConfigError(f"no such run directory: {run.path}")
    if not run.holds_run():
        raise ConfigError(f"{run.path} holds no run (no {CONFIG})")
    try:
        config = run.read_config()
        metrics = json.loads(run.file(METRICS).read_text()) if run.file(METRICS).exists() else None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{run.path}: unreadable JSON ({error})") from None
    lines: dict[str, list[dict]] = {}
    for record in run.read_history():
        lines.setdefault(str(record.get("label", "train")), []).append(record)
    return RunRecord(run.path, config, lines, metrics)


def history_metrics(record: RunRecord) -> list[str]:
    """The numeric keys of a run's history records (sorted)."""
    skip = {"step", "seconds"}
    return sorted(
        {
            k
            for rs in record.lines.values()
            for r in rs
            for k, v in r.items()
            if k not in skip and _is_number(v)
        }
    )


def curve(records: Sequence[dict], metric: str) -> tuple[list[int], list[float], list[float]]:
    """`(steps, seconds, values)` of `metric` in one training's history records; records
    without a finite value are skipped, the evaluation before the first step counts as
    0 seconds."""
    steps, seconds, values = [], [], []
    for r in records:
        if _is_number(r.get(metric)) and _is_number(r.get("step")):
            steps.append(int(r["step"]))
            seconds.append(float(r.get("seconds", 0.0) or 0.0))
            values.append(float(r[metric]))
    return steps, seconds, values


def differing_settings(configs: Sequence[dict[str, Any]]) -> list[str]:
    """The keys whose values are not the same in every config, in the first config's order."""
    keys: list[str] = []
    for config in configs:
        keys += [k for k in config if k not in keys]
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(_format, value))
    return str(value)


def _labels(runs: Sequence[RunRecord], differing: Sequence[str]) -> list[str]:
    labels = [", ".join(f"{k}={_format(r.config.get(k))}" for k in differing) for r in runs]
    if len(runs) == 1 or len(set(labels)) < len(labels) or not all(labels):
        labels = [f"{r.path.name}" + (f" ({lab})" if lab else "") for r, lab in zip(runs, labels)]
    return labels


def default_out() -> Path:
    return Path("runs") / f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def compare_runs(
    run_dirs: Sequence[str | Path],
    *,
    metric: str | None = None,
    out: str | Path | None = None,
) -> Comparison:
    """Compare runs of one experiment: a plot of a history metric and a table of the
    final metrics.

    **Arguments:**

    - `run_dirs`: one or more run directories (`bbpes run ... --out DIR`), all of the
      same experiment.
    - `metric`: the history key to plot (default `loss`); every run's history must
      hold it.
    - `out`: the directory to write into (default `runs/compare-TIMESTAMP`); it must
      not be a run directory. Files of an earlier comparison there are replaced.

    **Returns:** a `Comparison` with the runs read (each with its legend `label`), the
    settings that differ and the paths written (`files["figure"]`, `["markdown"]`,
    `["json"]`).

    Raises `ConfigError` (nothing written) for a missing or empty run directory, runs
    of different experiments or a metric some run's history lacks.
    """
    if not run_dirs:
        raise ConfigError("compare needs at least one run directory")
    runs = [read_run(d) for d in run_dirs]
    experiments = sorted({str(r.config.get("experiment")) for r in runs})
    if len(experiments) > 1:
        raise ConfigError(
            f"runs of different experiments cannot be compared: {', '.join(experiments)}"
        )
    metric = metric or DEFAULT_METRIC
    for r in runs:
        if not any(curve(rs, metric)[0] for rs in r.lines.values()):
            has = ", ".join(history_metrics(r)) or "no numeric metric"
            raise ConfigError(f"{r.path} has no history metric '{metric}' (it has: {has})")
    out = Path(out) if out is not None else default_out()
    if RunDir(out).holds_run():
        raise ConfigError(f"{out} holds a run; choose another --out for the comparison")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a directory; choose another --out")
    differing = differing_settings([r.config for r in runs])
    for r, label in zip(runs, _labels(runs, differing)):
        r.label = label
    comparison = Comparison(experiments[0], metric, runs, differing)
    out.mkdir(parents=True, exist_ok=True)
    comparison.files["figure"] = plot_comparison(comparison, out / FIGURE)
    comparison.files["markdown"] = out / TABLE_MD
    atomic_write_bytes(out / TABLE_MD, markdown_table(comparison).encode())
    comparison.files["json"] = out / TABLE_JSON
    atomic_write_json(out / TABLE_JSON, json_table(comparison))
    return comparison


def plot_lines(comparison: Comparison) -> list[tuple[str, list[int], list[float], list[float]]]:
    """`(legend, steps, seconds, values)` of every training of every run that has the
    metric: the lines `plot_comparison` draws."""
    several = len(comparison.runs) > 1
    out = []
    for r in comparison.runs:
        for name, records in r.lines.items():
            steps, seconds, values = curve(records, comparison.metric)
            if steps:
                alone = len(r.lines) == 1
                legend = name if not several else r.label if alone else f"{r.label} · {name}"
                out.append((legend, steps, seconds, values))
    return out


def plot_comparison(comparison: Comparison, path: Path) -> Path:
    """The metric against iterations and against seconds, one line per training."""
    from . import plotting
    from .runs import save_figure

    fig, axes = plotting.figure(2, width=5.5, height=3.8)
    ax_steps, ax_seconds = axes[0]
    values = []
    for legend, steps, seconds, ys in plot_lines(comparison):
        (line,) = ax_steps.plot(steps, ys, lw=1.2, label=legend)
        ax_seconds.plot(seconds, ys, lw=1.2, color=line.get_color())
        values += ys
    logscale = min(values) > 0 and max(values) / min(values) > 20
    for ax, xlabel in ((ax_steps, "iteration"), (ax_seconds, "training seconds")):
        ax.set(xlabel=xlabel, ylabel=comparison.metric, yscale="log" if logscale else "linear")
        ax.grid(alpha=0.3)
    ax_steps.legend(fontsize=7)
    fig.suptitle(f"{comparison.experiment}: {comparison.metric}", fontsize=10)
    return save_figure(fig, path)


def _final_keys(comparison: Comparison) -> list[str]:
    keys: list[str] = []
    for r in comparison.runs:
        keys += [k for k, v in (r.metrics or {}).items() if k not in keys and _scalar(v)]
    return keys


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def json_table(comparison: Comparison) -> dict[str, Any]:
    """The comparison as JSON: per run its directory, label, differing settings, final
    metrics and the last value of the metric in each training; and the final metrics
    as rows with one value per run."""
    runs = []
    for r in comparison.runs:
        last = {name: curve(rs, comparison.metric)[2][-1:] for name, rs in r.lines.items()}
        runs.append(
            {
                "dir": str(r.path),
                "label": r.label,
                "finished": r.metrics is not None,
                "settings": {k: r.config.get(k) for k in comparison.differing},
                "last_" + comparison.metric: {k: v[0] for k, v in last.items() if v},
                "metrics": r.metrics or {},
            }
        )
    return to_jsonable(
        {
            "experiment": comparison.experiment,
            "metric": comparison.metric,
            "differing": comparison.differing,
            "runs": runs,
            "table": {
                k: [(r.metrics or {}).get(k) for r in comparison.runs]
                for k in _final_keys(comparison)
            },
        }
    )


def markdown_table(comparison: Comparison) -> str:
    """The runs, the settings that differ and the final metrics, as markdown tables."""
    runs = comparison.runs
    head = "| | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |"
    rule = "| --- |" + " --- |" * len(runs)

    def row(name: str, cells: Sequence[Any]) -> str:
        return f"| {name} | " + " | ".join(_format(c).replace("|", "\\|") for c in cells) + " |"

    lines = [
        f"# {comparison.experiment}: {len(runs)} runs compared",
        "",
        head,
        rule,
        row("directory", [f"`{r.path}`" for r in runs]),
        row("label", [r.label for r in runs]),
        *(row(k, [r.config.get(k) for r in runs]) for k in comparison.differing),
        row("finished", [r.metrics is not None for r in runs]),
        "",
        "## Final metrics (metrics.json)",
        "",
        "| metric | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |",
        rule,
        *(row(k, [(r.metrics or {}).get(k) for r in runs]) for k in _final_keys(comparison)),
        "",
    ]
    return "\n".join(lines)
