"""`fit-neuron`: `fit` with NEURON itself as the simulator: a user's cell (a hoc
template or a Python builder, with `.mod` mechanisms compiled by `nrnivmodl`) built once
in each Ray worker, its features computed there by eFEL, fitted by any forward-only
signal (`es`, `evosax:CMA_ES` and the other evosax strategies).

The problem (`problem`: `hh`, Neuroptimus test case 1, or `simplecell`) gives the fitted
parameters with their bounds, the protocol and the true values; the target is NEURON's
own traces of the cell at the truth. `cell` names the cell (empty: NEURON's `hh` in a
soma of the problem's size), `mechanisms` its `.mod` directory, `parameters` what each
fitted parameter sets in NEURON (`gnabar=soma.gnabar_hh`; empty: `soma.NAME_hh`).
Training, budget, outputs and `--resume` are `fit`'s (`bbpes.fitting.training` and
`experiments/fit_report.py`): `fitted.json`, `features.json`/`.md`, `sweeps.png`,
`loss.png`, history, metrics, plus the Ray counts (workers, samples retried or lost). See `bbpes.blackbox` and
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
from ..fitting import suite, training
from ..framework import Experiment, Setting
from ..framework.checks import check_signals, require, signal_choices
from ..progress import log
from ..runs import RunDir
from .fit_report import fit_and_report


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
    require(
        config["workers"] <= config["samples"] * config["starts"] + 1,
        "workers must be <= samples x starts + 1 (the most samples evaluated at once)",
    )
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
        metrics = fit_and_report(config, problem, out)
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


SETTINGS = (
    Setting(
        "problem",
        "hh",
        "hh (Neuroptimus test case 1) or simplecell: parameters, bounds, protocol, truth",
    ),
    Setting(
        "method",
        training.METHOD,
        "a forward-only signal (es, evosax:CMA_ES, ...): NEURON gives losses, not gradients",
        choices=signal_choices(),
    ),
    *training.SETTINGS,
    *training.TARGET,
    Setting(
        "x64",
        False,
        "the search (z, the parameter values sent) in float64; NEURON runs in float64 always",
    ),
    Setting(
        "cell",
        "",
        "a .hoc file (with template), MODULE:FUNCTION or FILE.py:FUNCTION returning the "
        "soma; empty: NEURON's hh in a soma",
    ),
    Setting("template", "", "the hoc template of a .hoc cell"),
    Setting("mechanisms", "", "a directory of .mod files (compiled once by nrnivmodl)"),
    Setting(
        "parameters",
        [],
        "NAME=soma.VAR, NAME=all.VAR or NAME=h.GLOBAL per fitted parameter "
        "(empty: NAME=soma.NAME_hh)",
    ),
    Setting("celsius", 6.3, "temperature of every run", "°C", low=-273.15, high=100),
    Setting("v_init", -65.0, "initial voltage", "mV", low=-1000, high=1000),
    Setting(
        "workers", 0, "Ray workers (one CPU each)", low=0, zero="every free CPU of the cluster"
    ),
    Setting(
        "address",
        "",
        "an existing Ray cluster ('auto', 'ray://host:10001'); empty: a local one on 127.0.0.1",
    ),
    Setting("retries", 2, "tries again for a sample that fails (exception, timeout, NaN)", low=0),
    Setting(
        "timeout",
        0.0,
        "seconds one sample may run before its worker is replaced",
        "s",
        low=0,
        zero="no limit",
    ),
    *training.knob_settings(),
)
"""`fit`'s training settings (`bbpes.fitting.training`), the NEURON cell and the Ray
cluster."""

EXPERIMENT = Experiment(
    name="fit-neuron",
    summary="fit a NEURON cell (hoc or Python, .mod mechanisms) as a black box on a Ray cluster",
    run=run,
    settings=SETTINGS,
    check=check,
)
