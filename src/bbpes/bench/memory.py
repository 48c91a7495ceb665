"""`bbpes bench memory`: peak memory of one learning-signal evaluation of the evidence
network, per method, as the trial grows; the measurement of the `memory` experiment
(`bbpes.experiments.memory`: XLA's buffer assignment of the compiled estimator, so
sizes beyond this machine's memory are predicted too), reported as JSON.

Target: ES memory flat in trial length (`growth_es`, longest over shortest, near 1);
BPTT's grows linearly, checkpointed BPTT's like the square root.
"""

from __future__ import annotations

from typing import Any

import jax

from ..experiments import memory
from ..experiments.base import methods_of
from ..progress import log
from . import Benchmark
from .timing import load_average

FLAT = 1.05
"""ES memory counts as flat when the longest trial needs at most 5% more than the shortest."""


def run(config: dict[str, Any]) -> dict[str, Any]:
    memory.check(config)
    lengths = [float(x) for x in config["lengths_ms"]]
    out: dict[str, Any] = {"load_average": load_average(), "measure": "XLA memory_analysis"}
    with jax.enable_x64(bool(config["x64"])):
        for method in methods_of(config, "method"):
            sizes = []
            for length in lengths:
                sub = memory.evidence_config(config, length)
                sizes.append(memory.peak_bytes(method, sub))
                out[f"peak_bytes_{method}_{length:g}ms"] = sizes[-1]
                if config["rss"]:  # measured in a fresh process, minus an idle one's
                    rss = memory.measured_rss(method, sub) - memory.measured_rss("none", sub)
                    out[f"rss_bytes_{method}_{length:g}ms"] = rss
                log(f"[memory] {method:18s} {length:6g} ms: {sizes[-1] / 1e6:10.1f} MB")
            out[f"growth_{method}"] = sizes[-1] / sizes[0]
    if "es" in methods_of(config, "method"):
        out["target_es_flat"] = out["growth_es"] <= FLAT
    return out


BENCHMARK = Benchmark(
    name="memory",
    summary="peak memory per learning signal (ES, BPTT, checkpointed BPTT, pnde) as trials grow",
    run=run,
    defaults={**memory.EXPERIMENT.defaults, "seed": 0},
    quick={**memory.EXPERIMENT.quick, "n_cells": 32, "batch": 16, "samples": 20},
)
