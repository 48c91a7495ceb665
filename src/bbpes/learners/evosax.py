"""Every evosax strategy as a learner: ask / tell wrapped in the `init` / `step` protocol.

One step is one generation (Lange 2022, evosax): ask the strategy for a population of
`population_size` parameter vectors, evaluate the task loss of each member in one
vmapped call (the fitness; evosax minimises), and tell the strategy the fitness, which
moves its search distribution. So an iteration costs `population_size` forward passes
(plus one surrogate gradient for GuidedES when one is given), and the memory is flat in
the trial length: no trajectory is kept, only the strategy's state (mean, step size,
and for CMA-ES and xNES a params x params matrix, which limits those two to small
models).

**Non-finite losses** follow the policy of `bbpes.estimators.es`: each member whose
loss is NaN or inf counts as the worst outcome of its generation (it is told the largest
finite loss), so the strategy moves away from it. When no member is finite, or the
strategy's new state is not finite, the step is rejected: the state returned equals the
state given and the `loss` metric is NaN, which the training loop counts as a
non-finite step.

**What the learner's params are.** `params(state)` is the strategy's mean: the centre
of its search distribution, the point its update rule moves and the estimate of the
minimiser of the Gaussian-smoothed loss. The best member seen so far (kept in the
evosax state as `best_solution`) is not used: on minibatches it is the member that was
luckiest on one batch, a biased pick, and it does not move smoothly.

**Metrics** of a step (all about the population evaluated before the update):
`loss`, the mean loss over the population (non-finite members counted as the worst
finite one; the mean is free, unlike the loss at the mean, which would cost one more
forward pass); `best_loss`, the smallest finite loss; `nonfinite_members`, how many
members were not finite (the training loop's own `nonfinite` flag is the step's).

**GuidedES** (Maheswaranathan et al. 2019) samples in a subspace spanned by the last k
surrogate gradients. With `surrogate` (an estimator `f(params, key, *batch) ->
(loss, grads)`, e.g. truncated BPTT) that gradient is taken at the mean every step;
without one, the strategy is guided by its own last k updates of the mean (the
past-descent-direction variant of Meier et al. 2019, arXiv 1910.05268), which needs no
gradient at all.

**PersistentES and NoiseReuseES** (Vicol et al. 2021; Li et al. 2023) are built for
truncated unrolls of one long inner problem: evosax's `T` (inner length) and `K` (steps
per unroll) say how many generations share noise. In bbpes one step evaluates a whole
trial, so with evosax's defaults (T = 100, K = 10) NoiseReuseES keeps one population of
perturbations for 10 consecutive steps and PersistentES accumulates 10 steps of
perturbations; `T=K` makes both memoryless antithetic ES. Pass `T` and `K` as
strategy settings.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from evosax.algorithms import algorithms as EVOSAX_ALGORITHMS
from jax import Array
from jax.flatten_util import ravel_pytree

from ..errors import ConfigError
from ..estimators.es import replace_nonfinite
from .base import AbstractLearner, finite_tree
from .evosax_names import STRATEGIES as STRATEGIES

_EVEN = ("Open_ES", "PGPE", "ARS", "NoiseReuseES", "PersistentES", "GuidedES")
"""Strategies that sample mirrored pairs, so the population size must be even."""

PLAIN_GRADIENT: tuple[str, ...] = (
    "Open_ES",
    "PGPE",
    "ARS",
    "NoiseReuseES",
    "PersistentES",
    "GuidedES",
)
"""The strategies whose mean moves by a plain ES gradient estimate through their optax
optimizer, so an experiment's optimizer (and learning rate) is theirs to use. SNES and
xNES take an optimizer too, but their default `sgd(1.0)` is the natural-gradient step
itself; CMA-ES and Sep-CMA-ES take none."""


POPULATION_BASED: tuple[str, ...] = ("SimpleGA",)
"""The genetic algorithms offered: their params are the best member found so far (a fit
with no minibatches scores every member on the same data, so that pick is unbiased)."""


class EvosaxState(eqx.Module):
    params: Any  # the strategy's mean, as a pytree shaped like the model's params
    strategy: Any  # the evosax state (a flax dataclass of arrays), flat vectors of size D


class EvosaxLearner(AbstractLearner):
    """An evosax strategy as a bbpes learner (see the module docstring).

    **Arguments:**

    - `loss_fn(params, *batch) -> scalar`: the loss of one network (unbatched params).
    - `name`: an evosax strategy name, e.g. `"SNES"` (`STRATEGIES` are the tested ones;
      any distribution-based name in `evosax.algorithms.algorithms` is accepted, and the genetic algorithms of `POPULATION_BASED`).
    - `population_size`: members per generation (even for the mirrored strategies).
    - `std_init`: the initial search std in parameter units (None: evosax's default, 1.0),
      given to the strategy as its `std_init` parameter or its constant `std_schedule`;
      a float, or a scalar array (then data to the compiled step, not a constant).
    - `optimizer`: the optax optimizer of the strategies that take one (Open_ES, SNES,
      xNES, PGPE, ARS, NoiseReuseES, PersistentES, GuidedES); None keeps evosax's
      default. Given to a strategy without one (CMA-ES, Sep-CMA-ES): a `ConfigError`.
    - `surrogate`: GuidedES only, an estimator `f(params, key, *batch) -> (loss, grads)`.
    - `chunk_size`: members evaluated at once (`jax.lax.map` batches; None: all).
    - `**strategy_params`: further settings, each either an argument of the evosax
      constructor (`use_antithetic_sampling`, `subspace_dims`, `fitness_shaping_fn`, ...)
      or a field of the strategy's `default_params` (`T`, `K`, `alpha`, `lr_std_init`,
      ...); anything else is a `ConfigError`.

    `init` uses a fixed key (the listed strategies draw nothing at init); each `step`
    splits its own key for ask, tell and the surrogate.
    """

    loss_fn: Callable[..., Array]
    name: str = eqx.field(static=True)
    population_size: int = eqx.field(static=True)
    std_init: float | Array | None = None
    optimizer: optax.GradientTransformation | None = None
    surrogate: Callable[..., Any] | None = None
    chunk_size: int | None = eqx.field(default=None, static=True)
    constructor_args: tuple[tuple[str, Any], ...] = eqx.field(default=(), static=True)
    param_overrides: tuple[tuple[str, Any], ...] = eqx.field(default=(), static=True)

    def __init__(
        self,
        loss_fn: Callable[..., Array],
        name: str,
        population_size: int,
        *,
        std_init: float | None = None,
        optimizer: optax.GradientTransformation | None = None,
        surrogate: Callable[..., Any] | None = None,
        chunk_size: int | None = None,
        **strategy_params: Any,
    ):
        cls = _strategy_class(name)
        if not isinstance(population_size, int) or population_size < 2:
            raise ConfigError(f"evosax {name} needs an integer population_size >= 2")
        if name in _EVEN and population_size % 2:
            raise ConfigError(f"evosax {name} samples mirrored pairs: population_size must be even")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ConfigError(f"chunk_size must be an integer >= 1 or None, got {chunk_size!r}")
        if std_init is not None and not isinstance(std_init, jax.core.Tracer) and not std_init > 0:
            raise ConfigError(f"evosax {name} needs std_init > 0, got {std_init!r}")
        if surrogate is not None and name != "GuidedES":
            raise ConfigError(f"a surrogate gradient only guides GuidedES, not {name}")
        accepted = _constructor_args(cls)
        if optimizer is not None and "optimizer" not in accepted:
            raise ConfigError(f"evosax {name} sets its own step and takes no optimizer")
        fields = _param_fields(cls)
        ctor = {k: v for k, v in strategy_params.items() if k in accepted}
        required = sorted(_required_args(cls) - set(ctor))
        if required:
            raise ConfigError(f"evosax {name} needs {', '.join(f'{k}=' for k in required)}")
        overrides = {k: v for k, v in strategy_params.items() if k not in accepted}
        unknown = sorted(set(overrides) - fields)
        if "optimizer" in ctor:
            unknown.append("optimizer (pass it as optimizer=)")
        if unknown:
            known = ", ".join(sorted((accepted | fields) - {"optimizer"}))
            raise ConfigError(f"unknown settings {unknown} for evosax {name} (known: {known})")
        if std_init is not None and ("std_schedule" in ctor or "std_init" in overrides):
            raise ConfigError(f"evosax {name}: give the initial std once (std_init=)")
        # `std_init` joins the params (or a constant `std_schedule`) in `_params` and
        # `_algorithm`, not here: a field, it stays an array when given one, so that a
        # sweep of it runs one compiled step; and a new closure per learner would make
        # equal learners unequal, and recompile the training step.
        if std_init is not None and "std_schedule" not in accepted and "std_init" not in fields:
            raise ConfigError(f"evosax {name} has no initial std to set")
        if isinstance(std_init, int | float):
            std_init = float(std_init)
        self.loss_fn = loss_fn
        self.name = name
        self.population_size = population_size
        self.std_init = std_init
        self.optimizer = optimizer
        self.surrogate = surrogate
        self.chunk_size = chunk_size
        self.constructor_args = tuple(sorted(ctor.items()))
        self.param_overrides = tuple(sorted(overrides.items()))

    def _algorithm(self, like: Any) -> Any:
        """The evosax strategy for params shaped like `like`.

        Built from concrete zeros (never tracers), so it may be called inside a trace."""
        with jax.ensure_compile_time_eval():
            template = jax.tree.map(lambda x: np.zeros(np.shape(x), jnp.result_type(x)), like)
            cls = _strategy_class(self.name)
            ctor = dict(self.constructor_args)
            if self.optimizer is not None:
                ctor["optimizer"] = self.optimizer
            if self.std_init is not None and "std_schedule" in _constructor_args(cls):
                ctor["std_schedule"] = optax.constant_schedule(self.std_init)
            try:
                return cls(self.population_size, template, **ctor)
            except AssertionError as error:  # evosax checks its settings with `assert`
                raise ConfigError(f"evosax {self.name}: {error}") from None

    def _params(self, algorithm: Any) -> Any:
        """The strategy's params: its defaults with the overrides. Traced where they
        can be (an eager evaluation compiles every small op of CMA-ES's defaults one by
        one, seconds); eager for the strategies whose defaults need concrete numbers
        (LM_MA_ES sizes its memory with `int(...)`)."""
        overrides = {k: jnp.asarray(v) for k, v in self.param_overrides}
        if self.std_init is not None and "std_schedule" not in _constructor_args(type(algorithm)):
            overrides["std_init"] = jnp.asarray(self.std_init)
        try:
            defaults = algorithm.default_params
        except jax.errors.ConcretizationTypeError:
            with jax.ensure_compile_time_eval():
                defaults = algorithm.default_params
        return defaults.replace(**overrides)

    def init(self, params: Any) -> EvosaxState:
        # Strong dtypes fixed here: a step casts back to them, so a resumed state (whose
        # leaves come back from disk without jax's weak-type flag) computes the same.
        params = jax.tree.map(_strong, params)
        return EvosaxState(params, _initial_strategy(self, params))

    def step(self, state: EvosaxState, key: Array, *batch: Any) -> tuple[EvosaxState, dict]:
        algorithm = self._algorithm(state.params)
        es_params = self._params(algorithm)
        key_ask, key_tell, key_surrogate = jax.random.split(key, 3)
        strategy = state.strategy
        extra = {}
        if self.surrogate is not None:
            surrogate_loss, grads = self.surrogate(state.params, key_surrogate, *batch)
            guide = ravel_pytree(grads)[0].astype(strategy.grad.dtype)
            guide = jnp.where(jnp.all(jnp.isfinite(guide)), guide, 0.0)  # none: no guidance
            strategy = strategy.replace(grad=guide)
            extra["surrogate_loss"] = surrogate_loss
        population, strategy = algorithm.ask(key_ask, strategy, es_params)
        population = jax.tree.map(_like, population, state.params)
        losses = self._losses(population, batch)
        finite = jnp.isfinite(losses)
        fitness = replace_nonfinite(losses)
        strategy, _ = algorithm.tell(key_tell, population, fitness, strategy, es_params)
        if self.name == "GuidedES":
            # `ask` empties the gradient slot (NaN); refill it, so that the state stays
            # finite: with the surrogate's gradient, else with the mean's last step
            # (-lr x the ES gradient estimate), the guide of the next step.
            last = state.strategy.mean - strategy.mean
            strategy = strategy.replace(grad=guide if self.surrogate is not None else last)
        strategy = jax.tree.map(lambda new, old: new.astype(old.dtype), strategy, state.strategy)
        new = EvosaxState(jax.tree.map(_like, _centre(algorithm, strategy), state.params), strategy)
        ok = jnp.any(finite) & finite_tree(new)
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
        metrics = {
            "loss": jnp.where(ok, jnp.mean(fitness), jnp.nan),
            "best_loss": jnp.where(ok, jnp.min(jnp.where(finite, losses, jnp.inf)), jnp.nan),
            "nonfinite_members": jnp.sum(~finite),
            **extra,
        }
        return new, metrics

    def _losses(self, population: Any, batch: tuple) -> Array:
        """The loss of every member: shape `(population_size,)`."""
        member = lambda params: self.loss_fn(params, *batch)
        if self.chunk_size is None:
            return jax.vmap(member)(population)
        return jax.lax.map(member, population, batch_size=self.chunk_size)

    def best(self, state: EvosaxState) -> tuple[Any, Array]:
        """The best member evaluated so far and its loss (on the batch it was drawn with)."""
        unravel = ravel_pytree(state.params)[1]
        return unravel(state.strategy.best_solution), state.strategy.best_fitness


@eqx.filter_jit
def _initial_strategy(learner: EvosaxLearner, params: Any) -> Any:
    """The evosax state at `params` (jitted once per learner configuration). A genetic
    algorithm starts from `params` and `population_size - 1` mutants of it (std
    `std_init`), none evaluated yet (fitness +inf), so its first generation breeds
    from them and `params` is the best point until a member beats it."""
    algorithm = learner._algorithm(params)
    es_params = learner._params(algorithm)
    if learner.name in POPULATION_BASED:
        flat, unravel = ravel_pytree(params)
        std = 1.0 if learner.std_init is None else learner.std_init
        noise = jax.random.normal(jax.random.key(0), (learner.population_size, flat.size))
        members = flat + std * noise.at[0].set(0.0).astype(flat.dtype)
        fitness = jnp.full((learner.population_size,), jnp.inf, flat.dtype)
        state = algorithm.init(jax.random.key(0), jax.vmap(unravel)(members), fitness, es_params)
    else:
        state = algorithm.init(jax.random.key(0), params, es_params)
    return jax.tree.map(_strong, state)


def _centre(algorithm: Any, strategy: Any) -> Any:
    """What the learner trains: the mean of a distribution-based strategy; the best member
    so far of a genetic algorithm (no distribution: its elites are its state)."""
    if hasattr(algorithm, "get_mean"):
        return algorithm.get_mean(strategy)
    return algorithm._unravel_solution(strategy.best_solution)


def _strong(x: Any) -> Array:
    return jnp.asarray(x, dtype=jnp.result_type(x))


def _like(x: Array, like: Array) -> Array:
    return x.astype(jnp.result_type(like))


def _strategy_class(name: str) -> type:
    from evosax.algorithms.distribution_based import distribution_based_algorithms
    from evosax.algorithms.population_based import population_based_algorithms

    if name in POPULATION_BASED:
        return population_based_algorithms[name]
    if name not in EVOSAX_ALGORITHMS:
        raise ConfigError(
            f"unknown evosax strategy {name!r}; tested: {', '.join(STRATEGIES)}"
            f" (evosax has {', '.join(sorted(distribution_based_algorithms))})"
        )
    if name not in distribution_based_algorithms:
        raise ConfigError(
            f"evosax {name} is population-based (no mean to train); choose a distribution-"
            f"based strategy such as {', '.join(STRATEGIES[:4])}"
        )
    cls = distribution_based_algorithms[name]
    if list(inspect.signature(cls.__init__).parameters)[1:3] != ["population_size", "solution"]:
        raise ConfigError(f"evosax {name} runs several populations at once; not supported")
    return cls


def _constructor_args(cls: type) -> set[str]:
    """The settings the evosax constructor takes besides the population and solution."""
    return set(inspect.signature(cls.__init__).parameters) - {
        "self",
        "population_size",
        "solution",
    }


def _required_args(cls: type) -> set[str]:
    """The constructor settings with no default."""
    parameters = inspect.signature(cls.__init__).parameters
    return {k for k in _constructor_args(cls) if parameters[k].default is inspect.Parameter.empty}


def _param_fields(cls: type) -> set[str]:
    """The field names of the strategy's params (the `Params` class of its module; read,
    not built, since building CMA-ES's defaults eagerly takes seconds)."""
    return {f.name for f in dataclasses.fields(sys.modules[cls.__module__].Params)}


