"""`rober`: a neural ODE (six hidden layers of 5 GELU units) fitted to Robertson's
stiff kinetics by ES and by backpropagation (BBPES paper, section 3.3.2, Fig. 10).

ES trains on the plain loss (mean absolute error over species and log-spaced times, no
rescaling). Backpropagation gets the same loss, through the implicit solver's steps
(`bptt`) or by the adjoints (`pnde`, `fnde`); optionally (`bptt_scaled`) the loss with
each species divided by its largest value, Kim et al.'s remedy. Any signal of
`bbpes.signals` whose loss form the task offers (the loss, and the ODE) is a method. A method whose solve or
gradient breaks down is reported, not hidden: a step with a non-finite update is
rejected by the training loop (and counted), and an error raised from inside the solver
(e.g. lineax refusing a singular Newton system while differentiating) stops that method,
with the message in the metrics.

The network's output is dy/dt itself (`field=plain`, the paper's setting), or is
normalised as Kim et al. do, by each species' scale over the time span
(`field=normalised`); either way the loss is the plain one. Every method trains the
same field from the same initial weights.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax

from .. import plotting, signals
from ..framework import Experiment, Setting
from ..framework.checks import (
    SignalChoices,
    check_signals,
    methods_of,
    require,
    signal_choices,
    signal_learner,
    signal_optimizer,
    signal_settings,
)
from ..models.neural_ode import NeuralODE
from ..runs import RunDir
from ..signals import LossForms
from ..tasks.rober import SETTINGS as TASK_SETTINGS
from ..tasks.rober import SPECIES, Rober, initial_field, make_task, resolve
from ..train import train

SCALED = "bptt_scaled"
"""BPTT on the species-scaled loss (Kim et al.): the one method of this experiment that
is not a signal of `bbpes.signals` but a signal (`bptt`) on another loss."""

METHODS = SignalChoices((*signal_choices(), SCALED))
"""The `methods` values: a signal (or a reference to a user's), or `bptt_scaled`."""

FORMS = frozenset({"loss", "ode_loss"})
"""The loss forms the task offers: the solve differentiated through its steps, and the ODE."""

UNSUPPORTED = signals.unsupported(FORMS, observed=True)
"""Signals whose loss form the task has but that cannot use it, with the reason (from the
registry: the loss observes the solution at `n_points` times; no truncated form)."""


def make_learner(task: Rober, method: str, config: dict[str, Any]):
    """The learner of `method` (a signal, or `bptt_scaled`): Adam at `lr_es` for the
    losses-only signals and `lr_bp` for the gradients, after the gradient clip where
    the signal takes one."""
    forms = loss_forms(task, method)
    if method == SCALED:
        method, forms = "bptt", LossForms(loss=task.scaled_loss)
    optimizer = signal_optimizer(method, config, optax.adam, lr={"bp": "lr_bp"})
    return signal_learner(method, forms, optimizer, config, initial_field(config, task))


def loss_forms(task: Rober, method: str) -> LossForms:
    """The plain loss (`field -> scalar`) and the same as an `ODELoss` (fnde). The
    forward-only signals get the loss solved in forward mode (`ODELoss.in_forward_mode`:
    the same values, and `jax.jvp` works through it, which the forward gradient needs;
    reverse mode needs the default adjoint)."""
    family = "backprop" if method == SCALED else signals.signal(method).family
    return signals.ode_forms(family, task.loss, task.ode_loss())


def steps_of(method: str, config: dict[str, Any]) -> int:
    """Iterations of `method`: `steps_fnde` for fnde (a stiff backsolve per step),
    `steps_es` for the losses-only signals (ES, evosax's strategies), `steps_bp` for
    the other gradients."""
    if method == "fnde":
        return config["steps_fnde"]
    if method != SCALED and signals.signal(method).lr != "bp":  # ES, evosax
        return config["steps_es"]
    return config["steps_bp"]


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    task = make_task(config)
    field0 = initial_field(config, task)
    loss = eqx.filter_jit(task.loss)
    errors = eqx.filter_jit(task.species_errors)
    metrics: dict[str, Any] = {
        "initial_loss": float(loss(field0)),
        "null_field_loss": float(task.null_loss()),
    }
    curves, fields = {}, {}
    for method in methods_of(config):
        last = {"params": field0}

        def evaluate(params, last=last):
            last["params"] = params  # the latest params that were evaluated, for the plots
            return {"plain_loss": loss(params), **errors(params)}

        steps = steps_of(method, config)
        try:
            result = train(
                make_learner(task, method, config),
                field0,
                jax.random.key(config["seed"] + 1),
                steps=steps,
                evaluate=evaluate,
                eval_every=config["eval_every"],
                run=run_dir,
                label=method,
                resume=config["resume"],
                progress_keys=("loss", "plain_loss"),
                max_nonfinite=config["max_nonfinite"],
            )
            history, fields[method] = result.history, result.params
            if result.stopped:
                metrics[f"stopped_{method}"] = result.stopped
        except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError) as error:
            # raised from inside the compiled solve or its gradient (e.g. lineax refusing a
            # singular Newton system): the method stops here, and the run goes on
            history = run_dir.read_history(lambda r, m=method: r.get("label") == m)
            fields[method] = last["params"]
            message = str(error).strip().splitlines()
            metrics[f"stopped_{method}"] = (
                f"error after step {max((r['step'] for r in history), default=0)}: "
                + next((line for line in message if "solver" in line.lower()), message[0])
            )
        curves[method] = history
        metrics.update(method_metrics(method, history, fields[method], loss, errors))
    plot_species(run_dir, task, fields)
    plot_loss(run_dir, curves, metrics["initial_loss"], metrics["null_field_loss"])
    return metrics


