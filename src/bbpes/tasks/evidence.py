"""Discrete evidence integration (BBPES paper, section 3.2.1, Fig. 7A, Eq. 12).

A trial is a stream of `n_inputs` inputs (50 in the paper), each of type 1, 2, 3 or
null, each held for `hold` ms (6 ms: a 300 ms trial; 20 ms in case C: 1 s). Every type
enters the network as its own fixed random binary vector of `input_dim` lines (drawn
once per task seed; null has one too). The label is the type that occurs most often;
trials with a tie are never generated.

**Sampling (weak evidence).** Each trial draws a favoured type uniformly from 1-3; every
input is then independently null with probability `p_null`, the favoured type with
`p_favoured`, and each of the other two types with `(1 - p_null - p_favoured) / 2`.
Trials whose top count is tied are rejected and redrawn. The label is the majority
count, which is usually but not always the favoured type. With the defaults (0.25,
0.5), one input decides 58% of trials, the last 10 inputs 91%, and 95% needs the
majority of about the last 15 (90 ms, 900 steps of 0.1 ms): the network has to
integrate over many inputs (`window_majority_accuracy`). `p_favoured = 0.4` is harder
(95% needs the last 35).

**Loss (Eq. 12).** The squared error between the readout y(t) = W_out T(V(t)) + b and
the one-hot label over the last `window` ms (10 ms), as a time average over the window
and a mean over trials. The decision is the output with the largest mean readout over
that window; accuracy is measured on a held-out test set.

Tokens: 0 is null and 1, 2, 3 are the evidence types; labels 0, 1, 2 stand for types
1, 2, 3. Trials are generated with numpy from seeds, reproducibly: the codes from
`[seed, 0]`, the test set from `[seed, 1]` and training batch i from `[seed, 2, i]`.
"""

from __future__ import annotations

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..models.bnn import RecurrentNetwork, Scan, Weights, WindowReadout
from ..neurons.base import n_steps
from ..ode import ODELoss

N_TYPES = 3
NULL = 0


