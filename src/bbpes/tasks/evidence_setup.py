"""The evidence task and its recurrent network as a configuration describes them: the
cases of the BBPES paper (section 3.2), the network of any registered cell, the
initial weights of each training run, the loss in every form a learning signal may
need (`bbpes.signals.LossForms`), and the spike rates inside the network.

Used by the `evidence` and `memory` experiments and by `bbpes bench`; a configuration
is a mapping with the keys of `evidence`'s settings (`bbpes show evidence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..estimators.backprop import checkpointed_scan, truncated_scan
from ..models.bnn import RecurrentNetwork, Weights, init_weights
from ..neurons import registry
from ..signals import LossForms
from .evidence import EvidenceTask

CASES = {
    "A": {"neuron": "morris_lecar", "hold": 6.0},
    "B": {"neuron": "morris_lecar_explosive", "hold": 6.0},
    "C": {"neuron": "morris_lecar", "hold": 20.0},
}
"""The paper's three cases: the cell model and how long each of the 50 inputs is held (ms)."""

DEFAULT_DRIVE = 100.0
"""The current unit of cells with no entry in `neurons.registry.DRIVE`: Morris-Lecar's
tonic-firing current, µA/cm²."""

FORMS = frozenset({"loss", "checkpointed_loss", "ode_loss", "truncated_loss"})
"""The `LossForms` fields that `loss_forms` fills: every signal needing one of these
can train the evidence network."""

N_OUTPUTS = 3  # one readout per evidence type


def neuron_name(config: Mapping[str, Any]) -> str:
    """The cell model: `config["neuron"]`, or the case's when it is "case"."""
    return CASES[config["case"]]["neuron"] if config["neuron"] == "case" else config["neuron"]


def hold_ms(config: Mapping[str, Any]) -> float:
    """How long each input is held (ms): `config["hold"]`, or the case's when <= 0."""
    return CASES[config["case"]]["hold"] if config["hold"] <= 0 else config["hold"]


def cell_drive(name: str) -> float:
    """The cell's tonic-firing current (its own current unit), the unit of the weights."""
    return float(registry.DRIVE.get(name, DEFAULT_DRIVE))


def build(config: Mapping[str, Any]) -> tuple[EvidenceTask, RecurrentNetwork]:
    """The task and the network that `config` describes (dtype: float32 unless x64)."""
    dtype = jnp.result_type(float)
    task = EvidenceTask.from_seed(
        config["seed"],
        input_dim=config["input_dim"],
        dtype=dtype,
        n_inputs=config["n_inputs"],
        hold=hold_ms(config),
        window=config["window"],
        dt=config["dt"],
        p_null=config["p_null"],
        p_favoured=config["p_favoured"],
    )
    name = neuron_name(config)
    drive = cell_drive(name)
    network = RecurrentNetwork(
        registry.cell_by_name(name),
        i_app=config["i_app"] * drive,
        current_scale=drive,
        dt=config["dt"],
    )
    return task, network


def initial_weights(config: Mapping[str, Any], task: EvidenceTask, run: int) -> Weights:
    """The starting weights of training run `run` (the same for every method): drawn
    from `fold_in(key(seed), run)` with the `*_scale` settings."""
    key = jax.random.fold_in(jax.random.key(config["seed"]), run)
    return init_weights(
        key,
        config["n_cells"],
        task.codes.shape[1],
        N_OUTPUTS,
        in_scale=config["in_scale"],
        rec_scale=config["rec_scale"],
        out_scale=config["out_scale"],
        out_bias=config["out_bias"],
        dtype=task.codes.dtype,
    )


def loss_forms(
    task: EvidenceTask, network: RecurrentNetwork, config: Mapping[str, Any]
) -> LossForms:
    """The loss `(weights, tokens, labels) -> scalar` in the forms of `FORMS`: the
    network's own stepper looping with `lax.scan`, with `checkpointed_scan`, and with
    `truncated_scan` over the input slots (gradients through the last `truncate_slots`
    slots only; 0: a fifth of them, at least one), and the same network as a diffrax
    ODE (tolerances `ode_rtol`, `ode_atol`; `ode_max_steps`, 0 for the stepper's step
    count)."""
    keep = config.get("truncate_slots", 0) or max(1, config["n_inputs"] // 5)
    return LossForms(
        loss=partial(task.loss, network),
        checkpointed_loss=partial(task.loss, network, scan=checkpointed_scan),
        truncated_loss=partial(task.loss, network, scan=partial(truncated_scan, keep=keep)),
        ode_loss=task.ode_loss(
            network,
            rtol=config["ode_rtol"],
            atol=config["ode_atol"],
            max_steps=config["ode_max_steps"] or None,
        ),
    )


def example_batch(config: Mapping[str, Any], task: EvidenceTask):
    """Training batch 0 of run 0: `(tokens (batch, n_inputs), labels (batch,))`."""
    return task.trials(config["batch"], [config["seed"], 2, 0, 0])


def spike_rates(
    network: RecurrentNetwork, weights: Weights, task: EvidenceTask, tokens
) -> tuple[float, float]:
    """(mean rate in Hz over cells and trials, fraction of cells that spike at all) on
    the trials `tokens` `(n, n_inputs)`."""
    rates = eqx.filter_jit(network.firing_rates)(weights, task.inputs(tokens), task.hold_steps)
    return float(jnp.mean(rates)), float(jnp.mean(jnp.mean(rates, axis=0) > 0))
