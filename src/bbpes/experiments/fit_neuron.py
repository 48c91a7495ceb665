"""`fit-neuron`: `fit` with NEURON itself as the simulator: a user's cell (a hoc
template or a Python builder, with `.mod` mechanisms compiled by `nrnivmodl`) built once
in each Ray worker, its features computed there by eFEL, fitted by any forward-only
signal (`es`, `evosax:CMA_ES` and the other evosax strategies).

The problem (`problem`: `hh`, Neuroptimus test case 1, or `simplecell`) gives the fitted
parameters with their bounds, the protocol and the true values; the target is NEURON's
own traces of the cell at the truth. `cell` names the cell (empty: NEURON's `hh` in a
soma of the problem's size), `mechanisms` its `.mod` directory, `parameters` what each
fitted parameter sets in NEURON (`gnabar=soma.gnabar_hh`; empty: `soma.NAME_hh`).
Training, budget, outputs and `--resume` are `fit`'s (`bbpes.experiments.fit`):
`fitted.json`, `features.json`/`.md`, `sweeps.png`, `loss.png`, history, metrics, plus
the Ray counts (workers, samples retried or lost). See `bbpes.blackbox` and
docs/scaling.md, "Fit your NEURON model on a cluster".

    bbpes run fit-neuron --set cell=examples/neuron_cell/cell.hoc --set template=HHSoma \\
        --set mechanisms=examples/neuron_cell/mechanisms \\
        --set parameters=gnabar=soma.gnabar_userhh,gkbar=soma.gkbar_userhh,gl=soma.gl_userhh
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from ..blackbox._neuron import INSTALL, installed
from ..blackbox.fit import PROBLEMS, default_parameters, refused_signals, suite_problem
from ..blackbox.neuron_cell import NeuronCell, parse_parameters
from ..fitting import suite
from ..progress import log
from ..runs import RunDir
from . import fit
from .base import (
    Experiment,
    check_signals,
    require,
    require_at_least,
    require_positive,
    signal_choices,
    signal_help,
    signal_settings,
)

TRAINING = (
    "method", "evaluations", "samples", "sigma", "lr", "lr_es", "clip", "starts", "features",
    "noise", "tolerance", "relative_std", "x64",
)  # fmt: skip
"""The settings of `fit` this experiment takes as they are."""

DEFAULTS = signal_settings(
    {
        "problem": "hh",
        **{k: fit.DEFAULTS[k] for k in TRAINING},
        "cell": "",
        "template": "",
        "mechanisms": "",
        "parameters": [],
        "celsius": 6.3,
        "v_init": -65.0,
        "workers": 0,
        "address": "",
        "retries": 2,
        "timeout": 0.0,
    }
)

HELP = signal_help(
    {
        **{k: fit.HELP[k] for k in TRAINING},
        "problem": "hh (Neuroptimus test case 1) or simplecell: parameters, bounds, protocol, truth",
        "x64": "the search (z, the parameter values sent) in float64; NEURON runs in float64 always",
        "method": "a forward-only signal (es, evosax:CMA_ES, ...): NEURON gives losses, not gradients",
        "cell": "a .hoc file (with template), MODULE:FUNCTION or FILE.py:FUNCTION returning the soma; empty: NEURON's hh in a soma",
        "template": "the hoc template of a .hoc cell",
        "mechanisms": "a directory of .mod files (compiled once by nrnivmodl)",
        "parameters": "NAME=soma.VAR, NAME=all.VAR or NAME=h.GLOBAL per fitted parameter (empty: NAME=soma.NAME_hh)",
        "celsius": "temperature (°C) of every run",
        "v_init": "initial voltage (mV)",
        "workers": "Ray workers (one CPU each); 0: every free CPU of the cluster",
        "address": "an existing Ray cluster ('auto', 'ray://host:10001'); empty: a local one on 127.0.0.1",
        "retries": "tries again for a sample that fails (exception, timeout, NaN)",
        "timeout": "seconds one sample may run before its worker is replaced (0: no limit)",
    }
)

QUICK = fit.QUICK


def make_cell(config: dict[str, Any]) -> NeuronCell:
    """The `NeuronCell` of `config` (`ConfigError` for a bad one; NEURON not imported)."""
    space, _, _, jax_cell = suite_problem(config["problem"])
    builtin = not config["cell"].strip()
    parameters = parse_parameters(config["parameters"]) or default_parameters(space)
    cell = NeuronCell(
        source=config["cell"],
        template=config["template"],
        mechanisms=config["mechanisms"],
        parameters=parameters,
        celsius=config["celsius"],
        v_init=config["v_init"],
        options=(("diam", float(jax_cell.diam)), ("L", float(jax_cell.L))) if builtin else (),
    )
    require(
        cell.names == space.names,
        f"parameters maps {', '.join(cell.names)}; problem {config['problem']} fits "
        f"{', '.join(space.names)} (one NAME=TARGET each)",
    )
    return cell


def check(config: dict[str, Any]) -> None:
    require(
        installed() and importlib.util.find_spec("ray") is not None,
        f"fit-neuron needs NEURON, eFEL and Ray: {INSTALL}",
    )
    require(
        config["problem"] in PROBLEMS,
        f"unknown problem {config['problem']!r} for a NEURON fit (choose from {', '.join(PROBLEMS)})",
    )
    require_at_least(config, 1, "evaluations", "starts")
    require_positive(config, "sigma", "lr", "lr_es", "tolerance", "relative_std")
    require(config["noise"] >= 0, "noise must be >= 0")
    require(config["clip"] >= 0, "clip must be >= 0 (0: no gradient clip)")
    require(config["workers"] >= 0, "workers must be >= 0 (0: every free CPU)")
    require(
        config["workers"] <= config["samples"] * config["starts"] + 1,
        "workers must be <= samples x starts + 1 (the most samples evaluated at once)",
    )
    require(config["retries"] >= 0, "retries must be >= 0")
    require(config["timeout"] >= 0, "timeout must be >= 0 (0: no limit)")
    require(-273.15 < config["celsius"] <= 100, "celsius must be in (-273.15, 100] °C")
    require(abs(config["v_init"]) <= 1000, "v_init must be within ±1000 mV")
    require(
        re.fullmatch(r"|auto|(ray://)?[\w.\-]+:\d+", config["address"]) is not None,
        f"address {config['address']!r} is not '', 'auto', 'host:port' or 'ray://host:port'",
    )
    suite.check_features(config["features"])
    refused = refused_signals()
    refused["guided_es"] = "guided_es needs a surrogate gradient; a NEURON black box has none"
    check_signals(config, "method", ("loss",), "a NEURON fit", refused)
    make_cell(config)


def run(config: dict[str, Any], out: RunDir) -> dict[str, Any]:
    from ..blackbox.fit import neuron_fit

    space, protocol, truth, _ = suite_problem(config["problem"])
    cell = make_cell(config)
    evaluator = {
        "workers": config["workers"] or None,
        "address": config["address"] or None,
        "retries": config["retries"],
        "timeout": config["timeout"] or None,
    }
    problem = neuron_fit(
        cell,
        space,
        protocol,
        truth=truth,
        features=config["features"],
        relative_std=config["relative_std"],
        noise=config["noise"],
        seed=config["seed"],
        name=config["problem"],
        evaluator=evaluator,
    )
    with problem:
        workers = problem.evaluator.workers
        log(f"fit-neuron: {cell.source} on {workers} Ray workers")
        metrics = fit.run(config, out, fit=problem)
        stats = problem.evaluator.stats
    return {
        **metrics,
        "simulator": "NEURON",
        "workers": workers,
        "nodes": len(problem.evaluator.samples_per_node),
        "samples_evaluated": stats.evaluated,
        "samples_retried": stats.retried,
        "samples_failed": stats.failed,
        "samples_timed_out": stats.timed_out,
        "samples_lost": stats.lost,
        "workers_replaced": stats.workers_replaced,
    }


EXPERIMENT = Experiment(
    name="fit-neuron",
    summary="fit a NEURON cell (hoc or Python, .mod mechanisms) as a black box on a Ray cluster",
    run=run,
    defaults=DEFAULTS,
    quick=QUICK,
    choices={"method": signal_choices()},
    check=check,
    help=HELP,
)