def method_metrics(method: str, history: list[dict], params, loss, errors) -> dict[str, Any]:
    """Final plain loss and per-species errors of `params`, the training time and the
    count of rejected (non-finite) steps."""
    steps = [r for r in history if "nonfinite" in r]
    out = {
        f"final_loss_{method}": float(loss(params)),
        f"steps_{method}": len(steps),
        f"nonfinite_steps_{method}": int(sum(bool(r["nonfinite"]) for r in steps)),
        f"seconds_{method}": steps[-1]["seconds"] if steps else 0.0,
        f"seconds_per_iteration_{method}": (
            (steps[-1]["seconds"] - steps[0]["seconds"]) / (len(steps) - 1)
            if len(steps) > 1
            else None
        ),
    }
    for key, value in errors(params).items():
        out[f"{key}_{method}"] = float(value)
    return out


def color(method: str) -> str | None:
    return "tab:purple" if method == "bptt_scaled" else signals.color(method)


def plot_species(run_dir: RunDir, task: Rober, fields: dict[str, NeuralODE]) -> None:
    """Fig. 10A: each species over log time, truth (solid) against each method (dashed).
    The y axis spans the true species' range (plus half of it each side): a fit that runs
    off it is cut, its error is in the metrics."""
    fig, ((*axes,),) = plotting.figure(ncols=3, width=4.2)
    ts, truth = np.asarray(task.ts), np.asarray(task.ys)
    learned = {m: np.asarray(eqx.filter_jit(task.trajectory)(f)) for m, f in fields.items()}
    for i, (ax, name) in enumerate(zip(axes, SPECIES)):
        ax.plot(ts, truth[:, i], color="black", lw=1.5, label="true")
        for method, ys in learned.items():
            ax.plot(ts, ys[:, i], ls="--", color=color(method), label=method)
        lo, hi = truth[:, i].min(), truth[:, i].max()
        ax.set(xscale="log", xlabel="t", title=name, ylim=(lo - (hi - lo) / 2, hi + (hi - lo) / 2))
    axes[0].legend(fontsize=8)
    run_dir.save_figure(fig, "species.png")


def plot_loss(
    run_dir: RunDir, curves: dict[str, list[dict]], initial_loss: float, null_loss: float
) -> None:
    """Fig. 10B: the plain loss at the evaluations, and each method's training loss,
    against the loss of the initial field and of a zero field (nothing moves)."""
    fig, ((ax_plain, ax_train),) = plotting.figure(ncols=2, layout="constrained")
    for method, history in curves.items():
        evals = [r for r in history if r.get("plain_loss") is not None]
        ax_plain.plot(
            [r["step"] for r in evals],
            [r["plain_loss"] for r in evals],
            color=color(method),
            label=method,
        )
        trained = [r for r in history if r.get("loss") is not None]
        ax_train.plot(
            [r["step"] for r in trained],
            [r["loss"] for r in trained],
            color=color(method),
            label=method,
            lw=0.8,
        )
    ax_plain.axhline(initial_loss, color="gray", ls="--", lw=0.8, label="initial")
    ax_plain.axhline(null_loss, color="black", ls=":", lw=0.8, label="zero field")
    ax_plain.set(xlabel="iteration", ylabel="plain loss (MAE)", yscale="log", title="ROBER")
    ax_train.set(xlabel="iteration", ylabel="loss being trained", yscale="log", title="Training")
    ax_plain.legend(fontsize=8, loc="lower left")
    ax_train.legend(fontsize=8, loc="lower left")
    run_dir.save_figure(fig, "loss.png")


def check(config: dict[str, Any]) -> None:
    signal_methods = [m for m in methods_of(config) if m != SCALED]
    check_signals(
        {**config, "methods": signal_methods},
        "methods",
        FORMS,
        "rober",
        UNSUPPORTED,
        sample_bytes=8.0 * (400 + 3 * config["n_points"]),
    )
    require(0 < config["t_min"] < config["t_max"], "need 0 < t_min < t_max")


SETTINGS = (
    Setting(
        "methods",
        ["es", "bptt", "bptt_scaled", "fnde"],
        "any signal of `bbpes.signals` on the plain loss (es, bptt, fnde...), "
        "or bptt_scaled (species-scaled loss); not offered: " + "; ".join(UNSUPPORTED.values()),
        choices=METHODS,
        quick=["es", "bptt"],
    ),
    Setting(
        "steps_es",
        2000,
        "iterations of the losses-only signals (ES, weight perturbation)",
        low=1,
        quick=300,
    ),
    Setting(
        "steps_bp",
        1000,
        "iterations of the gradient signals (bptt, bptt_scaled, pnde...)",
        low=1,
        quick=300,
    ),
    Setting(
        "steps_fnde",
        20,
        "iterations of fnde (each backsolves a ~190-dim stiff adjoint: slow)",
        low=1,
    ),
    Setting(
        "eval_every",
        10,
        "iterations between evaluations of the plain loss and species errors",
        low=1,
        quick=20,
    ),
    Setting("max_nonfinite", 20, "stop a method after this many non-finite steps in a row", low=1),
    Setting("clip", 0.0, "clip the gradient's global norm to this before Adam", low=0, zero="off"),
    Setting(
        "x64",
        True,
        "float64 (y2 is ~1e-5 to 1e-8: float32 cannot resolve it at these tolerances)",
    ),
    *signal_settings({"samples": 50}, {"samples": 10}),
    *TASK_SETTINGS,
)

EXPERIMENT = Experiment(
    name="rober",
    summary="neural ODE on the stiff ROBER kinetics: ES on the plain loss vs BP (Fig. 10)",
    run=run,
    settings=SETTINGS,
    resolve=resolve,
    check=check,
)
