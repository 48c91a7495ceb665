"""Several runs of the spiral task trained as the members of one `Ensemble`: the task
a configuration describes, one initial vector field per run, each run's minibatches,
the full-trajectory MAE of every run, each member's learner and the training of the
ensemble (`train_members`), used by the `spiral` and `spiral-scaling` experiments; a
configuration is a mapping with the keys of `bbpes.tasks.spiral.SETTINGS` and
`RUN_SETTINGS`.

Independent runs (and, in `spiral-scaling`, the values of a sigma sweep) are the members
of one `bbpes.learners.Ensemble`: a single compiled, `jax.vmap`-ed step trains them all,
each member with its own initialisation, minibatches, noise and hyperparameter, and a
member whose step fails keeps its state while the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from .. import signals
from ..learners import AbstractLearner, Ensemble
from ..models.neural_ode import NeuralODE, spiral_field
from ..runs import RunDir
from ..settings import Setting
from ..signals import LossForms
from ..train import train
from .spiral import Spiral
from .spiral_metrics import split_history

RUN_SETTINGS = (
    Setting("hidden", 50, "tanh hidden units of the MLP vector field (paper: 50 and 1000)", low=1),
    Setting(
        "runs",
        5,
        "independent runs (initialisation, minibatches, noise), trained together",
        low=1,
    ),
    Setting("steps", 20000, "training iterations", low=2, quick=300),
    Setting("lr", 1e-3, "Adam learning rate, for every method", positive=True),
    Setting("eval_every", 10, "iterations between full-trajectory MAE evaluations", low=1),
    Setting(
        "window",
        5,
        "evaluations in the running median that decides 'reached the target'",
        low=1,
    ),
    Setting("target", 0.04, "full-trajectory MAE target", positive=True, quick=0.3),
    Setting(
        "max_nonfinite",
        20,
        "stop training after this many steps in a row with a non-finite update",
        low=1,
    ),
    Setting("x64", False, "train in float64"),
)
"""The settings of the ensemble's training that `spiral` and `spiral-scaling` share."""

OFFERED = LossForms(loss=Spiral.loss, ode_loss=Spiral.ode_loss)
"""The loss forms a `Spiral` offers (`loss_forms`); only which fields are set matters."""


def make_task(config: Mapping[str, Any]) -> Spiral:
    """The `Spiral` of the settings `n_points`, `t_end`, `batch_size`, `batch_time`,
    `tol` (rtol = atol) and `max_steps`."""
    return Spiral(
        n_points=config["n_points"],
        t_end=config["t_end"],
        batch_size=config["batch_size"],
        batch_time=config["batch_time"],
        rtol=config["tol"],
        atol=config["tol"],
        max_steps=config["max_steps"],
    )


def stacked_fields(hidden: int, seeds: Sequence[int], base_key: Array) -> NeuralODE:
    """One freshly initialised field (`hidden` tanh units) per seed, drawn from
    `fold_in(base_key, seed)`, stacked along a leading axis `len(seeds)`."""
    fields = [spiral_field(hidden, key=jax.random.fold_in(base_key, s)) for s in seeds]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *fields)


def stacked_batches(task: Spiral, seeds: Sequence[int], base_key: Array) -> Callable:
    """`batch(i)`: member m's minibatch of step i (start points `(M, B, 2)`, targets
    `(M, T, B, 2)`), drawn from `fold_in(fold_in(base_key, seed_m), i)` only (so members
    with one seed see the same data, and resuming is exact)."""
    seeds = jnp.asarray(seeds)

    @jax.jit
    def batch(i):
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(base_key, s), i))(seeds)
        return jax.vmap(task.sample_batch)(keys)

    return batch


def member_maes(task: Spiral) -> Callable[[NeuralODE], dict[str, float]]:
    """`evaluate(stacked fields) -> {"mae": mean over the finite ones, "mae_m": member
    m's}`: the full-trajectory MAE from y(0) of each member (`inf` for a failed solve)."""

    @eqx.filter_jit
    def maes(fields):
        return jax.vmap(task.mae)(fields)

    def evaluate(fields):
        values = np.asarray(maes(fields))
        finite = values[np.isfinite(values)]
        out = {"mae": float(np.mean(finite)) if finite.size else float("inf")}
        out.update({f"mae_{m}": float(v) for m, v in enumerate(values)})
        return out

    return evaluate


def loss_forms(task: Spiral, method: str) -> LossForms:
    """The spiral's minibatch loss, and the same as an `ODELoss` (fnde). Forward-only
    signals get the loss solved in forward mode (`ODELoss.in_forward_mode`): the same
    values, and `jax.jvp` works through it (the forward gradient needs it; reverse-mode
    signals need the default)."""
    return signals.ode_forms(signals.signal(method).family, task.loss, task.ode_loss())


def member_learners(
    task: Spiral,
    method: str,
    samples: int,
    lr: float | optax.Schedule,
    sigma: float | None = None,
) -> Callable[[Any], AbstractLearner]:
    """`hyper -> learner` of `method` (`bbpes.signals.make_learner`) with Adam at `lr` (a
    number or an optax schedule). The perturbation scale (ES, weight perturbation,
    evosax) is `sigma` when given, a constant every signal accepts, else
    `hyper["sigma"]`, traced under the ensemble's vmap so that one compiled step serves
    a sigma sweep (the signals that need a concrete sigma, evosax's, cannot sweep)."""
    forms = loss_forms(task, method)

    def make(hyper):
        settings = {"sigma": hyper["sigma"] if sigma is None else sigma, "samples": samples}
        return signals.make_learner(method, forms, optax.adam(lr), settings)

    return make


def train_members(
    task: Spiral,
    config: Mapping[str, Any],
    run_dir: RunDir,
    *,
    method: str,
    hidden: int,
    samples: int,
    sigmas: Sequence[float],
    seeds: Sequence[int],
    steps: int,
    label: str,
    eval_every: int | None,
    tags: dict[str, Any] | None = None,
) -> tuple[list[dict[str, np.ndarray]], NeuralODE]:
    """Train one ensemble (member m: `sigmas[m]`, `seeds[m]`; one sigma for all is passed
    as a constant, several are traced) with the settings `lr`, `lr_schedule` (constant
    where absent), `seed`, `resume` and `max_nonfinite` of `config`. Returns its history
    split into one curve per member (`bbpes.tasks.spiral_metrics.split_history`) and the
    trained fields, stacked along a leading axis `len(seeds)`."""
    hyper = {
        "sigma": jnp.asarray(sigmas, jnp.result_type(float)),
        "seed": jnp.asarray(seeds, jnp.int32),
    }
    lr = config["lr"]
    # spiral-scaling has no schedule: its timed reruns stop early, which would change it
    if config.get("lr_schedule", "constant") == "cosine":
        lr = optax.cosine_decay_schedule(lr, steps, alpha=0.1)
    shared = float(sigmas[0]) if len(set(sigmas)) == 1 else None  # no sweep: a constant
    learner = Ensemble(member_learners(task, method, samples, lr, shared), hyper)
    base = jax.random.key(config["seed"])
    result = train(
        learner,
        stacked_fields(hidden, seeds, jax.random.fold_in(base, 0)),
        jax.random.fold_in(base, 1),
        steps=steps,
        batch=stacked_batches(task, seeds, jax.random.fold_in(base, 2)),
        evaluate=member_maes(task),
        eval_every=eval_every,
        run=run_dir,
        label=label,
        tags=tags,
        resume=config["resume"],
        progress_keys=("loss", "mae"),
        max_nonfinite=config["max_nonfinite"],
    )
    return split_history(result.history, len(seeds)), result.params
