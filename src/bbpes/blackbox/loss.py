"""`blackbox_loss`: a loss evaluated outside JAX (by a `RayEvaluator`: a NEURON or
Brian2 simulation on a cluster) as a JAX function of the parameters, so that every
forward-only learner trains on it unchanged.

The evaluation is a `jax.pure_callback` whose batching sends a whole population in one
call: under `jax.vmap` (what `es`, the evosax learners and `Ensemble` do to the loss)
the callback receives every member at once (`vmap_method="broadcast_all"`, any number
of nested vmaps) and hands them to the evaluator as one `evaluate` call, whose workers
then run them in parallel. The splitting of the stacked parameters into parameter
sets is `bbpes.ray_es`'s, the same as for `ray_es`.

The loss is jittable and vmappable, not differentiable: signals that need a gradient
of the loss (`bptt`, `forward_gradient`) cannot use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..ray_es import host_losses


def blackbox_loss(evaluator: Any, *, dtype: Any = None) -> Callable[[Any], jax.Array]:
    """`loss(params) -> scalar` evaluated by `evaluator`.

    **Arguments:**

    - `evaluator`: a `bbpes.ray_evaluator.RayEvaluator` (or anything with its
      `evaluate(population) -> (P,) losses` and `last` counts), whose loss takes
      `params` with numpy leaves of the same shapes.
    - `dtype`: the loss's dtype (default: that of the parameters' leaves).

    **Returns:** `loss(params)`, `params` a pytree of arrays; a scalar. Under `vmap`
    over a population `(P, ...)`: `(P,)` from one `evaluator.evaluate` of P sets. A
    sample that fails every retry is NaN (the learners treat it as every non-finite
    loss).
    """

    def loss(params: Any) -> jax.Array:
        leaves, treedef = jax.tree.flatten(params)
        shapes = [np.shape(leaf) for leaf in leaves]
        out = jnp.dtype(dtype or jnp.result_type(*leaves, float))

        def host(*batched: Any) -> np.ndarray:
            arrays = [np.asarray(x) for x in batched]
            batch = arrays[0].shape[: arrays[0].ndim - len(shapes[0])]
            flat = [x.reshape((math.prod(batch), *s)) for x, s in zip(arrays, shapes)]
            losses, _ = host_losses(evaluator, jax.tree.unflatten(treedef, flat))
            return np.asarray(losses, dtype=out).reshape(batch)

        return jax.pure_callback(
            host, jax.ShapeDtypeStruct((), out), *leaves, vmap_method="broadcast_all"
        )

    return loss
