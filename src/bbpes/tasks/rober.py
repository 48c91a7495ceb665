"""ROBER: Robertson's stiff chemical kinetics, fitted by a neural ODE (BBPES paper,
section 3.3.2, Fig. 10; Robertson 1966; the neural-ODE setting of Kim et al. 2021).

    dy1/dt = -k1 y1 + k3 y2 y3
    dy2/dt =  k1 y1 - k3 y2 y3 - k2 y2^2
    dy3/dt =  k2 y2^2,          k1 = 0.04, k2 = 3e7, k3 = 1e4,   y(0) = (1, 0, 0).

Time is dimensionless (the reaction rates' unit). The species live on very different
scales (y2 peaks near 3.6e-5 while y1 and y3 are O(1)) and change over ten decades of
time, so the data are taken on log-spaced times from 1e-5 to 1e5 and computed with an
implicit solver (diffrax Kvaerno5) at tight tolerances.

The plain loss is the mean absolute error over all species and times, as the paper
trains ES on it (no rescaling of species or time). It is dominated by y1 and y3; y2
barely counts. The "scaled" loss divides each species' error by that species' largest
value in the data (Kim et al.'s remedy that lets backpropagation fit all three).

The task as a configuration describes it (`SETTINGS`, `make_task`), its vector field
(`FIELDS`, `initial_field`) and the presets a field brings (`resolve`) are here too, for
the `rober` experiment and the study's ROBER problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .. import signals
from ..models.neural_ode import NeuralODE, rober_field
from ..ode import ODELoss
from ..settings import MAX_INT32, Setting, by_name, with_values

K1, K2, K3 = 0.04, 3e7, 1e4
Y0 = (1.0, 0.0, 0.0)
SPECIES = ("y1", "y2", "y3")


def rober_vector_field(t, y: Array, args=None) -> Array:
    """Robertson's equations for a state `(y1, y2, y3)` of shape `(3,)`."""
    del t, args
    y1, y2, y3 = y[0], y[1], y[2]
    return jnp.stack(
        [
            -K1 * y1 + K3 * y2 * y3,
            K1 * y1 - K3 * y2 * y3 - K2 * y2**2,
            K2 * y2**2,
        ]
    )


def rober_solution(ts: np.ndarray, rtol: float = 1e-10, atol: float = 1e-14) -> np.ndarray:
    """Robertson's solution from y(0) = (1, 0, 0) at `ts` (shape `(N,)`, positive,
    increasing), shape `(N, 3)`: diffrax Kvaerno5, PID step control, in float64 whatever
    the default dtype is."""
    with jax.enable_x64(True):
        ts64 = jnp.asarray(ts, jnp.float64)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(rober_vector_field),
            diffrax.Kvaerno5(),
            0.0,
            ts64[-1],
            1e-8,
            jnp.asarray(Y0, jnp.float64),
            saveat=diffrax.SaveAt(ts=ts64),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=1_000_000,
        )
        return np.asarray(sol.ys)


SOLVERS = {"kvaerno5": diffrax.Kvaerno5, "kvaerno3": diffrax.Kvaerno3}


