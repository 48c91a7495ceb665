"""Independent learners stepped together under one `jax.vmap`: several runs (seeds) of
one experiment, or the values of a hyperparameter sweep, trained by one compiled step.

Each member is guarded on its own (`accept_update`): a member whose step is non-finite
keeps its whole state while the others update, so one diverging run does not stop the
rest of the ensemble.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from .base import AbstractLearner, accept_update


class Ensemble(AbstractLearner):
    """`M` independent learners stepped together under one `jax.vmap`.

    **Fields:**

    - `make(hyper) -> learner`: builds member m's learner from its hyperparameters
      (`hyper` sliced at m; e.g. `{"sigma": scalar, "seed": int scalar}`); called under
      `vmap`, so a swept value such as ES's sigma is traced and one compiled step
      serves the whole sweep.
    - `hyper`: a pytree of arrays with leading axis `M`. If it holds `"seed"`, member m
      draws its noise from `fold_in(key, hyper["seed"][m])` (members that share a seed,
      as in a sigma sweep, share their perturbation directions); else from
      `fold_in(key, m)`.

    The params and the data of `step` carry the leading axis `M` too. Metrics: `loss`,
    the mean over the members whose step was accepted (`inf` if none was);
    `rejected`, how many members' steps were rejected; `loss_m`, `rejected_m` (0 or 1)
    and, where the members report one, `grad_norm_m`: member m's.
    """

    make: Callable[[Any], AbstractLearner] = eqx.field(static=True)
    hyper: Any

    @property
    def members(self) -> int:
        return jax.tree.leaves(self.hyper)[0].shape[0]

    def _seeds(self) -> Array:
        if isinstance(self.hyper, dict) and "seed" in self.hyper:
            return jnp.asarray(self.hyper["seed"])
        return jnp.arange(self.members)

    def init(self, params: Any) -> Any:
        return jax.vmap(lambda h, p: self.make(h).init(p))(self.hyper, params)

    def params(self, state: Any) -> Any:
        # a member's params as its own learner reads them, stacked (pure selection)
        return jax.vmap(lambda h, s: self.make(h).params(s))(self.hyper, state)

    def step(self, state: Any, key: Array, *batch: Any) -> tuple[Any, dict[str, Array]]:
        def one(h, seed, s, *b):
            new, metrics = self.make(h).step(s, jax.random.fold_in(key, seed), *b)
            new, ok = accept_update(s, new, metrics)
            return new, metrics, ok

        new, metrics, ok = jax.vmap(one)(self.hyper, self._seeds(), state, *batch)
        losses = metrics["loss"]
        mean = jnp.sum(jnp.where(ok, losses, 0.0)) / jnp.maximum(jnp.sum(ok), 1)
        out = {
            "loss": jnp.where(jnp.any(ok), mean, jnp.inf),
            "rejected": jnp.sum(~ok, dtype=jnp.int32),
        }
        for m in range(self.members):
            out[f"loss_{m}"] = losses[m]
            out[f"rejected_{m}"] = (~ok[m]).astype(jnp.int32)
            if "grad_norm" in metrics:
                out[f"grad_norm_{m}"] = metrics["grad_norm"][m]
        return new, out
