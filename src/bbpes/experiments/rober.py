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
from ..models.neural_ode import NeuralODE, rober_field
from ..runs import RunDir
from ..signals import LossForms
from ..tasks.rober import SOLVERS, SPECIES, Rober
from ..train import train
from .base import (
    MAX_LOOP,
    Experiment,
    check_signals,
    methods_of,
    parse_value,
    require,
    require_at_least,
    require_positive,
    signal_choices,
    signal_help,
    signal_learner,
    signal_optimizer,
    signal_settings,
)

SCALED = "bptt_scaled"
"""BPTT on the species-scaled loss (Kim et al.): the one method of this experiment that
is not a signal of `bbpes.signals` but a signal (`bptt`) on another loss."""

METHODS = (*signal_choices(), SCALED)

FORMS = frozenset({"loss", "ode_loss"})
"""The loss forms the task offers: the solve differentiated through its steps, and the ODE."""

UNSUPPORTED = signals.unsupported(FORMS, observed=True)
"""Signals whose loss form the task has but that cannot use it, with the reason (from the
registry: the loss observes the solution at `n_points` times; no truncated form)."""

FIELDS = {
    "plain": {
        "sigma": 1e-4,
        "lr_es": 1e-4,
        "lr_bp": 1e-4,
        "init_output_scale": 0.01,
        "rank_shaping": False,
    },
    "normalised": {
        "sigma": 0.1,
        "lr_es": 5e-3,
        "lr_bp": 5e-3,
        "init_output_scale": 1.0,
        "rank_shaping": True,
    },
}
"""How the network's output becomes dy/dt, and the ES and Adam settings that suit each
(the settings left at None take these). `plain`: dy/dt = NN(y), the paper's and the
issue's setting. `normalised`: dy/dt = NN(y) * scale / t_max, Kim et al.'s (2021)
output normalisation (each species' largest value in the data over the time span), so
that an O(1) output moves each species by its own scale over the whole span; the loss
stays the plain one."""


def make_task(config: dict[str, Any]) -> Rober:
    return Rober(
        n_points=config["n_points"],
        t_min=config["t_min"],
        t_max=config["t_max"],
        solver=config["solver"],
        rtol=config["rtol"],
        atol=config["atol"],
        max_steps=config["max_steps"],
    )


def output_scale(config: dict[str, Any], task: Rober) -> tuple[float, ...] | None:
    """The factor on the network's output of the configured `field` (None for plain)."""
    if config["field"] == "plain":
        return None
    return tuple(float(s) / config["t_max"] for s in np.asarray(task.scale))


def initial_field(config: dict[str, Any], task: Rober) -> NeuralODE:
    """equinox's default init, with the output layer scaled by `init_output_scale`: with
    the plain field at full scale the untrained field drifts by O(0.1) per unit time,
    i.e. O(1e4) over the 1e5 time units of the data, and nearly every solve fails or
    explodes (the plain preset is 0.01; the normalised field starts at 1)."""
    field = rober_field(key=jax.random.key(config["seed"]), output_scale=output_scale(config, task))
    last = field.mlp.layers[-1]
    scale = config["init_output_scale"]
    return eqx.tree_at(
        lambda f: (f.mlp.layers[-1].weight, f.mlp.layers[-1].bias),
        field,
        (last.weight * scale, last.bias * scale),
    )


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


def resolve(config: dict[str, Any]) -> None:
    """Settings left at None take the preset of the configured `field`."""
    for key, preset in FIELDS[config["field"]].items():
        given = config[key]
        # a value given on the command line is parsed like a setting of the preset's type
        config[key] = preset if given is None else parse_value(key, str(given), preset)


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
    require(config["t_max"] <= 1e12, "t_max must be <= 1e12 (time in the rate constants' unit)")
    require(2 <= config["n_points"] <= 100_000, "n_points must be in 2..100000")
    require_positive(config, "rtol", "atol", "lr_es", "lr_bp")
    require_at_least(config, 1, "steps_es", "steps_bp", "steps_fnde", "eval_every", "max_steps")
    require(config["max_steps"] <= MAX_LOOP, f"max_steps must be <= {MAX_LOOP}")
    require(config["max_nonfinite"] >= 1, "max_nonfinite must be >= 1")
    require(config["init_output_scale"] >= 0, "init_output_scale must be >= 0")
    require(config["clip"] >= 0, "clip must be >= 0 (0: off)")
    require(isinstance(config["rank_shaping"], bool), "rank_shaping must be true or false")


EXPERIMENT = Experiment(
    name="rober",
    summary="neural ODE on the stiff ROBER kinetics: ES on the plain loss vs BP (Fig. 10)",
    run=run,
    defaults=signal_settings(
        {
            "methods": ["es", "bptt", "bptt_scaled", "fnde"],
            "steps_es": 2000,
            "steps_bp": 1000,
            "steps_fnde": 20,
            "field": "plain",
            "samples": 50,
            "sigma": None,
            "rank_shaping": None,
            "lr_es": None,
            "lr_bp": None,
            "init_output_scale": None,
            "n_points": 50,
            "t_min": 1e-5,
            "t_max": 1e5,
            "solver": "kvaerno5",
            "rtol": 1e-4,
            "atol": 1e-7,
            "max_steps": 2000,
            "eval_every": 10,
            "max_nonfinite": 20,
            "clip": 0.0,
            "x64": True,
        }
    ),
    quick={
        "steps_es": 300,
        "steps_bp": 300,
        "samples": 10,
        "n_points": 20,
        "eval_every": 20,
        "methods": ["es", "bptt"],
    },
    choices={"methods": METHODS, "solver": tuple(SOLVERS), "field": tuple(FIELDS)},
    resolve=resolve,
    check=check,
    help=signal_help(
        {
            "methods": "any signal of `bbpes.signals` on the plain loss (es, bptt, fnde...), "
            "or bptt_scaled (species-scaled loss); not offered: " + "; ".join(UNSUPPORTED.values()),
            "field": "plain: dy/dt = NN(y); normalised: NN(y) * species scale / t_max (Kim et al.)",
            "sigma": "ES perturbation scale (default: the field's preset)",
            "rank_shaping": "ES weights the perturbations by centered ranks of their losses (default: the field's preset)",
            "lr_es": "Adam learning rate of ES (default: the field's preset)",
            "lr_bp": "Adam learning rate of the backpropagation methods (default: the field's preset)",
            "steps_fnde": "iterations of fnde (each backsolves a ~190-dim stiff adjoint: slow)",
            "init_output_scale": "factor on the output layer's initial weights and bias (default: the field's preset)",
            "n_points": "log-spaced observation times between t_min and t_max",
            "solver": "implicit diffrax solver of the neural ODE",
            "rtol": "relative tolerance of the neural ODE's solves",
            "atol": "absolute tolerance of the neural ODE's solves",
            "max_steps": "solver steps before a solve counts as failed (loss inf)",
            "x64": "float64 (y2 is ~1e-5 to 1e-8: float32 cannot resolve it at these tolerances)",
            "steps_es": "iterations of the losses-only signals (ES, weight perturbation)",
            "steps_bp": "iterations of the gradient signals (bptt, bptt_scaled, pnde...)",
            "samples": "ES population per iteration (mirrored pairs)",
            "t_min": "first observation time (the rate constants' time unit)",
            "t_max": "last observation time",
            "eval_every": "iterations between evaluations of the plain loss and species errors",
            "max_nonfinite": "stop a method after this many non-finite steps in a row",
            "clip": "clip the gradient's global norm to this before Adam (0: off)",
        }
    ),
)
