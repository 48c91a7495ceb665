"""The spiral (cubic oscillator): fit a neural ODE to a 2-D trajectory (BBPES paper,
section 3.3.1, Figs. 9 and 12, appendix 5.2; the torchdiffeq `ode_demo.py` setting).

True dynamics, a damped cubic oscillator spiralling into the origin:

    dy/dt = (y^3) A,   A = [[-0.1, 2.0], [-2.0, -0.1]],   y(0) = (2, 0),

observed at 1000 equally spaced times on [0, 25] (dimensionless time). Training draws
minibatches of 20 random starting points on the true trajectory and fits the next 10
observations from each (loss: mean absolute error over the 10 x 20 x 2 numbers, the first
being the start point itself). The test metric is the mean absolute error of the whole
1000-point trajectory integrated from y(0).

`SETTINGS` declares the task's settings (`bbpes.tasks.spiral_runs.make_task` builds
the `Spiral` they describe), shared by the `spiral` and `spiral-scaling` experiments.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..models.neural_ode import NeuralODE
from ..ode import ODELoss
from ..settings import MAX_INT32, Setting

A = ((-0.1, 2.0), (-2.0, -0.1))
Y0 = (2.0, 0.0)

MAX_STEPS = MAX_INT32
"""The most solver steps a solve may be asked for (XLA counts in int32)."""

SETTINGS = (
    Setting("n_points", 1000, "observation times of the true trajectory", low=3),
    Setting("t_end", 25.0, "last observation time (dimensionless)", positive=True),
    Setting("batch_size", 20, "starting points per minibatch", low=1),
    Setting("batch_time", 10, "observations fitted from each starting point", low=2),
    Setting("tol", 1e-4, "rtol = atol of the Dopri5 solves", positive=True),
    Setting("max_steps", 4096, "solver steps per solve of the model", low=1, high=MAX_STEPS),
)
"""The task's settings: its data, minibatches and the model's solves. Together they must
have `batch_time < n_points` and `batch_size <= n_points - batch_time` (`Spiral`)."""


def true_vector_field(t, y: Array, args=None) -> Array:
    """dy/dt = (y^3) A for a state of shape `(2,)` (or `(B, 2)`: row vectors)."""
    del t, args
    return (y**3) @ jnp.asarray(A, jnp.result_type(y))


def true_trajectory(ts: np.ndarray, y0=Y0, rtol: float = 1e-10, atol: float = 1e-10) -> np.ndarray:
    """The true solution at `ts` (shape `(N,)`, from `ts[0]`), shape `(N, 2)`, computed in
    float64 with diffrax Dopri5 at tight tolerances whatever the default dtype is."""
    with jax.enable_x64(True):
        ts64 = jnp.asarray(ts, jnp.float64)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(true_vector_field),
            diffrax.Dopri5(),
            ts64[0],
            ts64[-1],
            None,
            jnp.asarray(y0, jnp.float64),
            saveat=diffrax.SaveAt(ts=ts64),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=1_000_000,
        )
        return np.asarray(sol.ys)


class Spiral(eqx.Module):
    """Data, minibatches, losses and the test metric of the spiral task.

    **Fields:** `ts` `(N,)` observation times; `ys` `(N, 2)` the true trajectory at `ts`;
    `batch_size` (20) starting points of `batch_time` (10) observations per minibatch;
    `rtol`, `atol` (1e-4) of the Dopri5 solves of the model; `max_steps` per solve.
    """

    ts: Array
    ys: Array
    batch_size: int = eqx.field(static=True)
    batch_time: int = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        n_points: int = 1000,
        t_end: float = 25.0,
        batch_size: int = 20,
        batch_time: int = 10,
        rtol: float = 1e-4,
        atol: float = 1e-4,
        max_steps: int = 4096,
    ):
        if not 2 <= batch_time < n_points or batch_size > n_points - batch_time:
            raise ValueError(
                f"need 2 <= batch_time < n_points and batch_size <= n_points - batch_time, "
                f"got n_points={n_points}, batch_time={batch_time}, batch_size={batch_size}"
            )
        ts = np.linspace(0.0, t_end, n_points)
        dtype = jnp.result_type(float)
        self.ts = jnp.asarray(ts, dtype)
        self.ys = jnp.asarray(true_trajectory(ts), dtype)
        self.batch_size = batch_size
        self.batch_time = batch_time
        self.rtol, self.atol = rtol, atol
        self.max_steps = max_steps

    def solver(self) -> tuple[diffrax.AbstractSolver, diffrax.AbstractStepSizeController]:
        return diffrax.Dopri5(), diffrax.PIDController(rtol=self.rtol, atol=self.atol)

    def sample_batch(self, key: Array) -> tuple[Array, Array]:
        """A minibatch: start points `(B, 2)` and the observations from each, time-major
        `(T, B, 2)` (`targets[0]` are the start points)."""
        n_starts = self.ts.shape[0] - self.batch_time
        starts = jax.random.choice(key, n_starts, (self.batch_size,), replace=False)
        index = starts[None, :] + jnp.arange(self.batch_time)[:, None]
        return self.ys[starts], self.ys[index]

    def ode_loss(self) -> ODELoss:
        """The minibatch loss as an `ODELoss` (for fnde): the B start points are one state
        `(B, 2)` solved together over `ts[:T]` (as torchdiffeq solves a batch, with one
        step size); called as `ode_loss(field, y0s, targets)`."""
        solver, controller = self.solver()
        return ODELoss(
            vector_field=lambda t, y, field, y0s, targets: field.batched(t, y),
            initial_state=lambda field, y0s, targets: y0s,
            t0=self.ts[0],
            t1=self.ts[self.batch_time - 1],
            solver=solver,
            stepsize_controller=controller,
            max_steps=self.max_steps,
            ts=self.ts[: self.batch_time],
            observation_cost=lambda ys, field, y0s, targets: jnp.mean(jnp.abs(ys - targets)),
        )

    def loss(self, field: NeuralODE, y0s: Array, targets: Array) -> Array:
        """Minibatch mean absolute error (scalar; `inf` if the solve failed)."""
        return self.ode_loss()(field, y0s, targets)

    def trajectory(self, field: NeuralODE, max_steps: int = 100_000) -> Array:
        """The model's trajectory from y(0) at all `ts`, shape `(N, 2)` (NaN if it failed)."""
        solver, controller = self.solver()
        return field.trajectory(
            self.ys[0], self.ts, solver=solver, stepsize_controller=controller, max_steps=max_steps
        )

    def mae(self, field: NeuralODE) -> Array:
        """Mean absolute error of the whole trajectory from y(0) (the paper's test metric,
        target 0.04); `inf` when the solve failed."""
        error = jnp.mean(jnp.abs(self.trajectory(field) - self.ys))
        return jnp.where(jnp.isfinite(error), error, jnp.inf)
