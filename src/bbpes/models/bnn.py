"""A recurrent network of biophysical cells (BBPES paper, section 3.2.1, Fig. 7A).

N cells of any `AbstractCell` model, all-to-all coupled through their spike outputs
T(V) (Eq. 11). Cell i receives the current

    I_i(t) = I_app + s (W_in x(t) + W_rec T(V(t)))_i                       (section 3.2.1)

and the network's readout is y(t) = W_out T(V(t)) + b. The weights are dimensionless:
one unit of weight is `s = current_scale` in the cell's current unit (µA/cm² for
Morris-Lecar), the cell's own tonic-firing current, so that one set of weight scales,
ES sigma and learning rates serves every cell model.

Shapes: N cells, D input lines, K outputs; `...` is any batch shape (trials, and under
`jax.vmap` the ES population on top). Cell state: the cell's tuple of arrays, each of
shape `(..., N)`.

Time runs in two nested loops: the input is held piecewise constant over `hold_steps`
steps per input slot (the evidence stream), so the input current is formed once per
slot; inside a slot, the cell's own fixed-step stepper advances the whole network.
Only the carry is kept (no trajectory): memory does not grow with the trial length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from ..neurons.base import AbstractCell, State

Scan = Callable[..., tuple[Any, Any]]
"""`jax.lax.scan` or a drop-in replacement (`bbpes.estimators.checkpointed_scan`)."""


class Weights(eqx.Module):
    """The learnable parameters, dimensionless (see the module docstring).

    - `w_in`: `(N, D)`, input lines to cells.
    - `w_rec`: `(N, N)`, `w_rec[i, j]` is the weight from cell j to cell i.
    - `w_out`: `(K, N)`, readout.
    - `b_out`: `(K,)`, readout bias.
    """

    w_in: Array
    w_rec: Array
    w_out: Array
    b_out: Array


class WindowReadout(NamedTuple):
    """Statistics of the readout y over the decision window (its last `window_steps`).

    - `mean`: `(..., K)`, mean of y over the window (the decision, Fig. 7A).
    - `mean_square`: `(...,)`, mean of |y|^2 over the window, so that the mean squared
      error to any target t is `mean_square - 2 t . mean + |t|^2` (Eq. 12).
    """

    mean: Array
    mean_square: Array


def init_weights(
    key: Array,
    n_cells: int,
    n_inputs: int,
    n_outputs: int,
    *,
    in_scale: float = 1.0,
    rec_scale: float = 1.0,
    out_scale: float = 1.0,
    out_bias: float = 0.0,
    dtype: Any = None,
) -> Weights:
    """Gaussian weights: `w_in` with std `in_scale / sqrt(n_inputs)`, `w_rec` with std
    `rec_scale / sqrt(n_cells)`, `w_out` with std `out_scale / sqrt(n_cells)`, every
    `b_out` equal to `out_bias`. The scales are in units of `current_scale` (the input
    and recurrent ones) and of the readout (the output one)."""
    dtype = dtype or jnp.result_type(float)
    k_in, k_rec, k_out = jax.random.split(key, 3)

    def normal(k, shape, std):
        return std * jax.random.normal(k, shape, dtype)

    return Weights(
        w_in=normal(k_in, (n_cells, n_inputs), in_scale / n_inputs**0.5),
        w_rec=normal(k_rec, (n_cells, n_cells), rec_scale / n_cells**0.5),
        w_out=normal(k_out, (n_outputs, n_cells), out_scale / n_cells**0.5),
        b_out=jnp.full((n_outputs,), out_bias, dtype),
    )


class RecurrentNetwork(eqx.Module):
    """N coupled cells of one model with a fixed bias current; parameters are passed
    separately as `Weights`, so that estimators perturb or differentiate only those.

    **Fields:**

    - `cell`: any `AbstractCell` (its constants are shared by all N cells).
    - `i_app`: the fixed bias current I_app, in the cell's current unit.
    - `current_scale`: s, the current of one unit of weight, in the cell's current unit.
    - `dt`: the stepper's time step (ms).
    - `hard`: use the hard spike output (Eq. 10) instead of the soft T(V) (Eq. 11).
    """

    cell: AbstractCell
    i_app: float
    current_scale: float
    dt: float = eqx.field(default=0.1, static=True)
    hard: bool = eqx.field(default=False, static=True)

    def initial_state(self, batch_shape: tuple[int, ...], n_cells: int, dtype: Any = None) -> State:
        """The cell's resting start for every cell: arrays of shape `(*batch_shape, N)`."""
        state = self.cell.initial_state((*batch_shape, n_cells))
        return tuple(s.astype(dtype or jnp.result_type(float)) for s in state)

    def input_current(self, weights: Weights, x: Array) -> Array:
        """I_app + s W_in x: `x` of shape `(..., D)` to a current of shape `(..., N)`."""
        return self.i_app + self.current_scale * (x @ weights.w_in.T)

    def readout(self, weights: Weights, spikes: Array) -> Array:
        """y = W_out T + b: spike outputs `(..., N)` to `(..., K)`."""
        return spikes @ weights.w_out.T + weights.b_out

    def step(self, weights: Weights, state: State, drive: Array) -> tuple[State, Array]:
        """One step of `dt` of the whole network.

        **Arguments:** `state`, the cell state at t_n (arrays `(..., N)`); `drive`, the
        external current I_app + s W_in x at t_n, shape `(..., N)`.

        **Returns:** `(state at t_{n+1}, y(t_n))`: the readout `(..., K)` of the state
        that came in. T(V_n) is computed once and feeds both the recurrent current and
        the readout. (Fusing the two matmuls into one with `[W_rec; W_out]` measured no
        faster on CPU, so they stay apart.)
        """
        spikes = self.cell.output(state, self.hard)
        current = drive + self.current_scale * (spikes @ weights.w_rec.T)
        return self.cell.step(state, current, self.dt), self.readout(weights, spikes)

    def vector_field(self, weights: Weights, state: State, drive: Array) -> State:
        """d(state)/dt of the network (the ODE view, for diffrax): the cell's vector field
        under the current `drive + s W_rec T(V)`; shapes as in `step`."""
        spikes = self.cell.output(state, self.hard)
        current = drive + self.current_scale * (spikes @ weights.w_rec.T)
        return self.cell.vector_field(state, current)

    def run(
        self,
        weights: Weights,
        inputs: Array,
        hold_steps: int,
        window_steps: int,
        *,
        scan: Scan = jax.lax.scan,
    ) -> WindowReadout:
        """Simulate from rest through a stream of held inputs; keep only the readout's
        window statistics (no trajectory).

        **Arguments:**

        - `inputs`: `(n_slots, ..., D)`, input slot k is held over steps
          `k * hold_steps .. (k + 1) * hold_steps - 1`.
        - `hold_steps`, `window_steps`: Python ints; the window is the last `window_steps`
          states of the trial (those at t_n for n = total - window_steps .. total - 1).
        - `scan`: the time loop, `jax.lax.scan` (BPTT keeps every step) or
          `checkpointed_scan` (~sqrt memory under reverse-mode autodiff).

        **Returns:** a `WindowReadout` over the batch shape `...`.
        """
        n_slots, *batch, _ = inputs.shape
        total = n_slots * hold_steps
        if not 0 < window_steps <= total:
            raise ValueError(f"window_steps={window_steps} must be in 1..{total} (trial steps)")
        start = total - window_steps
        n_out = weights.w_out.shape[0]
        dtype = inputs.dtype
        state0 = self.initial_state(tuple(batch), weights.w_rec.shape[0], dtype)
        sums0 = (jnp.zeros((*batch, n_out), dtype), jnp.zeros(tuple(batch), dtype))

        def one_step(drive, carry, t):
            state, (sum_y, sum_y2) = carry
            state, y = self.step(weights, state, drive)
            inside = (t >= start).astype(dtype)
            return state, (sum_y + inside * y, sum_y2 + inside * jnp.sum(y * y, axis=-1))

        def one_slot(carry, slot):
            k, x = slot
            drive = self.input_current(weights, x)
            ts = k * hold_steps + jnp.arange(hold_steps)
            carry, _ = scan(lambda c, t: (one_step(drive, c, t), None), carry, ts)
            return carry, None

        slots = (jnp.arange(n_slots), inputs)
        (_, (sum_y, sum_y2)), _ = scan(one_slot, (state0, sums0), slots)
        return WindowReadout(sum_y / window_steps, sum_y2 / window_steps)

    def slot_activity(self, weights: Weights, inputs: Array, hold_steps: int) -> Array:
        """Mean spike output T(V) of every cell over each input slot, shape
        `(n_slots, ..., N)`: the hidden activity over time (Fig. 7B). Keeps one vector
        per slot, so use it for plots, not for training."""
        _, *batch, _ = inputs.shape
        state0 = self.initial_state(tuple(batch), weights.w_rec.shape[0], inputs.dtype)

        def one_slot(state, x):
            drive = self.input_current(weights, x)

            def one_step(s, _):
                spikes = self.cell.output(s, self.hard)
                s, _ = self.step(weights, s, drive)
                return s, spikes

            state, spikes = jax.lax.scan(one_step, state, None, length=hold_steps)
            return state, jnp.mean(spikes, axis=0)

        _, activity = jax.lax.scan(one_slot, state0, inputs)
        return activity

    def firing_rates(self, weights: Weights, inputs: Array, hold_steps: int) -> Array:
        """Spikes per second of every cell over the whole trial, shape `(..., N)`: the
        upward crossings of the hard threshold (Eq. 10), whichever output the network
        uses, divided by the trial length."""
        n_slots, *batch, _ = inputs.shape
        state0 = self.initial_state(tuple(batch), weights.w_rec.shape[0], inputs.dtype)
        above0 = self.cell.output(state0, True)

        def one_slot(carry, x):
            drive = self.input_current(weights, x)

            def one_step(c, _):
                state, above, count = c
                state, _ = self.step(weights, state, drive)
                now = self.cell.output(state, True)
                return (state, now, count + now * (1.0 - above)), None

            return jax.lax.scan(one_step, carry, None, length=hold_steps)[0], None

        carry = (state0, above0, jnp.zeros_like(above0))
        (_, _, count), _ = jax.lax.scan(one_slot, carry, inputs)
        return count / (n_slots * hold_steps * self.dt * 1e-3)
