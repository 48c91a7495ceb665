"""The evidence task and its recurrent network as a configuration describes them: the
cases of the BBPES paper (section 3.2), the network of any registered cell, the
initial weights of each training run, the loss in every form a learning signal may
need (`bbpes.signals.LossForms`), and the spike rates inside the network.

Used by the `evidence` and `memory` experiments, the study's evidence regimes and by
`bbpes bench`; a configuration is a mapping with the keys of `SETTINGS` (the task's
settings, which `evidence` declares as its own: `bbpes show evidence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .. import signals
from ..estimators.backprop import checkpointed_scan, truncated_scan
from ..models.bnn import RecurrentNetwork, Weights, init_weights
from ..neurons import registry
from ..settings import MAX_INT32, Setting
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

MAX_SOLVER_STEPS = MAX_INT32
"""The largest step budget of a solve (XLA counts in int32)."""


class _Cells:
    """The `neuron` values: 'case', or a registered cell (plugins' included)."""

    def __contains__(self, name: object) -> bool:
        return name == "case" or name in registry.CELLS

    def __iter__(self):
        return iter(["case", *registry.CELLS])


SETTINGS = (
    Setting(
        "case",
        "A",
        "A: non-explosive 300 ms; B: explosive 300 ms; C: non-explosive 1 s",
        choices=tuple(CASES),
    ),
    Setting(
        "neuron",
        "case",
        "cell model (a name in bbpes.neurons.CELLS), or 'case' for the case's",
        choices=_Cells(),
    ),
    Setting("hold", 0.0, "time each input is held", "ms", low=0, zero="the case's, 6 or 20 ms"),
    Setting("n_cells", 128, "cells in the recurrent network", low=1, quick=32),
    Setting("batch", 64, "trials per iteration", low=1, quick=32),
    Setting("lr", 5e-4, "Adam learning rate of the gradient signals", positive=True, quick=0.002),
    Setting("lr_es", 0.002, "Adam learning rate of the losses-only signals", positive=True),
    Setting(
        "clip", 20.0, "clip each gradient's global norm to this before Adam", low=0, zero="off"
    ),
    Setting("test_trials", 1000, "test trials", low=1, quick=256),
    Setting("n_inputs", 50, "inputs per trial", low=1, quick=10),
    Setting("input_dim", 32, "dimension of each input token", low=1),
    Setting("window", 10.0, "readout window at the end of the trial", "ms", positive=True),
    Setting("dt", 0.1, "integration step", "ms", positive=True),
    Setting("p_null", 0.25, "probability of a null input", low=0, high=1),
    Setting(
        "p_favoured",
        0.5,
        "probability of the trial's favoured type (the rest split evenly)",
        low=0,
        high=1,
    ),
    Setting(
        "i_app",
        1.0,
        "fixed bias current, in units of the cell's tonic-firing current",
        any_value=True,
    ),
    Setting(
        "in_scale", 1.0, "std of W_in x at init (units of the cell's tonic-firing current)", low=0
    ),
    Setting("rec_scale", 0.0, "std of W_rec T at init for all cells firing (same units)", low=0),
    Setting("out_scale", 0.1, "std of the readout weights at init", low=0),
    Setting("out_bias", 1 / 3, "the readout's initial bias", any_value=True),
    Setting("ode_rtol", 1e-4, "pnde/fnde solver relative tolerance", positive=True),
    Setting("ode_atol", 1e-4, "pnde/fnde solver absolute tolerance", positive=True),
    Setting(
        "ode_max_steps",
        0,
        "pnde/fnde solver step budget (pnde's memory grows with it; "
        "Hodgkin-Huxley needs about 10x)",
        low=0,
        high=MAX_SOLVER_STEPS,
        zero="the stepper's step count",
    ),
)
"""The task's settings (`bbpes.settings.Setting`): the case, the cell, the network and
its initial weights, the trials, the adjoints' solver and the Adam steps that suit this
network (`lr`, `lr_es`, `clip`). With `KNOBS` and the signal knobs' own defaults, their
defaults are the paper's task (`evidence`'s defaults; `seed` 0)."""

KNOBS = {"es_chunk": 20}
"""The task's own values of signal knobs (`bbpes.signals.knob_settings`): ES evaluates
its population 20 networks at a time (a network of 128 cells on 64 trials each)."""


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


def optimizer(config: Mapping[str, Any], method: str) -> optax.GradientTransformation:
    """The optimizer that trains the evidence network with `method`: Adam at `lr_es`
    (losses-only signals) or `lr` (gradients), with a cosine decay to a tenth over
    `steps` when `lr_schedule` is "cosine", after a clip of the gradient's global norm
    to `clip` for the signals that take it (`bbpes.signals.Signal.optimizer`)."""

    def adam(lr):
        if config["lr_schedule"] == "cosine":
            lr = optax.cosine_decay_schedule(lr, config["steps"], alpha=0.1)
        return optax.adam(lr)

    return signals.signal(method).optimizer(config, adam)


def make_learner(
    method: str, task: EvidenceTask, network: RecurrentNetwork, config: Mapping[str, Any], mesh=None
):
    """The learner of `method` on the evidence loss (`loss_forms`), with `optimizer`,
    the signal knobs of `config` and the initial weights' size (ES's population sharded
    over `mesh`, if one is given)."""
    extra = {"mesh": mesh} if mesh is not None else {}
    forms = loss_forms(task, network, config)
    weights = initial_weights(config, task, 0)
    return signals.learner_for(method, forms, optimizer(config, method), config, weights, **extra)


def member_bytes(config: Mapping[str, Any]) -> float:
    """A lower bound on the bytes of one (perturbed) network on a batch, float32: its
    weights `n_cells x (n_cells + input_dim + 4)` and the cell state and spikes of
    every trial `3 x batch x n_cells`."""
    n = config["n_cells"]
    return 4.0 * (n * (n + config["input_dim"] + 4) + 3 * config["batch"] * n)
