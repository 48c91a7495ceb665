"""Part `fit` of `bbpes bench peers` (`bbpes.bench.peers`): test case 1 (`hh`) and
BluePyOpt's simplecell fitted to the tolerance by `bbpes run fit`, BluePyOpt (IBEA,
CMA-ES) and Jaxley's gradient descent, seed by seed; each run's best point followed
to the tolerance, the runs summarised per tool, and the figure of error against time.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .peers_worker import PEERS, ROOT
from .timing import load_average


def best_so_far(log: list[list[float]], truth) -> list[dict[str, float]]:
    """From an evaluation log (rows `[seconds, loss, evaluations, *parameters]`), the
    method's own best point after each row (lowest loss so far): its loss and the
    largest relative error of its parameters against `truth`."""
    truth = np.asarray(truth, np.float64)
    out, best, error = [], np.inf, np.inf
    for seconds, loss, evaluations, *params in log:
        if loss < best:
            best = loss
            error = float(np.max(np.abs(np.asarray(params) / truth - 1.0)))
        out.append({"seconds": seconds, "evaluations": evaluations, "loss": best, "error": error})
    return out


def to_tolerance(curve: list[dict[str, float]], tolerance: float) -> dict[str, Any]:
    """Evaluations and seconds at which the best point first had every parameter within
    `tolerance` (None when it never did), and the final error."""
    hit = next((row for row in curve if row["error"] <= tolerance), None)
    return {
        "success": hit is not None,
        "evaluations_to_tolerance": hit["evaluations"] if hit else None,
        "seconds_to_tolerance": hit["seconds"] if hit else None,
        "final_max_relative_error": curve[-1]["error"] if curve else None,
        "evaluations": curve[-1]["evaluations"] if curve else 0,
        "seconds": curve[-1]["seconds"] if curve else 0.0,
    }


def bluepyopt_run(config, python: Path, problem: str, method: str, seed: int) -> dict:
    """One BluePyOpt fit (`benchmarks/peers/bluepyopt_fit.py`), its log as rows
    `[seconds, loss, evaluations, *parameters]`."""
    from ..fitting.suite import DEFAULT_FEATURES

    spec = {"problem": problem, "method": method, "seed": seed}
    spec |= {"evaluations": config["evaluations"], "offspring": config["bluepyopt_offspring"]}
    spec |= {"features": list(DEFAULT_FEATURES), "tolerance": config["tolerance"]}
    result = _peer_fit(python, "bluepyopt_fit.py", spec, config["fit_timeout"])
    if "error" in result:
        return result
    log = [[t, loss, k + 1, *p] for k, (t, loss, *p) in enumerate(result.pop("log"))]
    return {**result, "log": log}


def jaxley_run(config, python: Path, problem: str, seed: int) -> dict:
    """One Jaxley gradient-descent fit (`benchmarks/peers/jaxley_fit.py`: `jaxley_starts`
    starts of `jaxley_steps` Adam steps at `jaxley_lr`, stopping at the tolerance), its
    log as rows `[seconds, soft loss, evaluations, *parameters]` (a step counts its
    measured cost in forward runs)."""
    spec = {"problem": problem, "seed": seed, "starts": config["jaxley_starts"]}
    spec |= {"steps": config["jaxley_steps"], "lr": config["jaxley_lr"]}
    spec |= {"loss": config["jaxley_loss"]}
    spec |= {"tolerance": config["tolerance"]}
    return _peer_fit(python, "jaxley_fit.py", spec, config["fit_timeout"])


def _peer_fit(python: Path, script: str, spec: dict, timeout: float) -> dict:
    """Run `benchmarks/peers/<script>` with `spec` (JSON) in the peers venv: its last
    stdout line (JSON) with `process_seconds` added, or `{"error": ...}` (the last lines
    of its stderr) when it fails."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(python), str(PEERS / script), json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": " | ".join(tail)[:500]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "process_seconds": time.perf_counter() - t0}


def bbpes_run(config, problem: str, seed: int) -> dict:
    """One fit of `bbpes run fit`'s training (`bbpes.fitting.training`, in this process,
    without its figures), its history as rows `[seconds, hard loss, evaluations,
    *parameters]`; `seconds` counts the steps' wall time without the first step's
    compilation."""
    import jax

    from ..fitting import training
    from ..runs import RunDir

    settings = {
        "problem": problem,
        "method": config["bbpes_method"],
        "samples": config["bbpes_samples"],
        "sigma": config["bbpes_sigma"],
        "evaluations": config["evaluations"],
        "tolerance": config["tolerance"],
        "seed": seed,
    }
    fit_config = training.defaults(**settings)
    with (
        jax.enable_x64(fit_config["x64"]),
        tempfile.TemporaryDirectory(prefix="bbpes-peers-fit-") as directory,
    ):
        t0 = time.perf_counter()
        fit = training.build(fit_config)
        run = training.train_fit(fit_config, fit, RunDir(directory))
        wall = time.perf_counter() - t0
    names = fit.space.names
    records = run.records
    compile_seconds = sum(r.get("compile_seconds", 0.0) for r in records)
    per_step = run.cost + 1.0
    log = [
        [
            r.get("seconds", 0.0) - compile_seconds,
            r["hard_loss"],
            r["step"] * per_step,
            *(r[f"value_{n}"] for n in names),
        ]
        for r in records
    ]
    timings = {
        "timing_compile_seconds": "compile_seconds",
        "timing_forward_seconds": "forward_seconds",
    }
    return {
        "log": log,
        "compile_seconds": compile_seconds,
        "process_seconds": wall,
        "settings": settings,
        "cost_per_step": run.cost,
        **{k: run.timings[t] for k, t in timings.items() if t in run.timings},
    }


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def tool_settings(config: dict[str, Any], tool: str) -> dict[str, Any]:
    """The settings that make a run of `tool` what it is (a recorded run is reused only
    under the same ones)."""
    common = {"evaluations": config["evaluations"], "tolerance": config["tolerance"]}
    if tool == "bbpes":
        keys = ("bbpes_method", "bbpes_samples", "bbpes_sigma")
    elif tool == "jaxley_gd":
        keys = ("jaxley_starts", "jaxley_steps", "jaxley_lr", "jaxley_loss")
    else:
        keys = ("bluepyopt_offspring",)
    return common | {k: config[k] for k in keys}


