"""What the signals study needs to know about one regime: a `Problem` (the task's loss
forms, starting parameters, data, validation and test metrics) and a `Regime` (which
signals compete on it, the knob each is tuned on, the target).

Nothing here imports an experiment: a regime's `build` is a plain function (bbpes's own
regimes are the modules of `bbpes.study.regimes`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..signals import LossForms


@dataclass(frozen=True)
class Problem:
    """One regime at one scale, ready to train.

    - `forms`: the loss in every form the task offers (`bbpes.signals.LossForms`).
    - `init(run) -> params`: the starting parameters of training run `run` (the same for
      every signal, so that signals differ only in how they learn).
    - `batch(run, i) -> tuple`: the data of step i of run `run` (None: no data).
    - `validate(params) -> float`: the metric on held-out validation data (selection).
    - `test(params) -> float`: the metric on the test data (reporting only).
    - `forward(params, *batch) -> scalar`: one forward simulation of a batch (the unit of
      forward-pass equivalents); defaults to `forms.loss`.
    - `settings`: the signal knobs of this problem (sigma, samples, lr, ...), the base
      from which each signal's sweep departs.
    - `notes`: what a reader needs to know (sizes, splits), for the leaderboard.
    - `forward_forms`: the forms forward-only signals train on, where they differ (an
      ODE loss solved in forward mode, so that `jax.jvp` runs through it: the forward
      gradient needs it; reverse-mode signals need `forms`). None: `forms` for all.
    - `references`: levels of the test metric that need no learning signal, name ->
      value (chance; a fixed rule that reads only the last inputs), so that a reader of
      the leaderboard knows what a number at the budget means.
    """

    forms: LossForms
    init: Callable[[int], Any]
    batch: Callable[[int, int], tuple] | None
    validate: Callable[[Any], float]
    test: Callable[[Any], float]
    settings: Mapping[str, Any]
    forward: Callable[..., Any] | None = None
    notes: str = ""
    x64: bool = False  # train and evaluate under jax.enable_x64 (stiff ODEs)
    forward_forms: LossForms | None = None
    references: Mapping[str, float] = field(default_factory=dict)
    compiled: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """The compiled step of each signal on this problem, filled by the grid
    (`bbpes.study.grid.compiled_step`): one compilation serves the signal's calibration,
    every tuning value and every seed."""


def forms_for(problem: Problem, method: str) -> LossForms:
    """The loss forms `method` trains on in `problem` (`Problem.forward_forms` for a
    forward-only signal where the problem has them, else `Problem.forms`)."""
    from ..signals import signal

    if problem.forward_forms is not None and signal(method).family == "forward":
        return problem.forward_forms
    return problem.forms


@dataclass(frozen=True)
class Sweep:
    """The knob a signal is tuned on and the factors tried on the problem's base value
    of it (the same number for every signal: equal tuning effort)."""

    knob: str
    factors: Sequence[float] = (1.0, 1 / 3, 3.0)  # the default first: sweep=1 keeps it

    def values(self, settings: Mapping[str, Any]) -> tuple[float, ...]:
        return tuple(float(settings[self.knob] * f) for f in self.factors)


def sweeps(names: Sequence[str]) -> dict[str, Sweep]:
    """Each signal's sweep: three values of the knob it is tuned on (`Signal.tuned`:
    its step size, or the initial search scale of a strategy that sets its own step)
    around the problem's default (x 1, 1/3, 3: the default first). Names this
    installation lacks (evosax's, without evosax) are left out."""
    from ..signals import names as known
    from ..signals import signal

    have = set(known())
    return {name: Sweep(signal(name).tuned) for name in names if name in have}


@dataclass(frozen=True)
class Regime:
    """One of the ES paper's claims, as a competition.

    - `metric`: the name of the test metric; `higher_is_better` its direction.
    - `target`: the value a signal must reach (the leaderboard ranks by time to it,
      then by the metric at the budget).
    - `signals`: method name -> `Sweep`.
    - `build(scale) -> Problem`.
    - `claim`: the paper's claim this regime tests, in one line.
    """

    name: str
    claim: str
    metric: str
    higher_is_better: bool
    target: float
    signals: Mapping[str, Sweep]
    build: Callable[[str], Problem]
    budget: Mapping[str, float] = field(default_factory=dict)  # scale -> seconds per run

    def reached(self, value: float | None) -> bool:
        if value is None or value != value:
            return False
        return value >= self.target if self.higher_is_better else value <= self.target

    def better(self, a: float | None, b: float | None) -> bool:
        """Whether metric value `a` beats `b` (None and NaN lose)."""
        if a is None or a != a:
            return False
        if b is None or b != b:
            return True
        return a > b if self.higher_is_better else a < b
