"""A recurrent network of biophysical cells (BBPES paper, section 3.2.1, Fig. 7A).

N cells of any `AbstractCell` model, all-to-all coupled through their spike outputs
T(V) (Eq. 11, or the hard Eq. 10). Cell i receives the current

    I_i(t) = I_app + s (W_in x(t) + W_rec T(V(t)))_i                       (section 3.2.1)

and the network's readout is y(t) = W_out T(V(t)) + b. The weights are dimensionless:
one unit of weight is `s = current_scale` in the cell's current unit (µA/cm² for
Morris-Lecar), the cell's own tonic-firing current, so that one set of weight scales,
ES sigma and learning rates serves every cell model.

Shapes: N cells, D input lines, K outputs; `...` is any batch shape (trials, and under
`jax.vmap` the ES population on top). Cell state: the cell's tuple of arrays, each of
shape `(..., N)`.

Every matrix is applied through `bbpes.estimators.low_rank.apply`, so a matrix field of
`Weights` may be a `LowRank(base, a, b, scale)` (low-rank ES, EGGROLL): under `jax.vmap`
over a population whose `base` is shared (not mapped), the product with `base` is one
large matmul over members x trials, plus the members' rank-r corrections.

Time runs in two nested loops: the input is held piecewise constant over `hold_steps`
steps per input slot (the evidence stream), so the input current is formed once per
slot; inside a slot, the cell's own fixed-step stepper advances the whole network.
The readout is formed only in the slots that overlap the decision window. Only the
carry is kept (no trajectory): memory does not grow with the trial length.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from ..errors import ConfigError
from ..estimators.low_rank import LowRank, apply
from ..neurons.base import AbstractCell, State
from ..neurons.readout import V_T, surrogate_threshold
from .bnn_weights import Matrix, Weights, stack_rows
from .bnn_weights import init_weights as init_weights

Scan = Callable[..., tuple[Any, Any]]
"""`jax.lax.scan` or a drop-in replacement (`bbpes.estimators.checkpointed_scan`)."""


TRANSMITTERS = ("soft", "hard", "surrogate")
"""T(V) for the coupling and the readout: the soft sigmoid (Eq. 11), the hard step
(Eq. 10, zero gradient), or the hard step forward with a fast-sigmoid derivative
backward (`bbpes.neurons.readout.surrogate_threshold`)."""

LAYOUTS = ("auto", "trials_first", "cells_first")
"""How `RecurrentNetwork.run` holds the cell state internally (see its `layout` field)."""


class WindowReadout(NamedTuple):
    """Statistics of the readout y over the decision window (its last `window_steps`).

    - `mean`: `(..., K)`, mean of y over the window (the decision, Fig. 7A).
    - `mean_square`: `(...,)`, mean of |y|^2 over the window, so that the mean squared
      error to any target t is `mean_square - 2 t . mean + |t|^2` (Eq. 12).
    """

    mean: Array
    mean_square: Array


class Coupling(NamedTuple):
    """The per-step products of a network, prepared once per simulation.

    - `matrix`: `w_rec` `(N, N)`, or `[w_rec; w_out]` `(N + K, N)` when fused.
    - `w_out`: `(K, N)`, or None when the readout is fused into `matrix`.
    - `b_out`: `(K,)`.
    - `n_cells`: N.
    - `cells_first`: the arrays it is applied to hold the cells on their first axis,
      `(N, ...)`, instead of their last.
    """

    matrix: Matrix
    w_out: Matrix | None
    b_out: Array
    n_cells: int
    cells_first: bool = False

    def __call__(self, spikes: Array) -> tuple[Array, Array]:
        """`(W_rec T, W_out T + b)` of spike outputs `(..., N)`: `(..., N)`, `(..., K)`
        (with `cells_first`: `(N, ...)` to `(N, ...)`, `(K, ...)`)."""
        n, first = self.n_cells, self.cells_first
        b_out = self.b_out.reshape(-1, *(1,) * (spikes.ndim - 1)) if first else self.b_out
        product = _product(self.matrix, spikes, first)
        if self.w_out is None:
            if first:
                return product[:n], product[n:] + b_out
            return product[..., :n], product[..., n:] + b_out
        return product, _product(self.w_out, spikes, first) + b_out


def _product(w: Matrix, x: Array, cells_first: bool) -> Array:
    """`W x` of every vector in `x`: `(..., n)` to `(..., m)`, or `(n, ...)` to `(m, ...)`
    when `cells_first` (through `low_rank.apply` either way)."""
    if not cells_first:
        return apply(w, x)
    return jnp.moveaxis(apply(w, jnp.moveaxis(x, 0, -1)), -1, 0)


def _hard_threshold_mv(cell: AbstractCell) -> float:
    """The voltage at which `cell.output(state, hard=True)` switches on: the model's own
    `v_t` (FitzHugh-Nagumo) or `V_th` (LIF), else the paper's V_T = 10 mV."""
    for name in ("v_t", "V_th"):
        if hasattr(cell, name):
            return getattr(cell, name)
    return V_T


