"""Dopaminergic plasticity (section 3.2): the output layer learns one example at a time,
with no gradient. A link from hidden unit `i` to output `j` "fired" when `h_i > 0`
(and, in the `winner*` readings, output `j` fired too); whether and by how much its
weight changes depends on the output's error `err_j = z_j - l_j` (`z` the softmax
output, `l` the one-hot label) and on the example's cross-entropy `L`.

The paper states the rule three times (the introduction, the first paragraph of 3.2
and the displayed formula with the sentence before it), and the statements disagree.
Each reading below is one of them taken literally; `READINGS` holds the sentence each
reads. Every reading is a per-output factor `g_j` (`plasticity_factor`), and the update
of one example is

    dw_ij = s * step * [h_i > 0] * g_j,

`s = +1` for `direction="increase"` (as printed: "`w_ij + ...`"), `-1` for
`"decrease"` (the rule's value handed to a descent step as if it were a gradient);
`step = eps1` per fired link (`step_unit="link"`), or `eps1 / sum_i h_i`
(`step_unit="logit"`: a normalised step, every output's logit moves by exactly
`eps1 * g_j`).

- `"formula"`: `g_j = [err_j^2 < 1/4] [L > eps0]`, the displayed ratio
  `max(0, 1/4 - err_j^2) max(0, L - eps0) / ((1/4 - err_j^2)(L - eps0))`.
- `"prose"`: `g_j = (1/4 - err_j^2) [L <= eps0]`.
- `"prose_output_loss"`: `g_j = (1/4 - err_j^2) [err_j^2 <= eps0]`, the gate on the
  output's own square error instead of the cross-entropy.
- `"prose_correct"`: `g_j = (1/4 - err_j^2) [argmax z = label]`, the gate on the
  prediction being correct.
- `"winner"`: `g_j = (1/4 - |z - l|^2) [j = argmax z]`: only the links into the output
  that fired (the predicted class) change, by a multiple of `1/4 - err^2` with `err^2`
  the example's square error summed over the outputs.
- `"winner_output_error"`: as `"winner"` with `err^2 = err_j^2` of the output that
  fired.
- `"both_fired"`: `g_j = (1/4 - err_j^2) [z_j > 1/2]`: both nodes fired, an output
  firing when its softmax value passes 1/2.
- `"reward_modulated"`: `g_j = (1/4 - err_j^2) (2 [z_j > 1/2] - 1)`: a three-factor
  rule (presynaptic firing, postsynaptic activity +-1, the reward `1/4 - err_j^2`):
  a good outcome reinforces what output `j` did, a bad one reverses it.
- `"sign"`: `g_j = -sign(err_j) [L > eps0]`: on a bad example every output moves
  towards its target, the sign of Lemma 2's gradient `err_j h_i`. Away from
  `|err_j| = 1/2` this is the sign of `"reward_modulated"`, gated as the formula is.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from .base import AbstractLearner

READINGS = {
    "formula": "3.2, the displayed update: w_ij = w_ij + eps1 max{0, 1/4 - |z_j - l_j|^2} "
    "max{0, L - eps0} / ((1/4 - |z_j - l_j|^2)(L - eps0))",
    "prose": "3.2: 'If the DNN got the prediction correct, i.e. the loss L is at most eps0, "
    "then weight w_ij get increased by a small amount, provided the output neuron j has "
    "low error'; the amount from the introduction: 'modified by a multiple of "
    "(1/4 - err^2)'",
    "prose_output_loss": "3.2: 'weight w_ij get increased ... provided the output neuron j "
    "has low error (|z_j - l_j|^2 <= 1/4)', with 'the loss ... is at most eps0' read as "
    "output j's loss, its square error",
    "prose_correct": "3.2: 'If the DNN got the prediction correct' read as the predicted "
    "class being the label (the 'i.e. the loss is at most eps0' dropped)",
    "winner": "introduction: 'the weight of a link that fired (that is, both nodes fired "
    "during the current training example) is modified by a multiple of (1/4 - err^2), "
    "where err is the error of the current training example. That is, links that fired "
    "are rewarded if the result was good, and actually also punished if it was not'; "
    "3.2: 'its weight is increased if the square error was low (less than 1/4)'",
    "winner_output_error": "the introduction's 'both nodes fired' and 'a multiple of "
    "(1/4 - err^2)', with err the fired output's |z_j - l_j| of the displayed formula",
    "both_fired": "introduction: 'the weight of a link that fired (that is, both nodes "
    "fired during the current training example) is modified by a multiple of "
    "(1/4 - err^2)', an output firing when z_j > 1/2",
    "reward_modulated": "introduction: 'links that fired are rewarded if the result was "
    "good, and actually also punished if it was not', with the reward 1/4 - err_j^2 "
    "multiplying the output's activity (+1 when z_j > 1/2, -1 otherwise), as in "
    "reward-modulated (three-factor) plasticity",
    "sign": "introduction: 'links that fired are rewarded if the result was good, and "
    "actually also punished if it was not', the direction from Lemma 2 "
    "(dL/dw_ij = (z_j - l_j) h_i) and the gate L > eps0 of the formula",
}
RULES = tuple(READINGS)
DIRECTIONS = ("increase", "decrease")
STEPS = ("link", "logit")


def plasticity_factor(rule: str, logits: Array, label: Array, epsilon0: float) -> Array:
    """The factor `g_j` of each output (`(C,)`) that multiplies the step for every
    fired link into it, from one example's `logits (C,)` and integer `label` ()."""
    z = jax.nn.softmax(logits)
    error = z - jax.nn.one_hot(label, logits.shape[-1], dtype=z.dtype)
    error_squared = error**2
    loss = jax.nn.logsumexp(logits) - logits[label]
    winner = jax.nn.one_hot(jnp.argmax(logits), logits.shape[-1], dtype=z.dtype)
    if rule == "formula":
        return ((0.25 - error_squared > 0) & (loss - epsilon0 > 0)).astype(z.dtype)
    if rule == "prose":
        return (0.25 - error_squared) * (loss <= epsilon0)
    if rule == "prose_output_loss":
        return (0.25 - error_squared) * (error_squared <= epsilon0)
    if rule == "prose_correct":
        return (0.25 - error_squared) * (jnp.argmax(logits) == label)
    if rule == "winner":
        return (0.25 - error_squared.sum()) * winner
    if rule == "winner_output_error":
        return (0.25 - error_squared) * winner
    if rule == "both_fired":
        return (0.25 - error_squared) * (z > 0.5)
    if rule == "reward_modulated":
        return (0.25 - error_squared) * jnp.where(z > 0.5, 1.0, -1.0)
    if rule == "sign":
        return -jnp.sign(error) * (loss > epsilon0)
    raise ValueError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")


