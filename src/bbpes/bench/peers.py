"""`bbpes bench peers`: bbpes side by side with the tools neuroscientists fit cells with
(issue 26), each comparison a ratio measured in one command.

The peers run in their own virtualenv (`.venv-peers`, made by `make peers`: NEURON,
Jaxley, eFEL, BluePyOpt) as subprocesses (`benchmarks/peers/*.py`) that are held open
and timed on request, so that the rounds alternate the tools and a change of the
shared machine's load falls on all alike; each rate is the median of the rounds.

Parts (`--set part=sim|features|fit|all`):

- `sim`: simulations per second of Neuroptimus test case 1's soma (NEURON's `hh`, diam
  10 µm, L 100 µm, 0.3 nA from 20 to 180 ms, 200 ms at dt 0.025 ms, V kept at every
  step) over `population` parameter sets (each of gnabar, gkbar, gl within ±10% of
  NEURON's defaults): NEURON's fixed step in one process and in a pool of one process
  per core (its rate counts `neuron_sims` runs per process), Jaxley's `jx.integrate`
  under `jax.vmap` over `data_set` parameters, and `simulate_population`, each in
  float32 and float64 (NEURON: float64 only). bbpes is timed with NEURON's rate table
  (`use_table`, NEURON's default and the fits') and with exact rates (Jaxley's `HH`
  computes them exactly; it has no table). The traces of parameter set 0 (the
  defaults) are compared against NEURON's with the matching rate setting: RMSE (mV)
  and the largest shift of a 0 mV crossing (ms).
- `features`: features per second over `traces` traces of test case 1 (1 s, V every
  0.1 ms, the fit's parameters ±10%, simulated by bbpes in float32): eFEL's one
  batched `get_feature_values` call (serial, and with `parallel_map` over a pool of one
  process per core) against `bbpes.features.extract` jitted (compilation reported
  apart); the values compared feature by feature.
- `fit`: Neuroptimus test case 1 (`hh`) and BluePyOpt's simplecell fitted to
  `tolerance` (every parameter of the method's own best point within 1% of the truth),
  `seeds` seeds per tool, a budget of `evaluations` simulations of the protocol, the
  tools run in turn seed by seed: `bbpes run fit` (`bbpes_method`, `bbpes_samples`,
  `bbpes_sigma`; its own simulator makes its target) and BluePyOpt's IBEA and CMA-ES
  on NEURON with eFEL (`benchmarks/peers/bluepyopt_fit.py`; NEURON makes its target;
  a BluePyOpt run stops when it reaches the tolerance), and, when `tools` names
  `jaxley_gd`, Jaxley's gradient descent (`benchmarks/peers/jaxley_fit.py`: Adam on
  bbpes's soft feature loss of Jaxley's trace, `jaxley_starts` x `jaxley_steps`, its
  budget in steps, not in `evaluations`). All score the same features with the same
  stds. Reported: success rate, evaluations and wall seconds to the
  tolerance (bbpes: compilation apart), median and range; `bbpes_over_TOOL` is TOOL's
  median seconds to the tolerance over ours. With `figure`, a plot of the best
  point's largest parameter error against wall seconds, one line per run.

Ratios are ours over theirs (larger is better for us); `*_cpu` ratios divide rates
per CPU-second (all of a tool's processes), steadier on a loaded machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..errors import ConfigError
from . import Benchmark
from .timing import load_average

ROOT = Path(__file__).resolve().parents[3]
PEERS = ROOT / "benchmarks" / "peers"
PARTS = ("sim", "features", "fit")
TRUTH = (0.12, 0.036, 0.0003)  # S/cm²: NEURON's hh defaults (gnabar, gkbar, gl)
SIM_CLAMP = {"diam": 10.0, "L": 100.0, "amp": 0.3, "start": 20.0, "end": 180.0}
SIM_CLAMP |= {"duration": 200.0, "dt": 0.025}


def peers_python(config: dict[str, Any]) -> Path:
    """The peers' interpreter (`config["peers_python"]`, by default `.venv-peers`)."""
    path = Path(config.get("peers_python") or ROOT / ".venv-peers" / "bin" / "python")
    if not path.exists():
        raise ConfigError(f"no peers virtualenv at {path}: run `make peers` first")
    return path


