"""`bbpes bench ensemble`: would the signals study be cheaper if it trained the runs of
a cell (its seeds, or its tuning values) as one vmapped ensemble instead of one after
another? One step of `members` runs, each from its own network, key and batch, timed
both ways in the same command (interleaved):

- `separate`: the study's own compiled step (`bbpes.study.grid.compiled_step`), called
  once per run;
- `ensemble`: the same guarded step under `jax.vmap` over the runs, jitted once.

`separate_over_ensemble_SIGNAL` above 1 means the ensemble is faster. Both compute the
same update (checked: `max_state_gap_SIGNAL`, the largest difference between the two
new states, float32 reassociation only). A signal whose step cannot run under `vmap`
(Python control flow on a traced value) is reported in `unvmappable_SIGNAL` with the
reason; every signal of the study's evidence regimes, evosax's strategies included,
runs.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError
from ..progress import log
from ..study.grid import compiled_step
from ..train import guarded_step
from . import Benchmark
from .timing import Timer, load_average, time_interleaved


def _stack(trees: list) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _gap(a: Any, b: Any) -> float:
    gaps = [
        float(np.max(np.abs(np.asarray(x, float) - np.asarray(y, float))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        if eqx.is_inexact_array(x)
    ]
    return max(gaps, default=0.0)


def run(config: dict[str, Any], *, timer: Timer = time_interleaved) -> dict[str, Any]:
    from ..signals import signal
    from ..study.regimes import BUDGETS, regimes

    table = regimes()
    if config["members"] < 2:
        raise ConfigError("members must be >= 2 (an ensemble of one is a run)")
    if config["regime"] not in table:
        raise ConfigError(f"regime must be one of {', '.join(table)}, not '{config['regime']}'")
    if config["scale"] not in BUDGETS:
        raise ConfigError(f"scale must be one of {', '.join(BUDGETS)}, not '{config['scale']}'")
    for method in config["signals"]:
        signal(method)  # ConfigError for an unknown name
    regime = table[config["regime"]]
    problem = regime.build(config["scale"])
    runs = list(range(1, config["members"] + 1))
    out: dict[str, Any] = {"load_average": load_average(), "regime": regime.name}
    out["members"], out["scale"] = config["members"], config["scale"]
    with jax.enable_x64(problem.x64):
        for method in config["signals"]:
            out.update(_measure(problem, method, runs, config["repeat"], timer))
    return out


def _measure(problem, method: str, runs: list[int], repeat: int, timer: Timer) -> dict:
    """The `method` entries of the result: one step of `runs` separately and vmapped."""
    step = compiled_step(problem, method)
    learner = step.learner
    states = [learner.init(problem.init(r)) for r in runs]
    batches = [problem.batch(r, 0) if problem.batch is not None else () for r in runs]
    keys = [jax.random.fold_in(jax.random.key(1000 + r), 0) for r in runs]
    vmapped = eqx.filter_jit(eqx.filter_vmap(guarded_step(learner)))
    stacked = (_stack(states), jnp.stack(keys), *_stack(list(batches)))
    try:
        together = vmapped(*stacked)
    except jax.errors.ConcretizationTypeError as error:  # Python control flow on a traced value
        log(f"[ensemble] {method:18s} cannot be vmapped: {type(error).__name__}")
        return {f"unvmappable_{method}": f"{type(error).__name__}: {str(error)[:120]}"}

    def separate():
        return [step(s, k, *b) for s, k, b in zip(states, keys, batches, strict=True)]

    gap = _gap(_stack([new for new, _ in separate()]), together[0])
    timed = timer({"separate": separate, "ensemble": lambda: vmapped(*stacked)}, repeat)
    ratio = timed["separate"].best / timed["ensemble"].best
    log(f"[ensemble] {method:18s} separate / ensemble = {ratio:.2f}")
    return {
        f"max_state_gap_{method}": gap,
        f"separate_seconds_{method}": timed["separate"].best,
        f"ensemble_seconds_{method}": timed["ensemble"].best,
        f"separate_over_ensemble_{method}": ratio,
    }


BENCHMARK = Benchmark(
    name="ensemble",
    summary="the study's runs as one vmapped ensemble against one after another (speedup per signal)",
    run=run,
    defaults={
        "regime": "case_a",
        "scale": "reduced",
        "signals": ["bptt", "es", "evosax:Open_ES"],
        "members": 3,
        "repeat": 5,
    },
    quick={"scale": "quick", "repeat": 3},
)