def evosax_learner(
    method: str,
    loss_fn: Callable[..., Array],
    *,
    population_size: int,
    std_init: float | None = None,
    optimizer: optax.GradientTransformation | None = None,
    surrogate: Callable[..., Any] | None = None,
    chunk_size: int | None = None,
    **strategy_params: Any,
) -> EvosaxLearner:
    """The learner of a method name `"evosax:NAME"` (or a bare `NAME`), for the registry
    of signals: `optimizer` (an experiment's, e.g. Adam at its ES learning rate) is
    given to the `PLAIN_GRADIENT` strategies only; the natural-gradient (SNES, xNES) and
    CMA strategies keep their own step. The other arguments are those of
    `EvosaxLearner`."""
    name = method.removeprefix("evosax:")
    _strategy_class(name)  # a bad name: its ConfigError first
    if name not in PLAIN_GRADIENT:
        optimizer = None
    return EvosaxLearner(
        loss_fn,
        name,
        population_size,
        std_init=std_init,
        optimizer=optimizer,
        surrogate=surrogate,
        chunk_size=chunk_size,
        **strategy_params,
    )


def takes_optimizer(name: str) -> bool:
    """Whether evosax strategy `name` applies an optax optimizer to its mean."""
    return "optimizer" in _constructor_args(_strategy_class(name))


__all__ = [
    "PLAIN_GRADIENT",
    "STRATEGIES",
    "EvosaxLearner",
    "EvosaxState",
    "evosax_learner",
    "takes_optimizer",
]
