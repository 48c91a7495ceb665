"""The fitting problems of the study (`fit_hh`, `fit_pospischil`, `fit_real`): a cell
fitted to a target by every signal at an equal wall budget.

Each run starts from its own point drawn in the bounds (the same for every signal).
Validation is the hard loss (eFEL z-scores: what a user of a recording can see), so a
signal's step size is selected without the truth; the test metric of the ground-truth
regimes is the largest relative parameter error (target 0.01, the 1% criterion), and
of `fit_real` the hard loss itself (validation = test: one recording, as ROBER).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np

from ...fitting import suite
from ..problem import Problem

SIGNALS = (
    "es",
    "guided_es",
    "evosax:CMA_ES",
    "evosax:Sep_CMA_ES",
    "evosax:SNES",
    "evosax:xNES",
    "evosax:SimpleGA",
    "bptt_surrogate",
    "bptt",
)
"""The signals that compete on a fit."""

SAMPLES = {"tiny": 4, "quick": 10, "reduced": 10, "paper": 20}
"""The population per scale."""

B6 = tuple(f"B6_Ch3_IDRest_{k}.ibw" for k in range(181, 186))
B6_CURRENT = tuple(f"B6_Ch0_IDRest_{k}.ibw" for k in range(181, 186))


def ephys_dir() -> Path:
    """Where the real recordings are: `BBPES_EPHYS`, else `../shared/data/ephys` of
    the source checkout."""
    if "BBPES_EPHYS" in os.environ:
        return Path(os.environ["BBPES_EPHYS"])
    return Path(__file__).resolve().parents[5] / "shared" / "data" / "ephys"


def fit_problem(name: str, scale: str) -> Problem:
    """The study's `Problem` for fit regime `name` (`hh`, `pospischil`, `real`)."""
    if name == "real":
        d = ephys_dir() / "bluepyefe"
        fit = suite.build(
            "recording",
            recording=",".join(str(d / f) for f in B6),
            recording_current=",".join(str(d / f) for f in B6_CURRENT),
        )
    else:
        fit = suite.build(name)
    hard = jax.jit(fit.hard_loss)
    validate = lambda z: float(hard(z))
    if fit.truth is not None:
        values = jax.jit(fit.space.to_values)

        def test(z):
            return float(np.max(fit.relative_errors(np.asarray(values(z), dtype=np.float64))))

        references = {"start (median of 16 draws)": _start_level(fit, test)}
    else:
        test, references = validate, {}
    return Problem(
        forms=fit.forms(),
        init=lambda run: fit.initial(jax.random.fold_in(jax.random.key(12345), run)),
        batch=None,
        validate=validate,
        test=test,
        settings={
            "sigma": 0.3,
            "samples": SAMPLES[scale],
            "lr": 0.05,
            "lr_es": 0.1,
            "clip": 0.0,
            "n_params": fit.space.n,
        },
        notes=f"{fit.notes}; {fit.space.n} parameters; loss: eFEL z-scores"
        + ("" if fit.truth is None else "; test: largest relative parameter error"),
        references=references,
    )


def _start_level(fit: suite.Fit, test) -> float:
    """The test metric at the starting points, median over 16 draws: what no learning gives."""
    keys = [jax.random.fold_in(jax.random.key(12345), run) for run in range(16)]
    return float(np.median([test(fit.initial(k)) for k in keys]))
