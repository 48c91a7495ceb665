"""`bbpes bench memory`: peak memory of one learning-signal evaluation of the evidence
network, per method, as the trial grows, reported as JSON: the measurement of the
`memory` experiment (`bbpes.tasks.evidence_memory`: XLA's buffer assignment of the
compiled estimator, so sizes beyond this machine's memory are predicted too; with `rss`,
the resident memory of a fresh process), with its settings and checks.

Target: ES memory flat in trial length (`growth_es`, longest over shortest, near 1);
BPTT's grows linearly, checkpointed BPTT's like the square root.
"""

from __future__ import annotations

from typing import Any

import jax

from ..experiments.memory import EXPERIMENT
from ..framework.checks import methods_of
from ..tasks.evidence_memory import sweep
from . import Benchmark
from .timing import load_average

FLAT = 1.05
"""ES memory counts as flat when the longest trial needs at most 5% more than the shortest."""


def run(config: dict[str, Any]) -> dict[str, Any]:
    for key, value in config.items():  # the experiment's ranges, then its checks
        EXPERIMENT.setting(key).check(value)
    EXPERIMENT.check(config)
    methods = methods_of(config, "method")
    out: dict[str, Any] = {"load_average": load_average(), "measure": "XLA memory_analysis"}
    with jax.enable_x64(bool(config["x64"])):
        out.update(sweep(config, methods).metrics())
    if "es" in methods:
        out["target_es_flat"] = out["growth_es"] <= FLAT
    return out


BENCHMARK = Benchmark(
    name="memory",
    summary="peak memory per learning signal (ES, BPTT, checkpointed BPTT, pnde) as trials grow",
    run=run,
    defaults=EXPERIMENT.defaults,
    quick={**EXPERIMENT.quick, "n_cells": 32, "batch": 16, "samples": 20},
)
