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
  `jaxley_gd`, Jaxley's gradient descent (`benchmarks/peers/jaxley_fit.py`: Adam at
  `jaxley_lr` on `jaxley_loss` of Jaxley's trace, `mse` (the traces' mean squared
  error, the tuned best) or `features` (bbpes's soft feature loss), `jaxley_starts` x
  `jaxley_steps`, its budget in steps, not in `evaluations`). The others score the
  same features with the same stds. With `record` (a JSON-lines file) every finished
  run is appended and runs already there with the same settings are read back, so a
  killed benchmark resumes and one command can summarise runs made in several. Reported: success rate, evaluations and wall seconds to the
  tolerance (bbpes: compilation apart), median and range; `bbpes_over_TOOL` is TOOL's
  median seconds to the tolerance over ours. With `figure`, a plot of the best
  point's largest parameter error against wall seconds, one line per run.

Ratios are ours over theirs (larger is better for us); `*_cpu` ratios divide rates
per CPU-second (all of a tool's processes), steadier on a loaded machine.

This module is the entry point (settings, the parts in turn, the report); the parts are
`peers_sim`, `peers_features` and `peers_fit`, the worker plumbing they share
`peers_worker`. Their public names are importable from here.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import ConfigError
from . import Benchmark
from .peers_features import compare_values, feature_traces, features_part
from .peers_fit import (
    COLOURS,
    bbpes_run,
    best_so_far,
    bluepyopt_run,
    fit_part,
    jaxley_run,
    plot_fits,
    to_tolerance,
)
from .peers_sim import SIM_CLAMP, TRUTH, crossings, jittered, sim_part, trace_agreement
from .peers_worker import PEERS, ROOT, Worker, peers_python
from .timing import load_average

__all__ = [
    "BENCHMARK",
    "COLOURS",
    "DEFAULTS",
    "PARTS",
    "PEERS",
    "ROOT",
    "SIM_CLAMP",
    "TRUTH",
    "Worker",
    "bbpes_run",
    "best_so_far",
    "bluepyopt_run",
    "compare_values",
    "crossings",
    "feature_traces",
    "features_part",
    "fit_part",
    "jaxley_run",
    "jittered",
    "peers_python",
    "plot_fits",
    "run",
    "sim_part",
    "to_tolerance",
    "trace_agreement",
]

PARTS = ("sim", "features", "fit")


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
    "jaxley_lr": 0.3,  # tuned on simplecell seeds 0-1 (benchmarks/README.md)
    "jaxley_loss": "mse",
    "fit_timeout": 1800,
    "figure": "",
    "record": "",
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