def read_record(path: str) -> dict[tuple, dict]:
    """The runs a `record` file (JSON lines, one finished run each) holds, by
    (problem, tool, seed, settings); a torn last line (a killed run) is ignored."""
    done: dict[tuple, dict] = {}
    if not path or not Path(path).exists():
        return done
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        key = (
            row["problem"],
            row["tool"],
            row["seed"],
            json.dumps(row["settings"], sort_keys=True),
        )
        done[key] = row["run"]
    return done


def append_record(path: str, row: dict) -> None:
    """Append `row` as one JSON line to `path`, on a line of its own even after a torn
    last line (a run killed while writing)."""
    torn = False
    if Path(path).exists() and Path(path).stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, 2)
            torn = f.read(1) != b"\n"
    with open(path, "a") as f:
        f.write(("\n" if torn else "") + json.dumps(row) + "\n")


def fit_part(config: dict[str, Any], python: Path) -> dict[str, Any]:
    """Every (problem, seed, tool) fit in turn. With `record` (a JSON-lines file), each
    finished run is appended to it and runs already there (same settings) are read
    back instead of rerun: a killed benchmark resumes where it stopped."""
    from ..fitting.suite import build

    known = ("bbpes", "bluepyopt_ibea", "bluepyopt_cma", "jaxley_gd")
    tools = [t for t in config["tools"] if t]
    if any(t not in known for t in tools):
        raise ConfigError(f"unknown fit tool in {tools} (known: {', '.join(known)})")
    out: dict[str, Any] = {"load_average": load_average(), "problems": {}}
    recorded = read_record(config["record"])
    for problem in config["problems"]:
        truth = build(problem).truth
        runs: dict[str, list[dict]] = {tool: [] for tool in tools}
        for seed in range(config["seeds"]):  # rounds: every tool once per seed
            for tool in tools:
                settings = tool_settings(config, tool)
                key = (problem, tool, seed, json.dumps(settings, sort_keys=True))
                if key in recorded:
                    runs[tool].append(recorded[key])
                    continue
                if tool == "bbpes":
                    run = bbpes_run(config, problem, seed)
                elif tool == "jaxley_gd":
                    run = jaxley_run(config, python, problem, seed)
                else:
                    run = bluepyopt_run(config, python, problem, tool.split("_")[1], seed)
                if "log" in run:
                    curve = best_so_far(run.pop("log"), truth)
                    run |= to_tolerance(curve, config["tolerance"])
                    run["curve"] = curve[:: max(1, len(curve) // 200)] + curve[-1:]
                run["seed"] = seed
                runs[tool].append(run)
                if config["record"] and "error" not in run:
                    row = {"problem": problem, "tool": tool, "seed": seed}
                    row |= {"settings": settings, "run": run}
                    append_record(config["record"], row)
        summary = {}
        for tool, done in runs.items():
            ok = [r for r in done if r.get("success")]
            summary[tool] = {
                "runs": len(done),
                "errors": sum("error" in r for r in done),
                "success_rate": len(ok) / len(done) if done else None,
                "evaluations_to_tolerance": _spread([r["evaluations_to_tolerance"] for r in ok]),
                "seconds_to_tolerance": _spread([r["seconds_to_tolerance"] for r in ok]),
                "final_max_relative_error": _spread(
                    [r["final_max_relative_error"] for r in done if "curve" in r]
                ),
            }
        entry: dict[str, Any] = {"truth": truth, "summary": summary, "runs": runs}
        ours = summary.get("bbpes", {}).get("seconds_to_tolerance", {}).get("median")
        for tool in tools:
            theirs = summary[tool]["seconds_to_tolerance"]["median"]
            if tool != "bbpes" and ours and theirs:
                entry[f"bbpes_over_{tool}"] = theirs / ours
        out["problems"][problem] = entry
    if config["figure"]:
        out["figure"] = plot_fits(out, config["figure"], config["tolerance"])
    return out


COLOURS = {
    "bbpes": "tab:blue",
    "bluepyopt_ibea": "tab:orange",
    "bluepyopt_cma": "tab:green",
    "jaxley_gd": "tab:red",
}


def plot_fits(result: dict[str, Any], path: str, tolerance: float) -> str:
    """The largest relative parameter error of each method's best point so far against
    wall seconds (compilation left out), one panel per problem, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = result["problems"]
    fig, axes = plt.subplots(1, len(problems), figsize=(6 * len(problems), 4), squeeze=False)
    for ax, (problem, entry) in zip(axes[0], problems.items()):
        for tool, runs in entry["runs"].items():
            for k, run in enumerate(runs):
                curve = run.get("curve", [])
                if not curve:
                    continue
                ax.step(
                    [max(r["seconds"], 1e-3) for r in curve],
                    [max(r["error"], 1e-5) for r in curve],
                    where="post",
                    color=COLOURS.get(tool),
                    alpha=0.7,
                    label=tool if k == 0 else None,
                )
        ax.axhline(tolerance, color="grey", linestyle="--", linewidth=1)
        ax.set(xscale="log", yscale="log", title=problem, xlabel="wall seconds")
        ax.set_ylabel("max relative parameter error (best point so far)")
        ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
