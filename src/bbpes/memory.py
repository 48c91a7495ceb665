"""How much memory a computation needs: read from XLA's compiled program without running
it (`compiled_peak_bytes`, `learning_signal_peak_bytes`), or measured as the peak
resident memory of a fresh process that runs it once (`subprocess_peak_rss`); and the
memory a run may use (`memory_limit_bytes`).

What one learning signal of the evidence network needs as its trial grows (the
`memory` experiment and `bbpes bench memory`) is `bbpes.tasks.evidence_memory`, built
on these.
"""

from __future__ import annotations

import json
import subprocess
import sys
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


def run_learning_signal(learner: Any, params: Any, key: jax.Array, *batch: Any) -> None:
    """Evaluate once, and wait for, the program `learning_signal_peak_bytes` measures:
    the estimator of `learner` where it has one, else one `step` from `init(params)`."""
    estimator = getattr(learner, "estimator", None)
    if estimator is not None:
        jax.block_until_ready(jax.jit(estimator)(params, key, *batch))
    else:
        jax.block_until_ready(jax.jit(learner.step)(learner.init(params), key, *batch))


def peak_rss_bytes() -> int:
    """The peak resident memory of this process's program so far (bytes): Linux's
    `VmHWM`, which starts afresh at `exec` (`ru_maxrss` does not: a child started from
    a large process reports the parent's peak), else `ru_maxrss`."""
    import resource

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


_CHILD = """\
import json, sys, jax
jax.config.update('jax_enable_x64', {x64})
from bbpes.imports import load_reference
from bbpes.memory import peak_rss_bytes
load_reference(sys.argv[1], 'a function')(*json.loads(sys.argv[2]))
print(json.dumps(peak_rss_bytes()))
"""


def subprocess_peak_rss(reference: str, *args: Any, x64: bool = False) -> int:
    """The peak resident memory (bytes) of a fresh Python that calls the function
    `reference` (`package.module:function`) with `args` (JSON values) once, in float64
    if `x64`: what running it costs, imports and JAX's runtime included (subtract a
    call that builds the same problem and runs nothing to get the computation's own)."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(x64=bool(x64)), reference, json.dumps(args)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


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