class Rober(eqx.Module):
    """Data and losses of the ROBER task.

    **Fields:** `ts` `(N,)` log-spaced observation times; `ys` `(N, 3)` the true species
    at `ts`; `scale` `(3,)` each species' largest value in the data; `solver` (a key of
    `SOLVERS`), `rtol`, `atol`, `max_steps`, `dt0` of the model's solves (from t = 0).
    """

    ts: Array
    ys: Array
    scale: Array
    solver: str = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    dt0: float = eqx.field(static=True)

    def __init__(
        self,
        n_points: int = 50,
        t_min: float = 1e-5,
        t_max: float = 1e5,
        solver: str = "kvaerno5",
        rtol: float = 1e-5,
        atol: float = 1e-8,
        max_steps: int = 10_000,
        dt0: float = 1e-6,
    ):
        if not 0 < t_min < t_max or n_points < 2:
            raise ValueError(f"need 0 < t_min < t_max and n_points >= 2, got {t_min}, {t_max}")
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
        ts = np.logspace(np.log10(t_min), np.log10(t_max), n_points)
        ys = rober_solution(ts)
        dtype = jnp.result_type(float)
        self.ts = jnp.asarray(ts, dtype)
        self.ys = jnp.asarray(ys, dtype)
        self.scale = jnp.asarray(np.max(np.abs(ys), axis=0), dtype)
        self.solver = solver
        self.rtol, self.atol = rtol, atol
        self.max_steps = max_steps
        self.dt0 = dt0

    def ode_loss(self, scaled: bool = False) -> ODELoss:
        """Mean absolute error of the model's species at `ts`, solved from y(0) = (1, 0, 0)
        at t = 0; with `scaled`, each species' error is divided by `scale`. Called as
        `ode_loss(field)`; `inf` when the solve fails."""
        weight = 1.0 / self.scale if scaled else jnp.ones_like(self.scale)
        data = self.ys
        return ODELoss(
            vector_field=lambda t, y, field: field(t, y),
            initial_state=lambda field: jnp.asarray(Y0, data.dtype),
            t0=0.0,
            t1=self.ts[-1],
            solver=SOLVERS[self.solver](),
            stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
            dt0=self.dt0,
            max_steps=self.max_steps,
            ts=self.ts,
            observation_cost=lambda ys, field: jnp.mean(jnp.abs(ys - data) * weight),
        )

    def null_loss(self) -> Array:
        """The plain loss of a zero vector field, whose state stays at y(0) = (1, 0, 0):
        the baseline a fit has to beat (about 0.18 on the default grid, since half the
        log-spaced times lie before y1 has moved)."""
        return jnp.mean(jnp.abs(self.ys - jnp.asarray(Y0, self.ys.dtype)))

    def loss(self, field: NeuralODE) -> Array:
        """The plain loss: mean absolute error over species and times (scalar)."""
        return self.ode_loss()(field)

    def scaled_loss(self, field: NeuralODE) -> Array:
        """Mean absolute error with each species divided by its largest value."""
        return self.ode_loss(scaled=True)(field)

    def trajectory(self, field: NeuralODE) -> Array:
        """The model's species at `ts`, shape `(N, 3)` (NaN where the solve failed)."""
        sol = self.ode_loss().solve(field)
        ys = sol.ys[0][:-1]
        return jnp.where(sol.result == diffrax.RESULTS.successful, ys, jnp.nan)

    def species_errors(self, field: NeuralODE) -> dict[str, Array]:
        """Per species: mean absolute error, and the same relative to the species' scale."""
        error = jnp.mean(jnp.abs(self.trajectory(field) - self.ys), axis=0)
        out = {f"mae_{name}": error[i] for i, name in enumerate(SPECIES)}
        out.update({f"relative_mae_{n}": error[i] / self.scale[i] for i, n in enumerate(SPECIES)})
        return out


# -- the task a configuration describes -----------------------------------------------

FIELDS = {
    "plain": {
        "sigma": 1e-4,
        "lr_es": 1e-4,
        "lr_bp": 1e-4,
        "init_output_scale": 0.01,
        "rank_shaping": False,
    },
    "normalised": {
        "sigma": 0.1,
        "lr_es": 5e-3,
        "lr_bp": 5e-3,
        "init_output_scale": 1.0,
        "rank_shaping": True,
    },
}
"""How the network's output becomes dy/dt, and the ES and Adam settings that suit each
(the settings left at None take these, `resolve`). `plain`: dy/dt = NN(y), the paper's
setting. `normalised`: dy/dt = NN(y) * scale / t_max, Kim et al.'s (2021) output
normalisation (each species' largest value in the data over the time span), so that an
O(1) output moves each species by its own scale over the whole span; the loss stays the
plain one."""

MAX_STEPS = MAX_INT32
"""The most solver steps a solve may be asked for (XLA counts in int32)."""

_KNOBS = by_name(signals.knob_settings())
_PRESET = "(default: the field's preset)"

