"""How much memory a compiled computation needs, read from XLA without running it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from .devices import available_memory_bytes


def compiled_peak_bytes(fn: Callable[..., Any], *args: Any) -> int:
    """Peak memory (bytes) of `fn(*args)` from XLA's buffer assignment of the compiled
    program (arguments + outputs + temporaries - aliased): deterministic, and obtained by
    compiling only, so it also predicts sizes that would not fit."""
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    return int(
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        + analysis.temp_size_in_bytes
        - analysis.alias_size_in_bytes
    )


def learning_signal_peak_bytes(learner: Any, params: Any, key: jax.Array, *batch: Any) -> int:
    """Peak bytes of one learning signal of `learner` at `params` on `batch`: its
    gradient estimator `(params, key, *batch) -> (loss, grads)` where it has one (a
    `GradientLearner`), else one whole `step` of the learner from `init(params)`."""
    estimator = getattr(learner, "estimator", None)
    if estimator is not None:
        return compiled_peak_bytes(estimator, params, key, *batch)
    return compiled_peak_bytes(learner.step, learner.init(params), key, *batch)


def memory_limit_bytes(
    limit_gb: float = 0.0, fraction: float = 0.8, *, limit_bytes: float | None = None
) -> float:
    """Bytes a computation may use: `limit_bytes` when given, else `limit_gb` GB when
    positive, else `fraction` of what the first device has free now
    (`bbpes.devices.available_memory_bytes`)."""
    if limit_bytes is not None:
        return limit_bytes
    if limit_gb > 0:
        return limit_gb * 1e9
    return fraction * available_memory_bytes()
