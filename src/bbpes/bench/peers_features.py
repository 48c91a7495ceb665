"""Part `features` of `bbpes bench peers` (`bbpes.bench.peers`): features per second of
eFEL (serial and over a pool) against `bbpes.features.extract` jitted, over traces of
test case 1 simulated by bbpes, and the values compared feature by feature.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .peers_sim import jittered
from .peers_worker import Worker, rounds, timed_here, timed_peer
from .timing import load_average


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
                    "efel_serial": timed_peer(worker, "time serial"),
                    "efel_pool": timed_peer(worker, "time pool"),
                    "bbpes": timed_here(lambda: ours(v)),
                }
                load = load_average()
                timed = rounds(calls, config["repeat"])
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
