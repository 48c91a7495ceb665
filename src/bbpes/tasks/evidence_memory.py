"""How much memory one learning signal of the evidence network needs as the trial grows
(BBPES paper, section 3.2.2, case C: "over 25 GB" for BPTT): the measurement of the
`memory` experiment (its table and figure) and of `bbpes bench memory` (its JSON).

A measurement is a configuration with the sizes of the `memory` experiment's settings
(`n_cells`, `batch`, `n_inputs`, `input_dim`, `dt`, `window`, `neuron`, `ode_rtol`,
`ode_atol`, `x64`, `seed`, the signal knobs, `method`, `lengths_ms`, `rss`); at each
trial length the `n_inputs` inputs are held `length / n_inputs` ms each
(`measurement_config`). For each method and length:

- `peak_bytes`: XLA's buffer assignment of the compiled learning signal
  (`bbpes.memory.learning_signal_peak_bytes`: the estimator `(weights, key, tokens,
  labels) -> (loss, grads)` of a gradient signal, one learner step of any other),
  arguments + outputs + temporaries - aliased buffers. Deterministic, and it needs
  compiling only, so sizes far beyond this machine's memory are measured too;
- `measured_rss` (with `rss`, for the sizes that fit): the peak resident memory of a
  fresh process that evaluates it once (`bbpes.memory.subprocess_peak_rss`), minus
  that of one that builds the same problem and runs nothing.

pnde's figure is the dense-output buffer diffrax allocates for `max_steps` steps (the
fixed stepper's step count), not the steps a solve happens to take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax

from .. import signals
from ..devices import available_memory_bytes
from ..memory import learning_signal_peak_bytes, run_learning_signal, subprocess_peak_rss
from ..progress import log
from ..settings import defaults_of
from . import evidence_setup
from .evidence_setup import build, example_batch, initial_weights, make_learner

EVIDENCE_VALUES: dict[str, Any] = {
    **{
        key: defaults_of(evidence_setup.SETTINGS)[key]
        for key in (
            "case",
            "p_null",
            "p_favoured",
            "i_app",
            "in_scale",
            "rec_scale",
            "out_scale",
            "out_bias",
            "lr",
            "lr_es",
            "clip",
        )
    },
    "lr_schedule": "cosine",
    "steps": 300,
}
"""The `evidence` experiment's defaults of the settings a measurement does not set
(the task's input statistics, the initial weights' scales, the optimizer): the task's
declarations (`evidence_setup.SETTINGS`) and the experiment's cosine schedule over 300
steps, so that the library reads no experiment."""

SIZES = (
    "n_cells",
    "batch",
    "n_inputs",
    "input_dim",
    "dt",
    "window",
    "seed",
    "neuron",
    "ode_rtol",
    "ode_atol",
    "x64",
)
"""The settings a measurement takes from its own configuration (with the signal knobs)."""

RSS_FRACTION = 0.5
"""A size is run for its resident memory only when XLA predicts less than this
fraction of the memory free when the sweep starts."""


def measurement_config(config: Mapping[str, Any], length_ms: float) -> dict[str, Any]:
    """The evidence configuration (`bbpes.tasks.evidence_setup`) of one measurement:
    `EVIDENCE_VALUES`, the sizes and signal knobs of `config`, each input held
    `length_ms / n_inputs` ms, and the ODE step budget at the stepper's step count."""
    knobs = signals.knobs_in(config)
    return {
        **EVIDENCE_VALUES,
        **{key: config[key] for key in SIZES},
        **knobs,
        "ode_max_steps": 0,
        "hold": length_ms / config["n_inputs"],
    }


def learning_signal(method: str, config: Mapping[str, Any]):
    """`(learner, args)` of `method` on the evidence network of `config` (a
    `measurement_config`): its learner (`evidence_setup.make_learner`) and the
    arguments of one learning signal, `(weights, key, tokens, labels)`."""
    task, network = build(config)
    args = (initial_weights(config, task, 0), jax.random.key(0), *example_batch(config, task))
    return make_learner(method, task, network, config), args


def peak_bytes(method: str, config: Mapping[str, Any]) -> int:
    """XLA's peak bytes of one learning signal of `method` (a `measurement_config`)."""
    learner, args = learning_signal(method, config)
    return learning_signal_peak_bytes(learner, *args)


def run_once(method: str, config: Mapping[str, Any]) -> None:
    """Build the problem of `config` and evaluate `method`'s learning signal once
    (nothing for "none"): what `measured_rss` runs in a fresh process."""
    task, network = build(config)
    weights = initial_weights(config, task, 0)
    if method != "none":
        learner = make_learner(method, task, network, config)
        run_learning_signal(learner, weights, jax.random.key(0), *example_batch(config, task))


def measured_rss(method: str, config: Mapping[str, Any]) -> int:
    """The peak resident memory (bytes) of a fresh process that runs `run_once`."""
    return subprocess_peak_rss(
        f"{__name__}:run_once", method, dict(config), x64=bool(config["x64"])
    )


@dataclass(frozen=True)
class Sweep:
    """The memory of each method at each trial length.

    - `lengths`: the trial lengths (ms), increasing;
    - `peak`: method -> XLA's peak bytes at each length;
    - `rss`: method -> measured resident bytes at each length (None where not run).
    """

    lengths: list[float]
    peak: dict[str, list[int]] = field(default_factory=dict)
    rss: dict[str, list[int | None]] = field(default_factory=dict)

    def growth(self, method: str) -> float:
        """Peak bytes at the longest trial over those at the shortest."""
        return self.peak[method][-1] / self.peak[method][0]

    def metrics(self) -> dict[str, Any]:
        """`peak_bytes_{method}_{length}ms`, `rss_bytes_...` (where measured) and
        `growth_{method}`."""
        out: dict[str, Any] = {}
        for method, sizes in self.peak.items():
            for length, need, rss in zip(self.lengths, sizes, self.rss[method]):
                out[f"peak_bytes_{method}_{length:g}ms"] = need
                if rss is not None:
                    out[f"rss_bytes_{method}_{length:g}ms"] = rss
            out[f"growth_{method}"] = self.growth(method)
        return out


def sweep(config: Mapping[str, Any], methods: Sequence[str]) -> Sweep:
    """Every method of `methods` at every length of `config["lengths_ms"]`; with
    `config["rss"]`, each size predicted to need less than `RSS_FRACTION` of the free
    memory is also run in a fresh process (its resident memory over that of a process
    that runs nothing at that length)."""
    lengths = [float(x) for x in config["lengths_ms"]]
    available = available_memory_bytes()
    result = Sweep(lengths, {m: [] for m in methods}, {m: [] for m in methods})
    for length in lengths:
        sub = measurement_config(config, length)
        baseline = measured_rss("none", sub) if config["rss"] else 0
        for method in methods:
            need = peak_bytes(method, sub)
            result.peak[method].append(need)
            run = config["rss"] and need < RSS_FRACTION * available
            result.rss[method].append(measured_rss(method, sub) - baseline if run else None)
            log(f"[memory] {method:18s} {length:6g} ms: {need / 1e6:10.1f} MB")
    return result
