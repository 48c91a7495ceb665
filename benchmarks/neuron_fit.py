"""Neuroptimus test case 1 fitted with NEURON itself as the simulator (`bbpes run
fit-neuron`: NEURON's `hh` soma, built once per Ray worker, eFEL's features computed
there) against the JAX fit of the same seed (`bbpes run fit`), over seeds; and the cost
of the distribution (seconds per step with 1 and 2 Ray workers, and one sample's cost in
this process).

    .venv/bin/python benchmarks/neuron_fit.py                 # seeds 0-9, then the overhead
    .venv/bin/python benchmarks/neuron_fit.py --seeds 0 3     # seeds 0-2
    .venv/bin/python benchmarks/neuron_fit.py --table         # the table of docs/scaling.md

Both fits: `evosax:CMA_ES`, population 10, sigma 1.0 (bbpes's tuned defaults), 1,000
evaluations; the NEURON fit on 2 Ray workers of a local Ray on 127.0.0.1. Appends one
JSON line per seed to benchmarks/data/neuron_fit_runs.jsonl (and one `"kind":
"overhead"` line), skipping what is there already; runs go to runs/neuron_fit/, and an
interrupted one is resumed (`--resume`). `--table` reads those lines and BluePyOpt's
`hh` runs (IBEA and CMA-ES on the same NEURON model, the same features, stds and
budget) from benchmarks/data/peers_fit_runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "neuron_fit_runs.jsonl"
PEERS = ROOT / "benchmarks" / "data" / "peers_fit_runs.jsonl"
RUNS = ROOT / "runs" / "neuron_fit"
SETTINGS = {"method": "evosax:CMA_ES", "samples": 10, "sigma": 1.0, "evaluations": 1000}
WORKERS = 2
NAMES = ("gnabar", "gkbar", "gl")
KEYS = (
    "recovered", "max_relative_error", "evaluations_to_tolerance", "seconds_to_tolerance",
    "best_hard_loss", "evaluations", "seconds", "wall_seconds", "cost_per_step",
    "timing_forward_seconds", "timing_step_seconds", "workers",
)  # fmt: skip


def _run(name: str, overrides: dict, out: Path) -> tuple[dict, list[dict]]:
    """metrics and history of `bbpes run NAME` into `out` (resumed if interrupted)."""
    from bbpes.framework.runner import run_experiment
    from bbpes.runs import RunDir

    run = RunDir(out)
    if not (out / "metrics.json").exists():
        resume = run.holds_run()
        run_experiment(name, None if resume else overrides, out=out, resume=resume)
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics, run.read_history()


def _per_step(history: list[dict]) -> float:
    """Mean seconds per step after the first (`seconds` of the scored centres)."""
    seconds = [r["seconds"] for r in history if "hard_loss" in r and "seconds" in r]
    return (seconds[-1] - seconds[0]) / max(1, len(seconds) - 1)


def _summary(metrics: dict, history: list[dict]) -> dict:
    out = {k: metrics.get(k) for k in KEYS}
    out["fitted"] = {n: metrics[f"fitted_{n}"] for n in NAMES}
    out["seconds_per_step"] = _per_step(history)
    return out


def seed_line(seed: int) -> dict:
    neuron = _run(
        "fit-neuron",
        {**SETTINGS, "workers": WORKERS, "seed": seed},
        RUNS / f"neuron_{seed}",
    )
    jax_fit = _run("fit", {**SETTINGS, "problem": "hh", "seed": seed}, RUNS / f"jax_{seed}")
    a, b = _summary(*neuron), _summary(*jax_fit)
    gap = max(abs(a["fitted"][n] / b["fitted"][n] - 1.0) for n in NAMES)
    return {
        "kind": "seed",
        "problem": "hh",
        "seed": seed,
        "settings": {**SETTINGS, "workers": WORKERS, "tolerance": 0.01},
        "neuron": a,
        "jax": b,
        "neuron_vs_jax_max_relative_difference": gap,
    }


def overhead_line(steps: int = 20) -> dict:
    """Seconds per step of the same fit with 1 and 2 workers (`steps` steps), and the
    cost of one sample (NEURON's run and eFEL) in this process, without Ray."""
    from bbpes.blackbox.efel_loss import EfelLoss
    from bbpes.blackbox.fit import default_parameters, suite_problem
    from bbpes.blackbox.neuron_cell import NeuronCell
    from bbpes.blackbox.neuron_loss import NeuronLoss
    from bbpes.fitting import suite

    evaluations = steps * (SETTINGS["samples"] + 1)
    per_step = {}
    for workers in (1, 2):
        overrides = {**SETTINGS, "evaluations": evaluations, "workers": workers, "seed": 0}
        per_step[workers] = _per_step(
            _run("fit-neuron", overrides, RUNS / f"overhead_{workers}")[1]
        )
    space, protocol, truth, jax_cell = suite_problem("hh")
    cell = NeuronCell(
        parameters=default_parameters(space),
        options=(("diam", float(jax_cell.diam)), ("L", float(jax_cell.L))),
    )
    target = cell.model().traces(np.asarray(truth), protocol)
    floss, _ = suite.make_loss(target, protocol, "features", suite.DEFAULT_FEATURES, 0.05, 2.0)
    loss = NeuronLoss(cell, protocol, EfelLoss.from_feature_loss(floss))
    rng = np.random.default_rng(0)
    points = [np.asarray(truth) * np.exp(rng.normal(0, 0.3, 3)) for _ in range(20)]
    t0 = time.perf_counter()
    for p in points:
        cell.model().traces(p, protocol)
    simulate = (time.perf_counter() - t0) / len(points)
    t0 = time.perf_counter()
    for p in points:
        loss(p)
    sample = (time.perf_counter() - t0) / len(points)
    population = SETTINGS["samples"] + 1
    return {
        "kind": "overhead",
        "problem": "hh",
        "steps": steps,
        "samples_per_step": population,
        "seconds_per_step": {str(k): v for k, v in per_step.items()},
        "sample_seconds_in_process": sample,
        "neuron_seconds_in_process": simulate,
        "ray_overhead_per_sample_1_worker": per_step[1] / population - sample,
    }


def _lines() -> list[dict]:
    if not DATA.exists():
        return []
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def _append(line: dict) -> None:
    DATA.parent.mkdir(parents=True, exist_ok=True)
    with DATA.open("a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line), flush=True)


def _stat(values: list) -> str:
    """`median (min-max)` over every seed; a seed that never reached 1% (None) counts as
    more than any that did, so the median is `> budget` when half of them did not; the
    range is that of the seeds that reached it."""
    found = [v for v in values if v is not None and math.isfinite(v)]
    if not found:
        return "not reached"
    median = statistics.median([math.inf if v is None else v for v in values])
    shown = f"{median:.4g}" if math.isfinite(median) else "> budget"
    return f"{shown} ({min(found):.3g}-{max(found):.3g})"


def table() -> str:
    """The markdown table of docs/scaling.md from the recorded lines."""
    seeds = [line for line in _lines() if line["kind"] == "seed"]
    rows = [
        ("bbpes, NEURON black box (2 Ray workers)", [s["neuron"] for s in seeds]),
        ("bbpes, JAX", [s["jax"] for s in seeds]),
    ]
    peers = []
    if PEERS.exists():
        peers = [json.loads(x) for x in PEERS.read_text().splitlines() if x.strip()]
    for tool, label in (
        ("bluepyopt_ibea", "BluePyOpt IBEA"),
        ("bluepyopt_cma", "BluePyOpt CMA-ES"),
    ):
        found = [p for p in peers if p.get("problem") == "hh" and p.get("tool") == tool]
        runs = [p["run"] for p in found]
        settings = found[0].get("settings", {}) if found else {}
        offspring = settings.get("bluepyopt_offspring")
        extra = f", offspring {offspring}" if offspring else ""
        rows.append((f"{label} (NEURON{extra})", runs))
    out = [
        "| fit | seeds | within 1% | evaluations to 1% | seconds to 1% "
        "| largest error at the budget | seconds for the budget |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, runs in rows:
        reached = [r.get("recovered", r.get("success")) for r in runs]
        evals = [r.get("evaluations_to_tolerance") for r in runs]
        secs = [r.get("seconds_to_tolerance") for r in runs]
        error = [r.get("max_relative_error", r.get("final_max_relative_error")) for r in runs]
        budget = [r.get("seconds") for r in runs]
        out.append(
            f"| {label} | {len(runs)} | {sum(bool(x) for x in reached)}/{len(runs)} | "
            f"{_stat(evals)} | {_stat(secs)} | {_stat(error)} | {_stat(budget)} |"
        )
    gaps = [s["neuron_vs_jax_max_relative_difference"] for s in seeds]
    both = [
        s["neuron_vs_jax_max_relative_difference"]
        for s in seeds
        if s["neuron"]["recovered"] and s["jax"]["recovered"]
    ]
    if gaps:
        out.append("")
        out.append(
            f"NEURON fit vs JAX fit, the largest relative difference of a parameter at the "
            f"end: median {statistics.median(gaps):.2g}, max {max(gaps):.2g} ({len(gaps)} seeds); "
            f"where both reached 1% ({len(both)} seeds): max {max(both, default=math.nan):.2g}"
        )
    for line in _lines():
        if line["kind"] == "overhead":
            s = line["seconds_per_step"]
            out.append(
                f"Seconds per step ({line['samples_per_step']} samples): 1 worker {s['1']:.3f}, "
                f"2 workers {s['2']:.3f}; one sample in-process {line['sample_seconds_in_process']:.3f} s "
                f"(NEURON {line['neuron_seconds_in_process']:.3f} s)"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=(0, 10), metavar=("FIRST", "END"))
    parser.add_argument("--no-overhead", action="store_true")
    parser.add_argument("--table", action="store_true", help="print the table and stop")
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    from bbpes.parallel import split_cpu

    split_cpu()  # as the bbpes command does: one JAX device per core, before JAX starts
    done = {line["seed"] for line in _lines() if line["kind"] == "seed"}
    for seed in range(*args.seeds):
        if seed not in done:
            _append(seed_line(seed))
    if not args.no_overhead and not any(line["kind"] == "overhead" for line in _lines()):
        _append(overhead_line())


if __name__ == "__main__":
    main()
