"""Neural ODEs: a vector field given by an MLP (BBPES paper, section 3.3, Eq. 13),

    dy/dt = NN(y ** power),

solved by diffrax. The spiral uses `power = 3` and one tanh hidden layer (the
torchdiffeq demo, paper appendix 5.2); ROBER uses six hidden layers of 5 GELU units
(Kim et al. 2021, as in the paper's section 3.3.2).
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from .mlp import MLP


class NeuralODE(eqx.Module):
    """The autonomous vector field `f(t, y) = mlp(y ** power) * output_scale`.

    **Fields:** `mlp` (the trainable parameters; every leaf is an array), `power`
    (static int, applied elementwise to the state before the MLP), `output_scale`
    (static tuple of `d` floats multiplying each component of the MLP's output, or None
    for none; Kim et al. 2021 normalise a stiff field by `species scale / time span` so
    that an O(1) output moves each species by its own scale over the whole span).

    `__call__(t, y, args=None)` takes one state of shape `(d,)` and returns dy/dt of
    shape `(d,)`; `batched(t, ys)` does the same for states of shape `(B, d)`.
    """

    mlp: MLP
    power: int = eqx.field(static=True, default=1)
    output_scale: tuple[float, ...] | None = eqx.field(static=True, default=None)

    def __call__(self, t, y: Array, args=None) -> Array:
        del t, args
        out = self.mlp(y**self.power)
        if self.output_scale is None:
            return out
        return out * jnp.asarray(self.output_scale, out.dtype)

    def batched(self, t, ys: Array, args=None) -> Array:
        """dy/dt for a batch of states `(B, d)` that share one solve."""
        return jax.vmap(lambda y: self(t, y))(ys)

    def trajectory(
        self,
        y0: Array,
        ts: Array,
        *,
        solver: diffrax.AbstractSolver,
        stepsize_controller: diffrax.AbstractStepSizeController,
        max_steps: int = 100_000,
        dt0: float | None = None,
    ) -> Array:
        """The solution from `y0` (shape `(d,)` or `(B, d)`) at the times `ts` (shape `(T,)`,
        increasing, `ts[0]` the initial time): shape `(T, *y0.shape)`. A failed solve
        (too many steps, a blow-up) gives NaN rather than an error."""
        field = self if y0.ndim == 1 else self.batched
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            solver,
            ts[0],
            ts[-1],
            dt0,
            y0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=stepsize_controller,
            max_steps=max_steps,
            throw=False,
        )
        return jnp.where(sol.result == diffrax.RESULTS.successful, sol.ys, jnp.nan)


def spiral_field(hidden: int, *, key: Array, weight_std: float = 0.1) -> NeuralODE:
    """dy/dt = MLP(y^3) with one tanh hidden layer of `hidden` units, 2 -> 2; weights
    N(0, 0.1^2), biases zero (torchdiffeq's `ode_demo.py`, the paper's appendix 5.2)."""
    return NeuralODE(MLP(2, 2, (hidden,), "tanh", key=key, weight_std=weight_std), power=3)


def rober_field(
    *,
    key: Array,
    width: int = 5,
    depth: int = 6,
    activation: str = "gelu",
    output_scale: tuple[float, ...] | None = None,
) -> NeuralODE:
    """dy/dt = MLP(y) (times `output_scale`, if given), 3 -> 3, with `depth` hidden layers
    of `width` units (six of five GELU units in Kim et al. 2021 and the paper's section
    3.3.2)."""
    mlp = MLP(3, 3, (width,) * depth, activation, key=key)
    return NeuralODE(mlp, power=1, output_scale=output_scale)