def sample_trials(
    n: int, seed: Any, n_inputs: int = 50, p_null: float = 0.25, p_favoured: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """`n` trials without ties: tokens `(n, n_inputs)` int32 in 0..3 and labels `(n,)`
    int32 in 0..2 (the majority type minus one). `seed`: anything `np.random.default_rng`
    takes (an int or a list of ints)."""
    p_other = (1.0 - p_null - p_favoured) / 2
    if min(p_null, p_favoured, p_other) < 0:
        raise ValueError(f"bad probabilities p_null={p_null}, p_favoured={p_favoured}")
    rng = np.random.default_rng(seed)
    tokens, labels = [], []
    while sum(len(t) for t in tokens) < n:
        favoured = rng.integers(1, N_TYPES + 1, size=n)
        # type of each input: 0 null, 1 favoured, 2 and 3 the two others (in cyclic order)
        kind = rng.choice(4, size=(n, n_inputs), p=[p_null, p_favoured, p_other, p_other])
        shift = np.where(kind == 0, 0, kind - 1)
        drawn = np.where(kind == 0, NULL, (favoured[:, None] - 1 + shift) % N_TYPES + 1)
        counts = np.stack([(drawn == k).sum(axis=1) for k in range(1, N_TYPES + 1)], axis=1)
        top = np.sort(counts, axis=1)
        keep = top[:, -1] > top[:, -2]
        tokens.append(drawn[keep])
        labels.append(np.argmax(counts[keep], axis=1))
    return (
        np.concatenate(tokens)[:n].astype(np.int32),
        np.concatenate(labels)[:n].astype(np.int32),
    )


def window_majority_accuracy(tokens: np.ndarray, labels: np.ndarray, last: int) -> float:
    """Accuracy of deciding by the majority of the last `last` inputs only (ties broken
    at random): how much a short memory gets (a baseline, not a model)."""
    recent = tokens[:, -last:]
    counts = np.stack([(recent == k).sum(axis=1) for k in range(1, N_TYPES + 1)], axis=1)
    jitter = np.random.default_rng(0).random(counts.shape) * 0.1
    return float(np.mean(np.argmax(counts + jitter, axis=1) == labels))


def squared_error(readout: WindowReadout, labels: Array) -> Array:
    """Mean over the window of |y - onehot(label)|^2, per trial: shape like `labels`."""
    target = jax.nn.one_hot(labels, readout.mean.shape[-1], dtype=readout.mean.dtype)
    return readout.mean_square - 2.0 * jnp.sum(target * readout.mean, axis=-1) + 1.0


def decisions(readout: WindowReadout) -> Array:
    """The chosen label per trial: the largest mean readout over the window."""
    return jnp.argmax(readout.mean, axis=-1)


class EvidenceTask(eqx.Module):
    """The task's fixed parts: the input codes and the timing.

    **Fields:** `codes`, `(4, input_dim)` binary floats, row k the vector of token k;
    `n_inputs`; `hold`, `window`, `dt` in ms; `p_null`, `p_favoured` (see the module
    docstring). Build one with `EvidenceTask.from_seed`.
    """

    codes: Array
    n_inputs: int = eqx.field(default=50, static=True)
    hold: float = eqx.field(default=6.0, static=True)
    window: float = eqx.field(default=10.0, static=True)
    dt: float = eqx.field(default=0.1, static=True)
    p_null: float = eqx.field(default=0.25, static=True)
    p_favoured: float = eqx.field(default=0.5, static=True)

    @classmethod
    def from_seed(cls, seed: int, input_dim: int = 32, dtype: Any = None, **fields: Any):
        """A task whose codes are drawn from `seed` (each line on with probability 1/2)."""
        rng = np.random.default_rng([seed, 0])
        codes = rng.integers(0, 2, size=(N_TYPES + 1, input_dim))
        return cls(codes=jnp.asarray(codes, dtype or jnp.result_type(float)), **fields)

    @property
    def hold_steps(self) -> int:
        return n_steps(self.hold, self.dt)

    @property
    def window_steps(self) -> int:
        return n_steps(self.window, self.dt)

    @property
    def duration(self) -> float:
        """Trial length (ms)."""
        return self.n_inputs * self.hold

    def trials(self, n: int, seed: Any) -> tuple[np.ndarray, np.ndarray]:
        """`(tokens (n, n_inputs), labels (n,))` drawn from `seed`."""
        return sample_trials(n, seed, self.n_inputs, self.p_null, self.p_favoured)

    def inputs(self, tokens: Array) -> Array:
        """The input stream of `tokens` `(..., n_inputs)`: `(n_inputs, ..., input_dim)`."""
        return jnp.moveaxis(self.codes[tokens], -2, 0)

    def readout(
        self,
        network: RecurrentNetwork,
        weights: Weights,
        tokens: Array,
        *,
        scan: Scan = jax.lax.scan,
    ) -> WindowReadout:
        """The window statistics of the network's readout on each trial."""
        return network.run(
            weights, self.inputs(tokens), self.hold_steps, self.window_steps, scan=scan
        )

    def loss(
        self,
        network: RecurrentNetwork,
        weights: Weights,
        tokens: Array,
        labels: Array,
        *,
        scan: Scan = jax.lax.scan,
    ) -> Array:
        """Eq. 12 averaged over the window and the trials: the loss of one parameter set
        on a batch of trials. `tokens` `(B, n_inputs)`, `labels` `(B,)`; returns a scalar.
        Keeps no trajectory (with `scan=jax.lax.scan` and no differentiation, memory is
        independent of the trial length)."""
        return jnp.mean(squared_error(self.readout(network, weights, tokens, scan=scan), labels))

    def accuracy(
        self, network: RecurrentNetwork, weights: Weights, tokens: Array, labels: Array
    ) -> Array:
        """Fraction of trials decided correctly."""
        return jnp.mean(decisions(self.readout(network, weights, tokens)) == labels)

    def ode_loss(
        self,
        network: RecurrentNetwork,
        *,
        solver: diffrax.AbstractSolver | None = None,
        rtol: float = 1e-4,
        atol: float = 1e-4,
        max_steps: int | None = None,
    ) -> ODELoss:
        """The same loss as an ODE solved by diffrax (for pnde and fnde), called as
        `ode_loss(weights, tokens, labels)`.

        The state is the cells' state `(B, N)` per variable; the input is a step
        function of time, so the step-size controller is told its jump times (each slot
        boundary and the window's start). The running cost is the squared error inside
        the window divided by its length. `max_steps` bounds the solver's steps, and
        with it the memory pnde's dense forward solution needs (diffrax allocates it for
        `max_steps` steps); the default is the stepper's step count (3,000 for 300 ms),
        far more than Tsit5 at tolerance 1e-4 takes here (150-300 steps for 300 ms). A
        solve that needs more returns an infinite loss.
        """
        t1 = self.duration
        window_start = jnp.asarray(t1 - self.window, self.codes.dtype)
        # Slot k starts at boundaries[k - 1]. The solver is told these jump times, so that
        # each step ends just before a jump and the next starts on it; comparing t with
        # the very same floats puts every evaluation on the right side of each jump.
        boundaries = jnp.asarray(self.hold * np.arange(1, self.n_inputs), self.codes.dtype)

        def drive(t, weights, tokens):
            slot = jnp.sum(t >= boundaries)
            x = self.codes[jax.lax.dynamic_index_in_dim(tokens, slot, -1, keepdims=False)]
            return network.input_current(weights, x)

        def vector_field(t, y, weights, tokens, labels):
            return network.vector_field(weights, y, drive(t, weights, tokens))

        def initial_state(weights, tokens, labels):
            return network.initial_state(
                tokens.shape[:-1], weights.w_rec.shape[0], self.codes.dtype
            )

        def running_cost(t, y, weights, tokens, labels):
            y_out = network.readout(weights, network.spikes(y))
            target = jax.nn.one_hot(labels, y_out.shape[-1], dtype=y_out.dtype)
            inside = (t >= window_start).astype(y_out.dtype)
            return inside * jnp.mean(jnp.sum((y_out - target) ** 2, axis=-1)) / self.window

        jumps = jnp.unique(jnp.append(boundaries, window_start))
        controller = diffrax.ClipStepSizeController(
            diffrax.PIDController(rtol=rtol, atol=atol), jump_ts=jumps
        )
        return ODELoss(
            vector_field=vector_field,
            initial_state=initial_state,
            t0=0.0,
            t1=t1,
            running_cost=running_cost,
            solver=solver or diffrax.Tsit5(),
            stepsize_controller=controller,
            dt0=self.dt,
            max_steps=max_steps or n_steps(t1, self.dt),
        )
