"""Your own problem and your own learning signal in the signals study: which learning
signal should I use, on *my* problem?

The problem: fit a damped oscillation y(t) = a exp(-t / tau) sin(omega t) to noisy
samples (three parameters, non-convex in omega), selected on a validation set and
reported on a test set. The signals: bbpes's backprop and ES, an evosax strategy, and
one of yours, `SIGN_ES` (the sign of the ES gradient, then Adam), an object of a few
lines. The study gives each the same calibrated training seconds, tunes each on three
values of its step size, and reports three fresh seeds with their spread.

Run it: `python examples/own_study.py` (BBPES_EXAMPLE_TINY=1: the tiny scale). The
same from the command line, with this file's directory on PYTHONPATH:

    bbpes run signals --set problem=own_study:oscillation --set signal=own_study:SIGN_ES

Your problem function takes the study's scale and returns a `bbpes.study.Regime`, or
`(Problem, signal names)`; your signal is any `bbpes.signals.Signal` (a subclass, or
an instance of bbpes's classes with other settings). An installed package offers them
through the entry-point groups `bbpes.problems` and `bbpes.signals`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from bbpes.signals import ES, LossForms
from bbpes.study.problem import Problem

TINY = os.environ.get("BBPES_EXAMPLE_TINY") == "1"


@dataclass(frozen=True)
class SignES(ES):
    """ES whose gradient estimate is replaced by its sign before the optimizer (a
    signSGD on the ES estimate): your own learning rule, as a signal."""

    name: str = "sign_es"
    reference: str = "examples/own_study.py: the sign of the ES gradient, then Adam"
    color: str | None = "black"

    def learner(self, forms, optimizer, settings):
        return super().learner(forms, optax.chain(optax.scale_by_sign(), optimizer), settings)


SIGN_ES = SignES()

t = jnp.linspace(0.0, 10.0, 200)
TRUE = {"a": jnp.asarray(1.5), "tau": jnp.asarray(4.0), "omega": jnp.asarray(2.0)}


def oscillation_curve(p, t):
    return p["a"] * jnp.exp(-t / p["tau"]) * jnp.sin(p["omega"] * t)


def _noisy(seed: int):
    clean = oscillation_curve(TRUE, t)
    return clean + 0.05 * jax.random.normal(jax.random.key(seed), t.shape)


def oscillation(scale: str):
    """The problem, at the study's `scale` (the sample count grows with it)."""
    train_y, valid_y, test_y = _noisy(1), _noisy(2), _noisy(3)

    def mse(p, y):
        return jnp.mean((oscillation_curve(p, t) - y) ** 2)

    def loss(p):
        return mse(p, train_y)

    validate = jax.jit(lambda p: mse(p, valid_y))
    test = jax.jit(lambda p: mse(p, test_y))

    def init(run: int):
        noise = jax.random.uniform(jax.random.key(100 + run), (3,), minval=-0.2, maxval=0.2)
        return {"a": 1.0 + noise[0], "tau": 2.0 + noise[1], "omega": 1.8 + noise[2]}

    problem = Problem(
        forms=LossForms(loss=loss),
        init=init,
        batch=None,
        validate=lambda p: float(validate(p)),
        test=lambda p: float(test(p)),
        settings={
            "sigma": 0.05,
            "samples": 8 if scale == "tiny" else 32,
            "lr": 0.02,
            "lr_es": 0.02,
            "clip": 0.0,
            "n_params": 3,
        },
        notes="damped oscillation, 200 noisy samples; metric: test MSE",
        references={"noise floor (0.05^2)": 0.0025},
    )
    return problem, ["bptt", "es", "evosax:SNES", "own_study:SIGN_ES"]


def main():
    from bbpes.framework.runner import run_experiment

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # `own_study` importable by name
    settings = {
        "problem": "own_study:oscillation",
        "scale": "tiny" if TINY else "quick",
        "seeds": "3",
        "sweep": "1" if TINY else "3",
        **({"budget": "0.25"} if TINY else {}),
    }
    run, _ = run_experiment("signals", settings, out="own-study")
    print((run.path / "leaderboard.md").read_text())
    print(f"leaderboard: {run.path / 'leaderboard.md'}")


if __name__ == "__main__":
    main()
