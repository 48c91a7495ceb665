"""`NeuronFit`: a `bbpes.fitting.problem.Fit` whose simulator is a NEURON cell on a Ray
cluster, so that everything that trains and reports a fit (`bbpes.fitting.training`,
every forward-only signal of `bbpes.signals`) runs on it unchanged.

What differs from a JAX fit:

- `hard_loss(z)` is `blackbox_loss` of a `RayEvaluator` whose workers each hold a
  `NeuronLoss` (the cell built once per worker, eFEL's features of its traces), plus
  the same `edge_penalty` of z; a population is one cluster call.
- `voltage(z)` runs NEURON in this process (the traces of a figure or a report).
- The loss has no soft form and no gradient: signals that differentiate the
  simulation are refused (`FORWARD_ONLY`).

The target is a recording's traces or, for a ground truth, NEURON's own traces of the
cell at the true parameters; the feature targets and their stds are those
`bbpes.fitting.suite` gives the JAX fit (`feature_targets`: 5% of the value, floors,
1 mV for absolute voltages), taken from those traces.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError
from ..fitting import suite
from ..fitting.parameters import ParameterSpace
from ..fitting.problem import Fit, edge_penalty
from ..fitting.protocol import CurrentClamp
from ..signals import LossForms, names, signal
from .efel_loss import EfelLoss
from .loss import blackbox_loss
from .neuron_cell import NeuronCell
from .neuron_loss import NeuronLoss

PROBLEMS = ("hh", "simplecell")
"""The ground-truth problems of `bbpes.fitting.suite` a NEURON cell can be fitted on
(their cell is NEURON's `hh` soma)."""


def refused_signals() -> dict[str, str]:
    """The signals a black-box loss cannot train with, each with why: those that
    differentiate the simulation, and `forward_gradient` (a forward-mode derivative)."""
    why = "{} differentiates the simulation; a NEURON black box gives losses only"
    return {
        n: why.format(n)
        for n in names()
        if signal(n).family == "backprop" or n == "forward_gradient"
    }


FORWARD_ONLY = tuple(n for n in names() if n not in refused_signals() and n != "guided_es")
"""The signals that train a black-box loss: ES and its variants, finite differences,
the evosax strategies (guided ES needs a surrogate gradient, which a black box lacks)."""


@dataclass(frozen=True, eq=False)
class NeuronFit(Fit):
    """A fit simulated by NEURON (see the module docstring). Close it (or use it as a
    context manager) to stop its Ray workers.

    **Fields** (besides `Fit`'s; `cell` is the `NeuronCell`, `loss` the JAX
    `FeatureLoss` of the same targets, used for reports):

    - `evaluator`: the `RayEvaluator` of `worker_loss`.
    - `worker_loss`: the `NeuronLoss` every worker holds.
    """

    evaluator: Any = None
    worker_loss: NeuronLoss | None = None

    @functools.cached_property
    def _blackbox(self):
        return blackbox_loss(self.evaluator)

    def hard_loss(self, z: jax.Array) -> jax.Array:
        """The eFEL loss of NEURON's traces at `z` `(n,)` (one sample on the cluster),
        plus the `edge_penalty` of `z`. Under `vmap`, one cluster call per population."""
        return self._blackbox(self.space.to_values(z)) + edge_penalty(self.space, z)

    def population_loss(self, z: jax.Array) -> jax.Array:
        return jax.vmap(self.hard_loss)(z)

    def soft_loss(self, z: jax.Array) -> jax.Array:
        raise ConfigError("a NEURON fit has no soft (differentiable) loss")

    def forms(self) -> LossForms:
        return LossForms(loss=self.hard_loss)

    def voltage(self, z: jax.Array) -> jax.Array:
        """NEURON's traces at `z` `(n,)`, run in this process: `(n_sweeps, T)` mV."""
        values = self.space.to_values(z)
        shape = jax.ShapeDtypeStruct(
            (self.protocol.n_sweeps, self.protocol.n_recorded), jnp.result_type(float)
        )
        run = lambda v: np.asarray(self.worker_loss.traces(v), dtype=shape.dtype)
        return jax.pure_callback(run, shape, values, vmap_method="sequential")

    def population_voltage(self, z: jax.Array) -> jax.Array:
        return jax.vmap(self.voltage)(z)

    def close(self) -> None:
        """Stop the Ray workers (and the local Ray, if the evaluator started it)."""
        if self.evaluator is not None:
            self.evaluator.close()

    def __enter__(self) -> NeuronFit:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def neuron_fit(
    cell: NeuronCell,
    space: ParameterSpace,
    protocol: CurrentClamp,
    *,
    target: Any = None,
    truth: Sequence[float] | None = None,
    features: Sequence[str] = suite.DEFAULT_FEATURES,
    relative_std: float = 0.05,
    noise: float = 0.0,
    seed: int = 0,
    name: str = "neuron",
    notes: str = "",
    evaluator: dict[str, Any] | None = None,
) -> NeuronFit:
    """A `NeuronFit` of `cell`'s parameters `space` (the names of `cell.parameters`, in
    its order) under `protocol`.

    **Arguments:**

    - `target`: the traces to fit, `(n_sweeps, protocol.n_recorded)` mV; or None with
      `truth` (values in `space`'s units): NEURON's traces of `cell` at `truth`, plus
      Gaussian `noise` mV drawn from `seed`.
    - `features`, `relative_std`: the features scored and their stds, as for the JAX fit.
    - `evaluator`: keyword arguments of `RayEvaluator` (`workers`, `address`,
      `retries`, `timeout`, `init_options`...).

    The cell is built here first (`ConfigError` for a bad cell, before any worker
    starts), then the workers start and build it once each.
    """
    from ..ray_evaluator import RayEvaluator

    if tuple(cell.names) != tuple(space.names):
        raise ConfigError(
            f"the cell maps the parameters {', '.join(cell.names) or '(none)'}, "
            f"the fit fits {', '.join(space.names)} (give one NAME=TARGET each, in that order)"
        )
    suite.check_features(features)
    model = cell.model()
    if target is None:
        if truth is None:
            raise ConfigError("a NEURON fit needs a target: traces, or the true parameters")
        target = model.traces(np.asarray(truth, dtype=np.float64), protocol)
        if noise > 0:
            target = target + noise * np.random.default_rng(seed).standard_normal(target.shape)
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (protocol.n_sweeps, protocol.n_recorded):
        raise ConfigError(
            f"target traces {target.shape} do not match the protocol "
            f"({protocol.n_sweeps} sweeps x {protocol.n_recorded} samples)"
        )
    floss, _ = suite.make_loss(target, protocol, "features", features, relative_std, 2.0)
    worker_loss = NeuronLoss(cell, protocol, EfelLoss.from_feature_loss(floss))
    options = {"init_options": {"log_to_driver": False}, **(evaluator or {})}
    return NeuronFit(
        name=name,
        cell=cell,
        space=space,
        protocol=protocol,
        loss=floss,
        target=target,
        truth=None if truth is None else tuple(float(x) for x in truth),
        notes=notes or f"NEURON cell {cell.source}",
        extra={"feature_loss": floss},
        evaluator=RayEvaluator(worker_loss, **options),
        worker_loss=worker_loss,
    )


def suite_problem(problem: str) -> tuple[ParameterSpace, CurrentClamp, tuple[float, ...], Any]:
    """`(space, protocol, truth, jax_cell)` of the ground-truth problem `problem` (one of
    `PROBLEMS`) of `bbpes.fitting.suite`."""
    if problem not in PROBLEMS:
        raise ConfigError(
            f"a NEURON fit runs on the ground-truth problems {', '.join(PROBLEMS)}, not {problem!r}"
        )
    jax_cell, space, protocol, truth, _ = suite.GROUND_TRUTH[problem]()
    return space, protocol, tuple(float(x) for x in truth), jax_cell


def default_parameters(space: ParameterSpace) -> tuple[tuple[str, str], ...]:
    """NEURON's `hh` on the soma: `NAME=soma.NAME_hh` for every fitted parameter."""
    return tuple((n, f"soma.{n}_hh") for n in space.names)
