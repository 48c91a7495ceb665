"""Part `sim` of `bbpes bench peers` (`bbpes.bench.peers`): simulations per second of
Neuroptimus test case 1's soma by NEURON (one process and a pool), Jaxley and bbpes's
`simulate_population`, and each trace of parameter set 0 compared with NEURON's (RMSE
and the largest shift of a 0 mV crossing).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .peers_worker import Worker, rounds, timed_here, timed_peer
from .timing import load_average

TRUTH = (0.12, 0.036, 0.0003)  # S/cm²: NEURON's hh defaults (gnabar, gkbar, gl)
SIM_CLAMP = {"diam": 10.0, "L": 100.0, "amp": 0.3, "start": 20.0, "end": 180.0}
SIM_CLAMP |= {"duration": 200.0, "dt": 0.025}


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
        calls = {name: timed_peer(workers[name]) for name in specs}
        calls |= {name: timed_here(fn) for name, fn in ours.items()}
        load = load_average()
        timed = rounds(calls, config["repeat"])
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
