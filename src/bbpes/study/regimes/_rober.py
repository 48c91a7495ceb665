"""ROBER's neural ODE as a problem of the study (`rober_plain`, `rober_normalised`): the
task of `bbpes.tasks.rober` on one field's presets. ROBER has one trajectory, so its
validation and test metric are the same number (the loss over the zero field's loss),
said in the notes."""

from __future__ import annotations

import equinox as eqx
import jax

from ... import signals
from ...settings import defaults_of
from ...tasks import rober
from ..problem import Problem

SCALES = {
    "tiny": {"n_points": 10, "samples": 4, "max_steps": 500},
    "quick": {"n_points": 20, "samples": 10, "max_steps": 2000},
    "reduced": {"n_points": 50, "samples": 20, "max_steps": 2000},
    "paper": {"n_points": 50, "samples": 50, "max_steps": 2000},
}
"""Observation times, ES population and solver step budget per scale."""


def rober_problem(field: str, scale: str) -> Problem:
    """ROBER's neural ODE on the `plain` or `normalised` field (`rober.FIELDS`' presets).
    Metric: loss / zero-field loss (validation = test: one trajectory)."""
    s = SCALES[scale]
    config = defaults_of(rober.SETTINGS)
    config.update(field=field, n_points=s["n_points"], max_steps=s["max_steps"])
    rober.resolve(config)
    with jax.enable_x64(True):
        task = rober.make_task(config)
        null = float(task.null_loss())
    loss = eqx.filter_jit(task.loss)

    def ratio(f):
        return float(loss(f)) / null

    return Problem(
        forms=signals.ode_forms("backprop", task.loss, task.ode_loss()),
        init=lambda run: rober.initial_field(dict(config, seed=run), task),
        batch=None,
        validate=ratio,
        test=ratio,
        settings={
            "sigma": config["sigma"],
            "samples": s["samples"],
            "lr": config["lr_bp"],
            "lr_es": config["lr_es"],
            "clip": 0.0,
            "rank_shaping": config["rank_shaping"],
            "n_params": signals.n_params(rober.initial_field(config, task)),
        },
        notes=f"{field} field, {s['n_points']} log-spaced points, float64; validation = test",
        references={"zero field": 1.0},
        x64=True,
    )