SETTINGS = (
    Setting(
        "seed",
        0,
        "random seed (the initial field; training draws from seed + 1)",
        low=0,
        high=MAX_INT32,
    ),
    Setting(
        "field",
        "plain",
        "plain: dy/dt = NN(y); normalised: NN(y) * species scale / t_max (Kim et al.)",
        choices=tuple(FIELDS),
    ),
    with_values(_KNOBS["sigma"], default=None, kind=float, help=f"ES perturbation scale {_PRESET}"),
    with_values(
        _KNOBS["rank_shaping"],
        default=None,
        kind=bool,
        help=f"ES weights the perturbations by centered ranks of their losses {_PRESET}",
    ),
    Setting("lr_es", None, f"Adam learning rate of ES {_PRESET}", positive=True, kind=float),
    Setting(
        "lr_bp",
        None,
        f"Adam learning rate of the backpropagation methods {_PRESET}",
        positive=True,
        kind=float,
    ),
    Setting(
        "init_output_scale",
        None,
        f"factor on the output layer's initial weights and bias {_PRESET}",
        low=0,
        kind=float,
    ),
    Setting(
        "n_points",
        50,
        "log-spaced observation times between t_min and t_max",
        low=2,
        high=100_000,
        quick=20,
    ),
    Setting("t_min", 1e-5, "first observation time (the rate constants' time unit)", positive=True),
    Setting("t_max", 1e5, "last observation time", positive=True, high=1e12),
    Setting(
        "solver", "kvaerno5", "implicit diffrax solver of the neural ODE", choices=tuple(SOLVERS)
    ),
    Setting("rtol", 1e-4, "relative tolerance of the neural ODE's solves", positive=True),
    Setting("atol", 1e-7, "absolute tolerance of the neural ODE's solves", positive=True),
    Setting(
        "max_steps",
        2000,
        "solver steps before a solve counts as failed (loss inf)",
        low=1,
        high=MAX_STEPS,
    ),
)
"""The task's settings: the data (`make_task`), the field and its initial weights
(`initial_field`), and the training presets each field brings (None: `resolve` fills
them in). `bbpes.settings.defaults_of(SETTINGS)`, then `resolve`, is the paper's task."""


def resolve(config: dict[str, Any]) -> None:
    """Fill in place the preset settings (`FIELDS`) that `config` leaves None (or lacks)
    with those of its `field`."""
    for key, preset in FIELDS[config["field"]].items():
        if config.get(key) is None:
            config[key] = preset


def make_task(config: Mapping[str, Any]) -> Rober:
    """The `Rober` of the settings `n_points`, `t_min`, `t_max`, `solver`, `rtol`,
    `atol` and `max_steps`."""
    return Rober(
        n_points=config["n_points"],
        t_min=config["t_min"],
        t_max=config["t_max"],
        solver=config["solver"],
        rtol=config["rtol"],
        atol=config["atol"],
        max_steps=config["max_steps"],
    )


def output_scale(config: Mapping[str, Any], task: Rober) -> tuple[float, ...] | None:
    """The factor on the network's output of the configured `field` (None for plain):
    each species' scale over `t_max`, shape `(3,)`."""
    if config["field"] == "plain":
        return None
    return tuple(float(s) / config["t_max"] for s in np.asarray(task.scale))


def initial_field(config: Mapping[str, Any], task: Rober) -> NeuralODE:
    """The field of `field`, drawn from `seed` (six hidden layers of 5 GELU units):
    equinox's default init, with the output layer scaled by `init_output_scale`. With
    the plain field at full scale the untrained field drifts by O(0.1) per unit time,
    i.e. O(1e4) over the 1e5 time units of the data, and nearly every solve fails or
    explodes (the plain preset is 0.01; the normalised field starts at 1)."""
    field = rober_field(key=jax.random.key(config["seed"]), output_scale=output_scale(config, task))
    last = field.mlp.layers[-1]
    scale = config["init_output_scale"]
    return eqx.tree_at(
        lambda f: (f.mlp.layers[-1].weight, f.mlp.layers[-1].bias),
        field,
        (last.weight * scale, last.bias * scale),
    )