class RecurrentNetwork(eqx.Module):
    """N coupled cells of one model with a fixed bias current; parameters are passed
    separately as `Weights`, so that estimators perturb or differentiate only those.

    **Fields:**

    - `cell`: any `AbstractCell` (its constants are shared by all N cells).
    - `i_app`: the fixed bias current I_app, in the cell's current unit.
    - `current_scale`: s, the current of one unit of weight, in the cell's current unit.
    - `dt`: the stepper's time step (ms).
    - `transmitter`: T(V) of the coupling and the readout, one of `TRANSMITTERS`:
      `"soft"` (Eq. 11), `"hard"` (Eq. 10: BPTT's gradient through the cells is exactly
      zero) or `"surrogate"` (the hard values, with the fast-sigmoid derivative
      `slope / (1 + slope |V - V_T|)^2` backward).
    - `slope`: the surrogate's slope (1/mV); used only by `"surrogate"`.
    - `fuse_readout`: compute `W_rec T` and `W_out T` as one `(N + K) x N` product
      (measured no faster: the readout is formed only in the window's slots anyway).
    - `unroll`: steps per iteration of the time loop when it is `jax.lax.scan` (the
      results do not depend on it; speed does).
    - `layout`: how `run` holds the cell state internally, one of `LAYOUTS`:
      `"trials_first"` (`(..., N)`, as every method's arguments are), `"cells_first"`
      (`(N, ...)`), or `"auto"`: cells first when `w_rec` is a dense array, trials first
      when it is a `LowRank`. Under `jax.vmap` over a population of dense weights, cells
      first makes each member's recurrent product `W (N x N) @ T (N x trials)`, which
      XLA's CPU backend runs ~25% faster than `T (trials x N) @ W^T` (the ES forward
      pass of the evidence network: 5-14% less CPU time); a shared `LowRank` base is one
      large product only with the trials first. The results do not depend on it (to
      float rounding); speed does (`bbpes bench sim`).
    """

    cell: AbstractCell
    i_app: float
    current_scale: float
    dt: float = eqx.field(default=0.1, static=True)
    transmitter: str = eqx.field(default="soft", static=True)
    slope: float = eqx.field(default=1.0, static=True)
    fuse_readout: bool = eqx.field(default=False, static=True)
    unroll: int = eqx.field(default=1, static=True)
    layout: str = eqx.field(default="auto", static=True)

    def __check_init__(self):
        if self.transmitter not in TRANSMITTERS:
            raise ConfigError(
                f"unknown transmitter {self.transmitter!r}; known: {', '.join(TRANSMITTERS)}"
            )
        if not self.slope > 0:
            raise ConfigError(f"surrogate slope must be > 0 (got {self.slope})")
        if not (isinstance(self.unroll, int) and self.unroll >= 1):
            raise ConfigError(f"unroll must be a whole number >= 1 (got {self.unroll!r})")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; known: {', '.join(LAYOUTS)}")

    @property
    def hard(self) -> bool:
        """Whether the forward values of T(V) are the hard step (Eq. 10)."""
        return self.transmitter != "soft"

    def spikes(self, state: State) -> Array:
        """T(V) of every cell, `(..., N)` in [0, 1], as `transmitter` chooses. The
        surrogate's forward values are exactly the hard output's."""
        if self.transmitter == "soft":
            return self.cell.output(state, False)
        hard = self.cell.output(state, True)
        if self.transmitter == "hard":
            return hard
        # hard + (g - g) is exactly `hard` forward, with g's derivative backward
        g = surrogate_threshold(self.cell.voltage(state), _hard_threshold_mv(self.cell), self.slope)
        return hard + (g - jax.lax.stop_gradient(g))

    def initial_state(self, batch_shape: tuple[int, ...], n_cells: int, dtype: Any = None) -> State:
        """The cell's resting start for every cell: arrays of shape `(*batch_shape, N)`."""
        state = self.cell.initial_state((*batch_shape, n_cells))
        return tuple(s.astype(dtype or jnp.result_type(float)) for s in state)

    def input_current(self, weights: Weights, x: Array) -> Array:
        """I_app + s W_in x: `x` of shape `(..., D)` to a current of shape `(..., N)`."""
        return self.i_app + self.current_scale * apply(weights.w_in, x)

    def readout(self, weights: Weights, spikes: Array) -> Array:
        """y = W_out T + b: spike outputs `(..., N)` to `(..., K)`."""
        return apply(weights.w_out, spikes) + weights.b_out

    def coupling(self, weights: Weights, cells_first: bool = False) -> Coupling:
        """The recurrent and readout products of `weights`, fused if `fuse_readout`."""
        n, b = weights.w_rec.shape[0], weights.b_out
        if self.fuse_readout:
            return Coupling(stack_rows(weights.w_rec, weights.w_out), None, b, n, cells_first)
        return Coupling(weights.w_rec, weights.w_out, b, n, cells_first)

    def step(self, weights: Weights, state: State, drive: Array) -> tuple[State, Array]:
        """One step of `dt` of the whole network.

        **Arguments:** `state`, the cell state at t_n (arrays `(..., N)`); `drive`, the
        external current I_app + s W_in x at t_n, shape `(..., N)`.

        **Returns:** `(state at t_{n+1}, y(t_n))`: the readout `(..., K)` of the state
        that came in. T(V_n) is computed once and feeds both the recurrent current and
        the readout.
        """
        return self._step(self.coupling(weights), state, drive)

    def _step(self, coupling: Coupling, state: State, drive: Array) -> tuple[State, Array]:
        recurrent, y = coupling(self.spikes(state))
        current = drive + self.current_scale * recurrent
        return self.cell.step(state, current, self.dt), y

    def _advance(
        self, w_rec: Matrix, state: State, drive: Array, cells_first: bool = False
    ) -> State:
        """`step` without the readout."""
        current = drive + self.current_scale * _product(w_rec, self.spikes(state), cells_first)
        return self.cell.step(state, current, self.dt)

    def vector_field(self, weights: Weights, state: State, drive: Array) -> State:
        """d(state)/dt of the network (the ODE view, for diffrax): the cell's vector field
        under the current `drive + s W_rec T(V)`; shapes as in `step`."""
        current = drive + self.current_scale * apply(weights.w_rec, self.spikes(state))
        return self.cell.vector_field(state, current)

    def _inner_scan(self, scan: Scan) -> Scan:
        return partial(jax.lax.scan, unroll=self.unroll) if scan is jax.lax.scan else scan

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
        n_out, n = weights.w_out.shape[0], weights.w_rec.shape[0]
        dtype = inputs.dtype
        first = self.layout == "cells_first" or (
            self.layout == "auto" and not isinstance(weights.w_rec, LowRank)
        )
        cells = (n, *batch) if first else (*batch, n)
        state0 = tuple(s.astype(dtype) for s in self.cell.initial_state(cells))
        sums0 = (jnp.zeros((n_out, *batch) if first else (*batch, n_out), dtype),)
        sums0 = (*sums0, jnp.zeros(tuple(batch), dtype))
        out_axis = 0 if first else -1
        inner = self._inner_scan(scan)
        # The slots before the one where the window starts need no readout: only W_rec.
        quiet = start // hold_steps
        coupling = self.coupling(weights, first)

        def drive_of(x):  # once per slot
            drive = self.input_current(weights, x)
            return jnp.moveaxis(drive, -1, 0) if first else drive

        def quiet_slot(state, x):
            drive = drive_of(x)
            step = lambda s, _: (self._advance(weights.w_rec, s, drive, first), None)
            return inner(step, state, None, length=hold_steps)[0], None

        def one_step(drive, carry):
            state, (sum_y, sum_y2), t = carry
            state, y = self._step(coupling, state, drive)
            inside = (t >= start).astype(dtype)
            sum_y2 = sum_y2 + inside * jnp.sum(y * y, axis=out_axis)
            return state, (sum_y + inside * y, sum_y2), t + 1

        def window_slot(carry, x):
            drive = drive_of(x)
            step = lambda c, _: (one_step(drive, c), None)
            return inner(step, carry, None, length=hold_steps)[0], None

        if quiet:
            state0, _ = scan(quiet_slot, state0, inputs[:quiet])
        t0 = jnp.asarray(quiet * hold_steps, jnp.int32)  # the step count, in the carry
        (_, (sum_y, sum_y2), _), _ = scan(window_slot, (state0, sums0, t0), inputs[quiet:])
        if first:
            sum_y = jnp.moveaxis(sum_y, 0, -1)
        return WindowReadout(sum_y / window_steps, sum_y2 / window_steps)

    def slot_activity(self, weights: Weights, inputs: Array, hold_steps: int) -> Array:
        """Mean spike output T(V) of every cell over each input slot, shape
        `(n_slots, ..., N)`: the hidden activity over time (Fig. 7B). Keeps one vector
        per slot, so use it for plots, not for training."""
        _, *batch, _ = inputs.shape
        state0 = self.initial_state(tuple(batch), weights.w_rec.shape[0], inputs.dtype)
        coupling = self.coupling(weights)

        def one_slot(state, x):
            drive = self.input_current(weights, x)

            def one_step(s, _):
                spikes = self.spikes(s)
                s, _ = self._step(coupling, s, drive)
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
        coupling = self.coupling(weights)

        def one_slot(carry, x):
            drive = self.input_current(weights, x)

            def one_step(c, _):
                state, above, count = c
                state, _ = self._step(coupling, state, drive)
                now = self.cell.output(state, True)
                return (state, now, count + now * (1.0 - above)), None

            return jax.lax.scan(one_step, carry, None, length=hold_steps)[0], None

        carry = (state0, above0, jnp.zeros_like(above0))
        (_, _, count), _ = jax.lax.scan(one_slot, carry, inputs)
        return count / (n_slots * hold_steps * self.dt * 1e-3)
