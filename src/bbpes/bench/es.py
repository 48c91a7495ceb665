"""`bbpes bench es`: one ES gradient step of ours against evosax's OpenES on the same
loss and population, in the same process; and our ES step against BPTT's step.

The loss is the evidence task on the recurrent Morris-Lecar network (Eq. 12), one
batch of trials. A step is what a training iteration costs: ours is
`GradientLearner(es(loss, sigma, S), adam).step` (S perturbed losses, mirrored, plus the
unperturbed one that it reports); evosax's is `ask`, the S losses vmapped, `tell` (its
centred-rank shaping and the same Adam); BPTT's is `GradientLearner(bptt(loss), adam)
.step`. Each is jitted and timed after a warm-up call (compilation excluded).
Ratios above 1 mean ours is faster.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import equinox as eqx
import jax
import optax
from evosax.algorithms import Open_ES

from ..estimators import bptt, es
from ..learners import GradientLearner
from . import Benchmark
from .network import PAPER_SIZES, QUICK_SIZES, evidence_config, neuron_steps, problem
from .timing import load_average, time_call


def learner_step(learner: GradientLearner, weights, *batch):
    """A zero-argument call of the learner's jitted step from fixed state and key."""
    state = learner.init(weights)
    step = eqx.filter_jit(learner.step)
    key = jax.random.key(1)
    return lambda: step(state, key, *batch)


def evosax_step(loss, weights, samples: int, sigma: float, lr: float):
    """A zero-argument call of one jitted OpenES generation: ask, evaluate, tell."""
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


def run(config: dict[str, Any]) -> dict[str, Any]:
    ev = evidence_config(config)
    sigma, lr, samples = ev["sigma"], ev["lr_es"], config["samples"]
    with jax.enable_x64(False):
        task, network, weights, tokens, labels, _ = problem(config)
        loss = partial(task.loss, network)
        ours = time_call(
            learner_step(
                GradientLearner(es(loss, sigma, samples), optax.adam(lr)), weights, tokens, labels
            ),
            config["repeat"],
        )
        theirs = time_call(
            evosax_step(lambda w: loss(w, tokens, labels), weights, samples, sigma, lr),
            config["repeat"],
        )
        backprop = time_call(
            learner_step(GradientLearner(bptt(loss), optax.adam(lr)), weights, tokens, labels),
            config["repeat"],
        )
    return {
        "load_average": load_average(),
        "es_step_seconds": ours["best"],
        "evosax_open_es_step_seconds": theirs["best"],
        "bptt_step_seconds": backprop["best"],
        "es_step_seconds_median": ours["median"],
        "evosax_open_es_step_seconds_median": theirs["median"],
        "bptt_step_seconds_median": backprop["median"],
        "evosax_over_ours": theirs["best"] / ours["best"],
        "evosax_over_ours_per_evaluation": theirs["best"]
        / samples
        / (ours["best"] / (samples + 1)),
        "bptt_over_es": backprop["best"] / ours["best"],
        "es_neuron_steps_per_s": neuron_steps(config, task, samples + 1) / ours["best"],
        "target_es_no_slower_than_evosax": theirs["best"] / ours["best"] >= 1.0,
    }


BENCHMARK = Benchmark(
    name="es",
    summary="one ES step: ours vs evosax OpenES (same loss and population), and vs BPTT",
    run=run,
    defaults={**PAPER_SIZES, "dt": 0.1, "seed": 0, "repeat": 3},
    quick={**QUICK_SIZES, "n_cells": 32},
)