class DopamineState(eqx.Module):
    params: Array  # (h, C) output weights
    examples: Array  # () int, examples seen


class Dopamine(AbstractLearner):
    """The dopaminergic output layer as a learner; `params` are the output weights
    `(h, C)` (logits `h @ w`).

    **Fields:** `rule` (`RULES`), `direction` (`DIRECTIONS`), `epsilon0` (the loss
    threshold, 0.75 in the paper), `epsilon1` (the step, 1 in the paper), `step_unit`
    (`STEPS`: `"link"`, eps1 per fired link; `"logit"`, eps1 divided by the example's
    summed hidden activity, so that a logit moves by eps1 times its factor).

    `step(state, key, features (B, h), labels (B,))` applies the rule to the `B`
    examples one after another (a `lax.scan`); metrics are over the batch, each
    example measured before its own update.
    """

    rule: str = eqx.field(static=True)
    direction: str = eqx.field(static=True, default="increase")
    epsilon0: float = 0.75
    epsilon1: float = 1.0
    step_unit: str = eqx.field(static=True, default="link")

    def __check_init__(self):
        if self.rule not in RULES or self.direction not in DIRECTIONS:
            raise ValueError(
                f"rule must be one of {RULES} and direction one of {DIRECTIONS}, "
                f"got {self.rule!r}, {self.direction!r}"
            )
        if self.step_unit not in STEPS:
            raise ValueError(f"step_unit must be one of {STEPS}, got {self.step_unit!r}")

    def init(self, params: Array) -> DopamineState:
        return DopamineState(jnp.asarray(params), jnp.zeros((), jnp.int32))

    def update(self, w: Array, features: Array, label: Array) -> tuple[Array, dict[str, Array]]:
        """One example: `w (h, C)`, `features (h,)`, `label` () -> new `w`, metrics."""
        logits = features @ w
        factor = plasticity_factor(self.rule, logits, label, self.epsilon0)
        fired = (features > 0).astype(w.dtype)
        step = self.epsilon1 if self.direction == "increase" else -self.epsilon1
        if self.step_unit == "logit":
            step = step / jnp.maximum(jnp.sum(features * fired), jnp.finfo(w.dtype).tiny)
        w = w + step * fired[:, None] * factor[None, :]
        metrics = {
            "loss": jax.nn.logsumexp(logits) - logits[label],
            "accuracy": (jnp.argmax(logits) == label).astype(w.dtype),
            "updated": jnp.any(factor != 0).astype(w.dtype),
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
