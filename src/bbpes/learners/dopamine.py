"""Dopaminergic plasticity (section 3.2): the output layer learns one example at a time,
with no gradient. A link from hidden unit `i` to output `j` "fired" when `h_i > 0`;
whether and by how much its weight changes depends on the output's error
`err_j = z_j - l_j` (`z` the softmax output, `l` the one-hot label) and on the
example's cross-entropy `L`.

The paper states the rule twice, and the two statements disagree:

- `"formula"`, the displayed equation:
  `dw_ij = eps1 max(0, 1/4 - err_j^2) max(0, L - eps0) / ((1/4 - err_j^2)(L - eps0))`,
  i.e. `eps1` times the indicator that `err_j^2 < 1/4` and `L > eps0`: links to
  outputs that were right (low error) are strengthened on examples that went badly.
- `"prose"`, the text: on an example that went well (`L <= eps0`), a fired link
  changes by a multiple of `1/4 - err_j^2` (strengthened when output `j` was right,
  weakened when it was wrong): `dw_ij = eps1 (1/4 - err_j^2) [L <= eps0]`.

Both are written as increases ("`w_ij + ...`"). `direction="decrease"` applies the same
quantity with the opposite sign, as happens when a rule's value is handed to a
gradient-descent step as if it were the gradient; see docs/nne_dopamine.md for which
of the four reproduces Table 2.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from .base import AbstractLearner

RULES = ("formula", "prose")
DIRECTIONS = ("increase", "decrease")


def plasticity_gate(rule: str, loss: Array, error_squared: Array, epsilon0: float) -> Array:
    """The factor of each output `j` (`(C,)`) that multiplies `eps1` for every fired
    link into it, from the example's loss `L` (scalar) and `err_j^2` (`(C,)`)."""
    if rule == "formula":
        return ((0.25 - error_squared > 0) & (loss - epsilon0 > 0)).astype(error_squared.dtype)
    if rule == "prose":
        return (0.25 - error_squared) * (loss <= epsilon0)
    raise ValueError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")


class DopamineState(eqx.Module):
    params: Array  # (h, C) output weights
    examples: Array  # () int, examples seen


class Dopamine(AbstractLearner):
    """The dopaminergic output layer as a learner; `params` are the output weights
    `(h, C)` (logits `h @ w`).

    **Fields:** `rule` (`RULES`), `direction` (`DIRECTIONS`), `epsilon0` (the loss
    threshold, 0.75 in the paper), `epsilon1` (the step, 1 in the paper).

    `step(state, key, features (B, h), labels (B,))` applies the rule to the `B`
    examples one after another (a `lax.scan`); metrics are over the batch, each
    example measured before its own update.
    """

    rule: str = eqx.field(static=True)
    direction: str = eqx.field(static=True, default="increase")
    epsilon0: float = 0.75
    epsilon1: float = 1.0

    def __check_init__(self):
        if self.rule not in RULES or self.direction not in DIRECTIONS:
            raise ValueError(
                f"rule must be one of {RULES} and direction one of {DIRECTIONS}, "
                f"got {self.rule!r}, {self.direction!r}"
            )

    def init(self, params: Array) -> DopamineState:
        return DopamineState(jnp.asarray(params), jnp.zeros((), jnp.int32))

    def update(self, w: Array, features: Array, label: Array) -> tuple[Array, dict[str, Array]]:
        """One example: `w (h, C)`, `features (h,)`, `label` () -> new `w`, metrics."""
        logits = features @ w
        z = jax.nn.softmax(logits)
        target = jax.nn.one_hot(label, w.shape[1], dtype=w.dtype)
        loss = jax.nn.logsumexp(logits) - logits[label]
        gate = plasticity_gate(self.rule, loss, (z - target) ** 2, self.epsilon0)
        fired = (features > 0).astype(w.dtype)
        sign = 1.0 if self.direction == "increase" else -1.0
        w = w + sign * self.epsilon1 * fired[:, None] * gate[None, :]
        metrics = {
            "loss": loss,
            "accuracy": (jnp.argmax(logits) == label).astype(w.dtype),
            "updated": jnp.any(gate != 0).astype(w.dtype),
        }
        return w, metrics

    def step(self, state: DopamineState, key: Array, *batch: Any) -> tuple[DopamineState, dict]:
        features, labels = batch
        del key

        def one(w, example):
            return self.update(w, *example)

        w, metrics = jax.lax.scan(one, state.params, (features.astype(state.params.dtype), labels))
        new = DopamineState(w, state.examples + labels.shape[0])
        return new, {
            "loss": metrics["loss"].mean(),
            "train_accuracy_online": metrics["accuracy"].mean(),
            "updated_fraction": metrics["updated"].mean(),
        }
