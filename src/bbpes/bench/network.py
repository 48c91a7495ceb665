"""The problem the `sim`, `es` and `roofline` benchmarks share: the recurrent
Morris-Lecar network of the evidence task (`bbpes.tasks.evidence_setup`, as the
`evidence` experiment builds it) with a population of perturbed weights and a batch of
trials."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .. import signals
from ..settings import by_name, defaults_of
from ..tasks import evidence_setup
from ..tasks.evidence_setup import build, initial_weights

PAPER_SIZES = {"n_cells": 128, "batch": 64, "samples": 100, "n_inputs": 50, "hold": 6.0}
"""Case A of the paper (section 3.2.2): 128 cells, 64 trials of 50 inputs x 6 ms, and
the ES population of 100."""

QUICK_SIZES = {"batch": 16, "samples": 10, "n_inputs": 10, "hold": 2.0}

SIZES = ("n_cells", "batch", "samples", "n_inputs", "hold", "dt", "seed")
"""The settings a benchmark takes from its own config; the rest are `EVIDENCE_VALUES`."""

EVIDENCE_VALUES: dict[str, Any] = {
    **{
        key: defaults_of(evidence_setup.SETTINGS)[key]
        for key in (
            "case",
            "neuron",
            "input_dim",
            "window",
            "p_null",
            "p_favoured",
            "i_app",
            "in_scale",
            "rec_scale",
            "out_scale",
            "out_bias",
            "lr_es",
        )
    },
    "sigma": by_name(signals.knob_settings())["sigma"].default,
}
"""The `evidence` experiment's defaults of the other settings the problem needs (case A
cells, the inputs, the readout window, the initial weights' scales, ES's sigma and
step size): the task's declarations and the signal knob's default, so that no
benchmark reads an experiment."""


def evidence_config(config: dict[str, Any]) -> dict[str, Any]:
    """An evidence configuration (`bbpes.tasks.evidence_setup`) with this benchmark's
    sizes and `EVIDENCE_VALUES` for the rest."""
    return {**EVIDENCE_VALUES, **{k: config[k] for k in SIZES}}


def problem(config: dict[str, Any]):
    """`(task, network, weights, tokens, labels, population)`: `population` holds
    `samples` weight sets (each leaf with a leading axis), the weights plus Gaussian
    noise of `sigma`, as an ES population."""
    ev = evidence_config(config)
    task, network = build(ev)
    weights = initial_weights(ev, task, 0)
    tokens, labels = task.trials(config["batch"], [config["seed"], 2, 0, 0])
    leaves, treedef = jax.tree.flatten(weights)
    keys = jax.random.split(jax.random.key(config["seed"]), len(leaves))
    population = jax.tree.unflatten(
        treedef,
        [
            leaf + ev["sigma"] * jax.random.normal(k, (config["samples"], *leaf.shape), leaf.dtype)
            for leaf, k in zip(leaves, keys)
        ],
    )
    return task, network, weights, jnp.asarray(tokens), jnp.asarray(labels), population


def neuron_steps(config: dict[str, Any], task, members: int) -> int:
    """Neuron-steps of one forward pass of `members` weight sets over the batch."""
    steps = task.n_inputs * task.hold_steps
    return members * config["batch"] * config["n_cells"] * steps


def low_rank_population(config: dict[str, Any], weights, rank: int, seed: int = 1):
    """`(population, in_axes)`: `samples` low-rank ES members of `weights` (EGGROLL): every
    matrix a `LowRank(base, A, B, sigma / sqrt(rank))` whose `base` is the unperturbed
    matrix, shared (`in_axes` None), with Gaussian `A: (samples, m, rank)` and
    `B: (samples, n, rank)`; `b_out` plus Gaussian noise of `sigma`. Give `in_axes` to
    `jax.vmap`."""
    from ..estimators.low_rank import LowRank

    sigma, samples = evidence_config(config)["sigma"], config["samples"]
    keys = iter(jax.random.split(jax.random.fold_in(jax.random.key(config["seed"]), seed), 7))

    def member(w):
        (m, n), dtype = w.shape, w.dtype
        a = jax.random.normal(next(keys), (samples, m, rank), dtype)
        b = jax.random.normal(next(keys), (samples, n, rank), dtype)
        return LowRank(w, a, b, jnp.asarray(sigma / rank**0.5, dtype))

    matrices = ("w_in", "w_rec", "w_out")
    noise = sigma * jax.random.normal(next(keys), (samples, *weights.b_out.shape))
    population = type(weights)(
        *(member(getattr(weights, name)) for name in matrices),
        b_out=weights.b_out + noise.astype(weights.b_out.dtype),
    )
    shared = LowRank(None, 0, 0, None)
    return population, type(weights)(shared, shared, shared, 0)


def plain_scan(network, w_rec: jax.Array, drive: jax.Array, steps: int):
    """The baseline the network is measured against: a plain `jax.lax.scan` of
    `steps` Morris-Lecar steps of a batch of 128-cell networks that all share one weight
    matrix, written as directly as it can be:

        T = T(V_n) (Eq. 11);  I = drive + s T @ w_rec.T;  (V, w)_{n+1} = cell.step((V, w)_n, I)

    with the network's own cell stepper, `drive` `(batch, N)` held constant, no readout,
    no trajectory kept. Returns the final state."""
    cell, scale, dt = network.cell, network.current_scale, network.dt
    state0 = tuple(s.astype(drive.dtype) for s in cell.initial_state(drive.shape))

    def body(state, _):
        spikes = cell.output(state)
        return cell.step(state, drive + scale * (spikes @ w_rec.T), dt), None

    return jax.lax.scan(body, state0, None, length=steps)[0]
