"""The problem the `sim`, `es` and `roofline` benchmarks share: the recurrent
Morris-Lecar network of the evidence task (`bbpes.experiments.evidence`) with a
population of perturbed weights and a batch of trials."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..experiments import evidence

PAPER_SIZES = {"n_cells": 128, "batch": 64, "samples": 100, "n_inputs": 50, "hold": 6.0}
"""Case A of the paper (section 3.2.2): 128 cells, 64 trials of 50 inputs x 6 ms, and
the ES population of 100."""

QUICK_SIZES = {"batch": 16, "samples": 10, "n_inputs": 10, "hold": 2.0}

SIZES = ("n_cells", "batch", "samples", "n_inputs", "hold", "dt", "seed")
"""The settings a benchmark takes from its own config; the rest are `evidence`'s."""


def evidence_config(config: dict[str, Any]) -> dict[str, Any]:
    """An `evidence` configuration with this benchmark's sizes (every other setting at
    its default: case A cells, inputs, window)."""
    return {**evidence.EXPERIMENT.defaults, **{k: config[k] for k in SIZES}, "neuron": "case"}


def problem(config: dict[str, Any]):
    """`(task, network, weights, tokens, labels, population)`: `population` holds
    `samples` weight sets (each leaf with a leading axis), the weights plus Gaussian
    noise of `sigma`, as an ES population."""
    ev = evidence_config(config)
    task, network = evidence.build(ev)
    weights = evidence.initial_weights(ev, task, 0)
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
