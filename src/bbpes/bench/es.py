"""`bbpes bench es`: one ES gradient step of ours against evosax's OpenES on the same
loss and population, in the same process; and our ES step against BPTT's step.

The loss is the evidence task on the recurrent Morris-Lecar network (Eq. 12), one
batch of trials. A step is what a training iteration costs. Ours is
`GradientLearner(es(loss, sigma, S, center=False), adam).step`: S perturbed losses,
mirrored, in one vmapped batch, the same work as evosax's generation (`ask`, the S
losses vmapped, `tell` with its centred-rank shaping and the same Adam), so
`evosax_over_ours` compares the two implementations of one job. Ours with the centre
(`es`'s default: the unperturbed loss is one more member of the batch, S + 1
evaluations, and is what the step reports) is timed too (`..._with_center`,
`center_cost` = its extra time, about 1 / S). BPTT's is
`GradientLearner(bptt(loss), adam).step`. Each is jitted and timed after a warm-up
call (compilation excluded). Ratios above 1 mean ours is faster.

With `paper=True` (the default of `--quick`) the ES and evosax steps are timed once
more at the paper's sizes (`PAPER_SIZES`, `paper_repeat` timed calls), so that one
command gives evosax / ours at both sizes. evosax is imported only here, when it is
installed: without it (a GPU box may have none) the benchmark reports ours only, with
a note.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import equinox as eqx
import jax
import optax

from ..estimators import bptt, es
from ..learners import GradientLearner
from . import Benchmark
from .network import PAPER_SIZES, QUICK_SIZES, evidence_config, neuron_steps, problem
from .timing import Timer, load_average, time_interleaved


def evosax_available() -> bool:
    try:
        import evosax.algorithms  # noqa: F401
    except ImportError:
        return False
    return True


def learner_step(learner: GradientLearner, weights, *batch):
    """A zero-argument call of the learner's jitted step from fixed state and key."""
    state = learner.init(weights)
    step = eqx.filter_jit(learner.step)
    key = jax.random.key(1)
    return lambda: step(state, key, *batch)


def evosax_step(loss, weights, samples: int, sigma: float, lr: float):
    """A zero-argument call of one jitted OpenES generation: ask, evaluate, tell."""
    from evosax.algorithms import Open_ES  # optional: see `evosax_available`

    strategy = Open_ES(
        population_size=samples,
        solution=weights,
        optimizer=optax.adam(lr),
        std_schedule=optax.constant_schedule(sigma),
    )
    params = strategy.default_params
    state = strategy.init(jax.random.key(0), weights, params)

    @jax.jit
    def generation(state, key):
        ask_key, tell_key = jax.random.split(key)
        population, state = strategy.ask(ask_key, state, params)
        fitness = jax.vmap(loss)(population)
        state, _ = strategy.tell(tell_key, population, fitness, state, params)
        return state

    key = jax.random.key(1)
    return lambda: generation(state, key)


def measure(
    config: dict[str, Any],
    *,
    with_evosax: bool,
    with_bptt: bool,
    timer: Timer = time_interleaved,
) -> dict[str, Any]:
    """Seconds of our ES step, with and without the centre (and evosax's, BPTT's) at
    `config`'s sizes, timed together by `timer`, and their ratios."""
    ev = evidence_config(config)
    sigma, lr, samples = ev["sigma"], ev["lr_es"], config["samples"]
    out: dict[str, Any] = {"load_average": load_average()}
    with jax.enable_x64(False):
        task, network, weights, tokens, labels, _ = problem(config)
        loss = partial(task.loss, network)
        batch = (weights, tokens, labels)
        adam = optax.adam(lr)
        calls = {
            "es": learner_step(
                GradientLearner(es(loss, sigma, samples, center=False), adam), *batch
            ),
            "es_with_center": learner_step(GradientLearner(es(loss, sigma, samples), adam), *batch),
        }
        if with_evosax:
            member_loss = lambda w: loss(w, tokens, labels)
            calls["evosax_open_es"] = evosax_step(member_loss, weights, samples, sigma, lr)
        if with_bptt:
            calls["bptt"] = learner_step(GradientLearner(bptt(loss), adam), *batch)
        timed = timer(calls, config["repeat"])
    for name, seconds in timed.items():
        out[f"{name}_step_seconds"] = seconds.best
        out[f"{name}_step_seconds_median"] = seconds.median
    ours, with_center = timed["es"].best, timed["es_with_center"].best
    out["center_cost"] = with_center / ours - 1
    out["es_neuron_steps_per_s"] = neuron_steps(config, task, samples) / ours
    if with_evosax:
        out["evosax_over_ours"] = timed["evosax_open_es"].best / ours
        out["evosax_over_ours_with_center"] = timed["evosax_open_es"].best / with_center
    if with_bptt:
        out["bptt_over_es"] = timed["bptt"].best / with_center
    return out


def run(config: dict[str, Any], *, timer: Timer = time_interleaved) -> dict[str, Any]:
    with_evosax = evosax_available()
    out = measure(config, with_evosax=with_evosax, with_bptt=True, timer=timer)
    ratios = [out["evosax_over_ours"]] if with_evosax else []
    if config["paper"]:
        paper = {**config, **PAPER_SIZES, "repeat": config["paper_repeat"]}
        measured = measure(paper, with_evosax=with_evosax, with_bptt=False, timer=timer)
        out |= {f"paper_{name}": value for name, value in measured.items()}
        ratios += [measured["evosax_over_ours"]] if with_evosax else []
    if with_evosax:
        out["target_es_no_slower_than_evosax"] = min(ratios) >= 1.0
    else:
        out["note"] = "evosax is not installed: our ES and BPTT steps only"
    out["load_average_end"] = load_average()
    return out


BENCHMARK = Benchmark(
    name="es",
    summary="one ES step: ours vs evosax OpenES (same loss and population, quick and paper "
    "sizes), and vs BPTT",
    run=run,
    defaults={**PAPER_SIZES, "dt": 0.1, "seed": 0, "repeat": 3, "paper": False, "paper_repeat": 3},
    quick={**QUICK_SIZES, "n_cells": 32, "repeat": 30, "paper": True, "paper_repeat": 1},
)
