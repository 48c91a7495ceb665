"""`spiral`: the spiral neural ODE over-parameterised (H = 1000 hidden units above
`tiny`), the ES paper's claim that forward-only signals keep up with the adjoints there.

Validation: the mean loss on 8 fixed held-out minibatches; test: the full-trajectory
MAE from y(0). Both lower is better.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ... import signals
from ...models.neural_ode import spiral_field
from ..problem import Problem, Regime, sweeps

ORDER = 6

SCALES = {
    "tiny": {"hidden": 16, "samples": 8, "n_points": 200},
    "quick": {"hidden": 1000, "samples": 40, "n_points": 1000},
    "reduced": {"hidden": 1000, "samples": 100, "n_points": 1000},
    "paper": {"hidden": 1000, "samples": 150, "n_points": 1000},
}
"""Hidden units, ES population and points of the trajectory per scale."""


def build(scale: str) -> Problem:
    """The spiral task with `SCALES[scale]`: minibatches of 20 x 10 points."""
    from ...tasks.spiral import Spiral

    s = SCALES[scale]
    task = Spiral(
        n_points=s["n_points"],
        t_end=25.0,
        batch_size=20,
        batch_time=10,
        rtol=1e-4,
        atol=1e-4,
        max_steps=4096,
    )
    held_out = [task.sample_batch(jax.random.fold_in(jax.random.key(99), k)) for k in range(8)]
    loss = eqx.filter_jit(task.loss)
    mae = eqx.filter_jit(task.mae)
    return Problem(
        forms=signals.ode_forms("backprop", task.loss, task.ode_loss()),
        forward_forms=signals.ode_forms("forward", task.loss, task.ode_loss()),
        init=lambda run: spiral_field(s["hidden"], key=jax.random.key(run)),
        batch=lambda run, i: task.sample_batch(
            jax.random.fold_in(jax.random.fold_in(jax.random.key(7), run), i)
        ),
        validate=lambda f: float(jnp.mean(jnp.stack([loss(f, *b) for b in held_out]))),
        test=lambda f: float(mae(f)),
        settings={
            "sigma": 0.003,
            "samples": s["samples"],
            "lr": 1e-3,
            "lr_es": 1e-3,
            "clip": 0.0,
            "n_params": signals.n_params(spiral_field(s["hidden"], key=jax.random.key(0))),
        },
        notes=f"H = {s['hidden']}, minibatches of 20 x 10 points; test: full-trajectory MAE from y(0)",
    )


REGIME = Regime(
    name="spiral",
    claim="over-parameterised neural ODE (H = 1000)",
    metric="mae",
    higher_is_better=False,
    target=0.04,
    signals=sweeps(("es", "forward_gradient", "bptt", "fnde")),
    build=build,
)
