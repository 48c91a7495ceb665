"""What a learning signal is: `Signal`, the knobs it takes (`Knob`) and the loss forms
a task offers it (`LossForms`).

A signal is a small immutable object that owns everything about itself: its family,
the loss form it needs, which step size it takes and whether the gradient clip
applies, its knobs, its cost in forward-pass equivalents and its memory law, its plot
colour, and `learner(forms, optimizer, settings)`, the learner that runs it. Every
experiment, the study and `bbpes show` ask the object; nothing keeps a side table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import optax

from ..errors import ConfigError
from ..settings import Setting

Family = Literal["backprop", "forward"]


Knob = Setting
"""A signal's knob is a `bbpes.settings.Setting`: its name, default, help, unit, range
and what 0 means where 0 means "chosen from the others"."""


@dataclass(frozen=True)
class LossForms:
    """A task's loss in the forms it can offer; a signal that needs a form the task
    lacks is refused with a one-line error.

    - `loss(params, *batch) -> scalar`: the simulation with its own stepper.
    - `checkpointed_loss`: the same, looping with `checkpointed_scan`.
    - `ode_loss`: the same model as a `bbpes.ode.ODELoss` (pnde, fnde).
    - `surrogate_loss`: the same with the hard spike threshold differentiated through a
      surrogate derivative (`bbpes.neurons.readout.surrogate_threshold`).
    - `truncated_loss`: the same with gradients kept for the last steps of the trial
      only (a bounded-memory surrogate gradient for guided ES).
    """

    loss: Callable[..., Any] | None = None
    checkpointed_loss: Callable[..., Any] | None = None
    ode_loss: Any = None
    surrogate_loss: Callable[..., Any] | None = None
    truncated_loss: Callable[..., Any] | None = None


def ode_forms(family: Family, loss: Callable[..., Any], ode: Any) -> LossForms:
    """A neural-ODE task's loss forms for a signal of `family`: `ode_loss` (`ode`, a
    `bbpes.ode.ODELoss`: the adjoints' form) and `loss`, which for a forward-only
    signal is the ODE solved in forward mode (`ODELoss.in_forward_mode`: the same
    values, and `jax.jvp` runs through it) and for a reverse-mode one the task's own
    `loss`."""
    return LossForms(loss=ode.in_forward_mode() if family == "forward" else loss, ode_loss=ode)


STEP_SETTINGS: Mapping[str, str] = {"es": "lr_es", "bp": "lr"}
"""The experiment setting of each kind of step size: `lr_es` for estimates from losses
only, `lr` for exact or unbiased gradient estimates."""


@dataclass(frozen=True)
class Signal:
    """One learning signal (subclasses: `bbpes.signals.backprop`, `.perturbation`,
    `.forward_mode`, `.evosax`; a user's own signal subclasses this too).

    - `family`: `"backprop"` (exact reverse-mode derivatives through the simulation) or
      `"forward"` (forward passes only: losses, or forward-mode derivatives).
    - `needs`: the loss form it uses (a field of `LossForms`).
    - `lr`: which of the experiment's learning rates it takes: `"es"` (`lr_es`) for
      losses-only estimates, `"bp"` (`lr`) for exact or unbiased gradient estimates,
      None when the strategy sets its own step (evosax's distribution updates).
    - `clip`: whether the experiment's gradient clip applies to it.
    - `cost`: forward-pass equivalents per iteration, in words (`forward_passes` is the
      number).
    - `memory`: how its memory grows with the trial length T.
    - `reference`: where it comes from.
    - `observations`: whether it takes a loss observed at many times along the solution
      (an observation cost); pnde cannot.
    - `guide`: loss forms of which it needs one besides `needs` (guided ES: a truncated
      or surrogate-spike loss, for its guiding gradient).
    - `color`: its colour in every plot (None: matplotlib's cycle).
    - `knobs`: the settings it reads (`Knob`s); `settings` passed to `learner` carry
      them, filled from the defaults where absent.
    """

    name: str
    family: Family
    needs: str
    lr: Literal["es", "bp"] | None
    clip: bool
    cost: str
    memory: str
    reference: str
    observations: bool = True
    guide: tuple[str, ...] = ()
    color: str | None = None
    knobs: tuple[Knob, ...] = field(default=(), repr=False)

    # -- what it takes -------------------------------------------------------------

    @property
    def step_setting(self) -> str | None:
        """The experiment setting of its step size (`lr_es` or `lr`), None for a
        strategy that sets its own step."""
        return STEP_SETTINGS[self.lr] if self.lr else None

    @property
    def tuned(self) -> str:
        """The knob the study tunes it on: its step size, or, for a strategy that sets
        its own step, the initial search scale `sigma`."""
        return self.step_setting or "sigma"

    def defaults(self) -> dict[str, Any]:
        """Its knobs' defaults, by name."""
        return {k.name: k.default for k in self.knobs}

    def settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """`settings` with its knobs' defaults where absent."""
        return {**self.defaults(), **settings}

    def check(self, settings: Mapping[str, Any]) -> None:
        """A one-line `ConfigError` for a knob of `settings` out of its range."""
        for knob in self.knobs:
            if knob.name in settings:
                knob.check(settings[knob.name])

    # -- what it costs --------------------------------------------------------------

    def forward_passes(self, settings: Mapping[str, Any], n_params: int = 0) -> float | None:
        """Forward-pass equivalents of one iteration at `settings` (None for backprop,
        whose ratio to one forward pass is measured, not assumed)."""
        return None

    # -- what it runs ------------------------------------------------------------------

    def optimizer(
        self,
        settings: Mapping[str, Any],
        make: Callable[[Any], optax.GradientTransformation] = optax.adam,
        *,
        lr: Mapping[str, str] | None = None,
        clip: str | None = "clip",
    ) -> optax.GradientTransformation:
        """`make(rate)` at the experiment's learning rate for its kind of step (`lr`
        maps a kind, "es" or "bp", to another setting name), after a clip of the
        gradient's global norm to `settings[clip]` where it takes the clip and that is
        positive. A strategy that sets its own step still gets `make(settings["lr_es"])`
        (evosax's plain-gradient strategies step with it)."""
        keys = {**STEP_SETTINGS, **(lr or {})}
        optimizer = make(settings[keys[self.lr or "es"]])
        if self.clip and clip is not None and settings.get(clip, 0) > 0:
            return optax.chain(optax.clip_by_global_norm(settings[clip]), optimizer)
        return optimizer

    def form(self, forms: LossForms) -> Callable[..., Any]:
        """The loss form it needs from `forms`, or a one-line `ConfigError`."""
        loss = getattr(forms, self.needs)
        if loss is None:
            raise ConfigError(f"method {self.name!r} is not available for this task")
        return loss

    def learner(
        self, forms: LossForms, optimizer: optax.GradientTransformation, settings: Mapping[str, Any]
    ):
        """The learner (`bbpes.learners.AbstractLearner`) that trains with this signal:
        `forms` the task's loss forms, `optimizer` applied to its gradient estimates,
        `settings` its knobs (defaults where absent) and, for some, `n_params` (the
        number of trainable numbers) and `mesh` (a sharded population)."""
        raise NotImplementedError(f"signal {self.name!r} builds no learner")
