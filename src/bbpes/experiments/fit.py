"""`fit`: fit a cell model's conductances to current-clamp recordings (or to a
ground-truth target simulated from known parameters) with any learning signal of
`bbpes.signals`, and report how good the fit is and what it cost.

Problems (`problem`): `hh` (Neuroptimus test case 1: NEURON's `hh` soma, gnabar, gkbar,
gl), `simplecell` (BluePyOpt's two-step example: gnabar, gkbar), `pospischil` (the
Pospischil et al. 2008 cortical model, 8 parameters, 4 step amplitudes), and
`recording` (the Pospischil model fitted to the files named by `recording`, e.g. cell
B6 of `../shared/data/ephys/bluepyefe`). See `bbpes.fitting.suite` and docs/fitting.md.

The budget is `evaluations`: simulations of the whole protocol (a gradient step counts
the forward runs its wall time is worth, measured and stored in `calibration.json`);
every iteration the centre of the search is scored on the hard loss, and the best
centre is reported. With `starts` > 1, that many independent fits from different
starting points run as one vmapped program on the same total budget, and the best of
them is reported. Training is `bbpes.fitting.training`'s, the outputs
`experiments/fit_report.py`'s (shared with `fit-neuron`).

Outputs: `fitted.json` (parameters with units, the truth and relative errors where
known), `features.json` and `features.md` (target, fitted value and z-score of every
feature of every sweep), `sweeps.png` (model against target per sweep), `loss.png`
(loss against evaluations and against seconds), and the usual config, history and
metrics.
"""

from __future__ import annotations

from typing import Any

import jax

from ..fitting import suite, training
from ..framework import Experiment, Setting
from ..framework.checks import check_signals, require, signal_choices
from ..runs import RunDir
from .fit_report import fit_and_report


def check(config: dict[str, Any]) -> None:
    suite.check_features(config["features"])
    if config["problem"] != "recording":
        for key in ("recording", "recording_current"):
            require(not config[key], f"{key} is read only with problem=recording")
    if config["problem"] == "recording":
        require(bool(config["recording"]), "problem=recording needs --set recording=FILES")
        suite.read(config["recording"], config["recording_current"], ljp=config["ljp"])
    check_signals(config, "method", training.FORMS, "a fit")


def run(config: dict[str, Any], out: RunDir) -> dict[str, Any]:
    """The fit `config` describes (`bbpes.fitting.training.build`), trained and
    reported into `out`."""
    with jax.enable_x64(bool(config["x64"])):
        return fit_and_report(config, training.build(config), out)


SETTINGS = (
    training.PROBLEM[0],  # problem
    Setting(
        "method",
        training.METHOD,
        "the learning signal (any of `bbpes show signals`)",
        choices=signal_choices(),
    ),
    *training.SETTINGS,
    *training.TARGET,
    *training.PROBLEM[1:],
    Setting("x64", False, "simulate and fit in float64"),
    *training.knob_settings(),
)
"""The fit (`bbpes.fitting.training.PROBLEM`, `TARGET`), the signal and how it trains
(`SETTINGS`, the signal knobs)."""

EXPERIMENT = Experiment(
    name="fit",
    summary="fit a cell model to current-clamp recordings or a ground truth with any learning signal",
    run=run,
    settings=SETTINGS,
    check=check,
)