class Worker:
    """A peer script held open in `.venv-peers`: it prints one JSON line when ready, then
    one JSON line per command line it is sent (see `benchmarks/peers/sim_worker.py`)."""

    def __init__(self, python: Path, script: str, *args: str, timeout: float = 600.0):
        self.timeout = timeout
        self._err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close)
        self.process = subprocess.Popen(
            [str(python), str(PEERS / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            cwd=ROOT,
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=self.timeout)
            self._err.seek(0)
            tail = self._err.read().strip().splitlines()[-5:]
            raise RuntimeError(f"peer worker failed: {' | '.join(tail) or 'no output'}")
        return json.loads(line)

    def ask(self, command: str) -> dict[str, Any]:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self._err):
            with contextlib.suppress(OSError):
                stream.close()


def _rounds(calls: dict[str, Callable[[], tuple[float, float]]], repeat: int) -> dict:
    """`repeat` rounds calling each of `calls` in turn (each returns its wall and CPU
    seconds); per call the median wall and CPU seconds and every round's wall seconds."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(repeat, 1)):
        for name, call in calls.items():
            w, c = call()
            wall[name].append(w)
            cpu[name].append(c)
    return {
        name: {
            "seconds": statistics.median(wall[name]),
            "cpu_seconds": statistics.median(cpu[name]),
            "rounds": wall[name],
        }
        for name in calls
    }


def _timed_here(fn: Callable[[], Any]) -> Callable[[], tuple[float, float]]:
    def call() -> tuple[float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - t0, time.process_time() - c0

    return call


def _timed_peer(worker: Worker, command: str = "time") -> Callable[[], tuple[float, float]]:
    def call() -> tuple[float, float]:
        out = worker.ask(command)
        return out["seconds"], out["cpu_seconds"]

    return call


def crossings(v: np.ndarray, dt: float) -> np.ndarray:
    """Upward 0 mV crossings of `v` (ms), linearly interpolated."""
    v = np.asarray(v, np.float64)
    i = np.flatnonzero((v[:-1] < 0.0) & (v[1:] >= 0.0))
    return (i + (0.0 - v[i]) / (v[i + 1] - v[i])) * dt


def trace_agreement(v: np.ndarray, reference: np.ndarray, dt: float) -> dict[str, Any]:
    """RMSE (mV) of `v` against `reference` (same sampling), both spike counts, and the
    largest shift of a 0 mV crossing (ms; None when the counts differ)."""
    v, reference = np.asarray(v, np.float64), np.asarray(reference, np.float64)
    n = min(v.size, reference.size)
    a, b = crossings(v[:n], dt), crossings(reference[:n], dt)
    return {
        "rmse_mV": float(np.sqrt(np.mean((v[:n] - reference[:n]) ** 2))),
        "spikes": int(a.size),
        "reference_spikes": int(b.size),
        "max_spike_shift_ms": float(np.max(np.abs(a - b), initial=0.0))
        if a.size == b.size
        else None,
    }


def jittered(n: int, seed: int, truth=TRUTH, spread: float = 0.1) -> np.ndarray:
    """`(n, len(truth))` parameter sets, each within ±`spread` of `truth`; row 0 is
    `truth` itself."""
    rng = np.random.default_rng(seed)
    values = np.asarray(truth) * rng.uniform(1 - spread, 1 + spread, (n, len(truth)))
    values[0] = truth
    return values


# --- part 1: simulations per second ----------------------------------------------------


def _bbpes_sim(values: np.ndarray, *, float64: bool, use_table: bool):
    """A zero-argument call simulating every row of `values` with `simulate_population`
    (V at every step), and one returning row 0's trace in float64."""
    import jax.numpy as jnp

    from ..fitting import CurrentClamp, simulate_population
    from ..fitting.suite import HH_SPACE
    from ..neurons import NeuronHH

    c = SIM_CLAMP
    protocol = CurrentClamp(
        amplitudes=(c["amp"],), start=c["start"], end=c["end"], duration=c["duration"], dt=c["dt"]
    )
    with jax.enable_x64(float64):
        dtype = jnp.float64 if float64 else jnp.float32
        cells = HH_SPACE.cells(
            NeuronHH(diam=c["diam"], L=c["L"], use_table=use_table), jnp.asarray(values, dtype)
        )

    def run():
        with jax.enable_x64(float64):
            return simulate_population(cells, protocol)

    return run


def sim_part(config: dict[str, Any], python: Path) -> dict[str, Any]:
    population, per_process = config["population"], config["neuron_sims"]
    processes = config["processes"] or os.cpu_count() or 1
    values = jittered(population, config["seed"])
    base = {**SIM_CLAMP, "params": values.tolist(), "usetable": 1, "float64": False}
    specs = {
        "neuron": ("neuron", {**base, "n": per_process}),
        "neuron_pool": ("neuron_pool", {**base, "n": per_process * processes}),
        "jaxley_f32": ("jaxley", {**base, "n": population}),
        "jaxley_f64": ("jaxley", {**base, "n": population, "float64": True}),
    }
    specs["neuron_pool"][1]["processes"] = processes
    workers: dict[str, Worker] = {}
    try:
        for name, (tool, cfg) in specs.items():
            workers[name] = Worker(python, "sim_worker.py", tool, json.dumps(cfg))
        exact = Worker(
            python, "sim_worker.py", "neuron", json.dumps({**base, "n": 1, "usetable": 0})
        )
        workers["neuron_exact"] = exact
        ours = {
            "bbpes_f32": _bbpes_sim(values, float64=False, use_table=True),
            "bbpes_f32_exact": _bbpes_sim(values, float64=False, use_table=False),
            "bbpes_f64": _bbpes_sim(values, float64=True, use_table=True),
        }
        first = {}
        for name, fn in ours.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            first[name] = time.perf_counter() - t0
        calls = {name: _timed_peer(workers[name]) for name in specs}
        calls |= {name: _timed_here(fn) for name, fn in ours.items()}
        load = load_average()
        timed = _rounds(calls, config["repeat"])
        counts = {name: cfg["n"] for name, (_, cfg) in specs.items()} | dict.fromkeys(
            ours, population
        )
        tools = {}
        for name, t in timed.items():
            tools[name] = {
                "sims": counts[name],
                "sims_per_s": counts[name] / t["seconds"],
                "sims_per_cpu_s": counts[name] / t["cpu_seconds"] if t["cpu_seconds"] else None,
                **t,
            }
            if name in workers:
                tools[name]["setup_seconds"] = workers[name].ready["setup_seconds"]
                tools[name]["first_seconds"] = workers[name].ready["first_seconds"]
            else:
                tools[name]["first_seconds"] = first[name]
        versions = {"neuron": workers["neuron"].ready["version"]}
        versions["jaxley"] = workers["jaxley_f32"].ready["version"]
        # the same cell, three simulators: parameter set 0 against NEURON's trace
        dt = SIM_CLAMP["dt"]
        ref = {"table": np.asarray(workers["neuron"].ask("trace 0")["v"])}
        ref["exact"] = np.asarray(exact.ask("trace 0")["v"])
        traces = {
            "jaxley_f32": ("exact", workers["jaxley_f32"].ask("trace 0")["v"]),
            "jaxley_f64": ("exact", workers["jaxley_f64"].ask("trace 0")["v"]),
            "bbpes_f32": ("table", np.asarray(ours["bbpes_f32"]()[0, 0])),
            "bbpes_f32_exact": ("exact", np.asarray(ours["bbpes_f32_exact"]()[0, 0])),
            "bbpes_f64": ("table", np.asarray(ours["bbpes_f64"]()[0, 0])),
        }
        agreement = {
            name: {"against": f"neuron_{kind}", **trace_agreement(v, ref[kind], dt)}
            for name, (kind, v) in traces.items()
        }
        agreement["neuron_table_vs_exact"] = trace_agreement(ref["table"], ref["exact"], dt)
    finally:
        for worker in workers.values():
            worker.close()

    rate = {name: t["sims_per_s"] for name, t in tools.items()}
    cpu_rate = {name: t["sims_per_cpu_s"] for name, t in tools.items()}
    out: dict[str, Any] = {
        "load_average": load,
        "versions": versions,
        "population": population,
        "tools": tools,
        "traces": agreement,
    }
    for ours_name, theirs in [
        ("bbpes_f32", "jaxley_f32"),
        ("bbpes_f32_exact", "jaxley_f32"),
        ("bbpes_f64", "jaxley_f64"),
        ("bbpes_f32", "neuron"),
        ("bbpes_f64", "neuron"),
        ("bbpes_f32", "neuron_pool"),
        ("bbpes_f64", "neuron_pool"),
    ]:
        out[f"{ours_name}_over_{theirs}"] = rate[ours_name] / rate[theirs]
        if cpu_rate[ours_name] and cpu_rate[theirs]:
            out[f"{ours_name}_over_{theirs}_cpu"] = cpu_rate[ours_name] / cpu_rate[theirs]
    out["jaxley_f32_over_neuron"] = rate["jaxley_f32"] / rate["neuron"]
    out["target_2x_jaxley"] = out["bbpes_f32_over_jaxley_f32"] >= 2.0
    out["target_100x_neuron_per_core"] = out["bbpes_f32_over_neuron"] >= 100.0
    return out


# --- part 2: features per second -------------------------------------------------------


def feature_traces(n: int, seed: int) -> tuple[np.ndarray, Any]:
    """`(n, T)` float32 traces of test case 1 (V every 0.1 ms, 1 s), parameters within
    ±10% of the truth, and the fit's protocol."""
    import jax.numpy as jnp

    from ..fitting import simulate_population
    from ..fitting.suite import HH_SPACE, _hh

    cell, _, protocol, truth, _ = _hh()
    with jax.enable_x64(False):
        values = jnp.asarray(jittered(n, seed, truth), jnp.float32)
        v = simulate_population(HH_SPACE.cells(cell, values), protocol)
    return np.asarray(v[:, 0]), protocol


def compare_values(ours: dict[str, np.ndarray], theirs: dict[str, list]) -> dict[str, Any]:
    """Per feature: traces where both define it, where only one does, and where both
    do the largest relative difference |ours - theirs| / max(|theirs|, 1e-12) (large
    for a value near 0, e.g. ISI_CV of a regular train) and absolute difference."""
    rows = {}
    for name, mine in ours.items():
        mine = np.asarray(mine, np.float64)
        other = np.array([np.nan if x is None else x for x in theirs[name]], np.float64)
        both = np.isfinite(mine) & np.isfinite(other)
        rel = np.abs(mine[both] - other[both]) / np.maximum(np.abs(other[both]), 1e-12)
        rows[name] = {
            "both_defined": int(both.sum()),
            "only_one_defined": int((np.isfinite(mine) ^ np.isfinite(other)).sum()),
            "max_relative_difference": float(rel.max()) if rel.size else None,
            "median_relative_difference": float(np.median(rel)) if rel.size else None,
            "max_absolute_difference": float(np.max(np.abs(mine[both] - other[both])))
            if rel.size
            else None,
        }
    return rows


def features_part(config: dict[str, Any], python: Path) -> dict[str, Any]:
    from ..features import extract
    from ..fitting.suite import DEFAULT_FEATURES

    names = tuple(name for name in config["features"] if name) or DEFAULT_FEATURES
    n = config["traces"]
    voltage, protocol = feature_traces(n, config["seed"])
    dt = protocol.dt * protocol.record_every
    processes = config["processes"] or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bbpes-peers-") as directory:
        path = Path(directory) / "traces.npy"
        np.save(path, voltage)
        spec = {"traces": str(path), "dt": dt, "stim_start": protocol.start}
        spec |= {"stim_end": protocol.end, "names": list(names), "processes": processes}
        worker = Worker(python, "efel_worker.py", json.dumps(spec))
        try:
            with jax.enable_x64(False):
                v = jax.numpy.asarray(voltage)
                ours = jax.jit(lambda v: extract(v, dt, protocol.start, protocol.end, names))
                t0 = time.perf_counter()
                values = jax.block_until_ready(ours(v))
                compile_seconds = time.perf_counter() - t0
                calls = {
                    "efel_serial": _timed_peer(worker, "time serial"),
                    "efel_pool": _timed_peer(worker, "time pool"),
                    "bbpes": _timed_here(lambda: ours(v)),
                }
                load = load_average()
                timed = _rounds(calls, config["repeat"])
            theirs = worker.ask("values")
            efel_first = worker.ready["first_seconds"]
            version = worker.ready["version"]
        finally:
            worker.close()
    tools = {}
    for name, t in timed.items():
        tools[name] = {
            "traces_per_s": n / t["seconds"],
            "features_per_s": n * len(names) / t["seconds"],
            "traces_per_cpu_s": n / t["cpu_seconds"] if t["cpu_seconds"] else None,
            **t,
        }
    tools["bbpes"]["compile_seconds"] = compile_seconds
    tools["efel_serial"]["first_seconds"] = efel_first
    best = max(("efel_serial", "efel_pool"), key=lambda k: tools[k]["traces_per_s"])
    out: dict[str, Any] = {
        "load_average": load,
        "efel_version": version,
        "traces": n,
        "features": list(names),
        "tools": tools,
        "values": compare_values({k: np.asarray(x) for k, x in values.items()}, theirs),
        "efel_best": best,
        "bbpes_over_efel_serial": tools["efel_serial"]["seconds"] / tools["bbpes"]["seconds"],
        "bbpes_over_efel_pool": tools["efel_pool"]["seconds"] / tools["bbpes"]["seconds"],
        "bbpes_over_efel": tools[best]["seconds"] / tools["bbpes"]["seconds"],
    }
    if tools["bbpes"]["cpu_seconds"] and tools["efel_serial"]["cpu_seconds"]:
        out["bbpes_over_efel_serial_cpu"] = (
            tools["efel_serial"]["cpu_seconds"] / tools["bbpes"]["cpu_seconds"]
        )
    out["target_100x_efel"] = out["bbpes_over_efel"] >= 100.0
    return out


# --- the benchmark ---------------------------------------------------------------------


def run(config: dict[str, Any]) -> dict[str, Any]:
    parts = PARTS if config["part"] == "all" else (config["part"],)
    if any(part not in PARTS for part in parts):
        raise ConfigError(f"unknown part {config['part']!r} (sim, features, fit or all)")
    python = peers_python(config)
    out: dict[str, Any] = {"load_average": load_average(), "peers_python": str(python)}
    for part in parts:
        t0 = time.perf_counter()
        if part == "sim":
            out["sim"] = sim_part(config, python)
        elif part == "features":
            out["features"] = features_part(config, python)
        else:
            out["fit"] = fit_part(config, python)
        out[part]["part_seconds"] = time.perf_counter() - t0
    out["load_average_end"] = load_average()
    return out


DEFAULTS: dict[str, Any] = {
    "part": "all",
    "seed": 0,
    "repeat": 3,
    "processes": 0,  # 0: one per core
    "peers_python": "",
    # sim
    "population": 1000,
    "neuron_sims": 20,
    # features
    "traces": 1000,
    "features": [""],
    # fit
    "problems": ["hh", "simplecell"],
    "tools": ["bbpes", "bluepyopt_ibea", "bluepyopt_cma"],
    "seeds": 3,
    "evaluations": 1000,
    "bluepyopt_offspring": 10,
    "bbpes_method": "evosax:CMA_ES",
    "bbpes_samples": 10,
    "bbpes_sigma": 1.0,
    "tolerance": 0.01,
    "jaxley_starts": 2,
    "jaxley_steps": 150,
    "jaxley_lr": 0.1,
    "fit_timeout": 1800,
    "figure": "",
}

BENCHMARK = Benchmark(
    name="peers",
    summary="bbpes vs NEURON, Jaxley, eFEL and BluePyOpt: simulations/s, features/s, fits",
    run=run,
    defaults=DEFAULTS,
    quick={
        "repeat": 2,
        "population": 100,
        "neuron_sims": 5,
        "traces": 100,
        "seeds": 1,
        "evaluations": 100,
        "problems": ["simplecell"],
    },
)


# --- part 3: fitting to 1% -------------------------------------------------------------


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
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(python), str(PEERS / "bluepyopt_fit.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=config["fit_timeout"],
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": " | ".join(tail)[:500]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log = [[t, loss, k + 1, *p] for k, (t, loss, *p) in enumerate(result.pop("log"))]
    return {**result, "log": log, "process_seconds": time.perf_counter() - t0}


def jaxley_run(config, python: Path, problem: str, seed: int) -> dict:
    """One Jaxley gradient-descent fit (`benchmarks/peers/jaxley_fit.py`: `jaxley_starts`
    starts of `jaxley_steps` Adam steps at `jaxley_lr`, stopping at the tolerance), its
    log as rows `[seconds, soft loss, evaluations, *parameters]` (a step counts its
    measured cost in forward runs)."""
    spec = {"problem": problem, "seed": seed, "starts": config["jaxley_starts"]}
    spec |= {"steps": config["jaxley_steps"], "lr": config["jaxley_lr"]}
    spec |= {"tolerance": config["tolerance"]}
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(python), str(PEERS / "jaxley_fit.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=config["fit_timeout"],
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": " | ".join(tail)[:500]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "process_seconds": time.perf_counter() - t0}


def bbpes_run(config, problem: str, seed: int) -> dict:
    """One `bbpes run fit` (in this process), its history as rows `[seconds, hard loss,
    evaluations, *parameters]`; `seconds` counts the steps' wall time without the
    first step's compilation."""
    from ..experiments import fit as fit_experiment
    from ..fitting.suite import build
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
    names = build(problem).space.names
    with tempfile.TemporaryDirectory(prefix="bbpes-peers-fit-") as directory:
        t0 = time.perf_counter()
        metrics = fit_experiment.run({**fit_experiment.DEFAULTS, **settings}, RunDir(directory))
        wall = time.perf_counter() - t0
        records = RunDir(directory).read_history(lambda r: "hard_loss" in r)
    compile_seconds = sum(r.get("compile_seconds", 0.0) for r in records)
    per_step = metrics["cost_per_step"] + 1.0
    log = [
        [
            r.get("seconds", 0.0) - compile_seconds,
            r["hard_loss"],
            r["step"] * per_step,
            *(r[f"value_{n}"] for n in names),
        ]
        for r in records
    ]
    keep = ("cost_per_step", "timing_compile_seconds", "timing_forward_seconds")
    return {
        "log": log,
        "compile_seconds": compile_seconds,
        "process_seconds": wall,
        "settings": settings,
        **{k: metrics[k] for k in keep if k in metrics},
    }


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fit_part(config: dict[str, Any], python: Path) -> dict[str, Any]:
    from ..fitting.suite import build

    known = ("bbpes", "bluepyopt_ibea", "bluepyopt_cma", "jaxley_gd")
    tools = [t for t in config["tools"] if t]
    if any(t not in known for t in tools):
        raise ConfigError(f"unknown fit tool in {tools} (known: {', '.join(known)})")
    out: dict[str, Any] = {"load_average": load_average(), "problems": {}}
    for problem in config["problems"]:
        truth = build(problem).truth
        runs: dict[str, list[dict]] = {tool: [] for tool in tools}
        for seed in range(config["seeds"]):  # rounds: every tool once per seed
            for tool in tools:
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
