"""Pick a learning signal by name, as experiments and the command line do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ode import ODELoss
from .adjoint import fnde, pnde
from .backprop import bptt
from .es import es
from .finite_diff import finite_difference, weight_perturbation

METHODS = (
    "es",
    "bptt",
    "bptt_checkpointed",
    "pnde",
    "fnde",
    "finite_difference",
    "weight_perturbation",
)


def estimator_by_name(
    method: str,
    *,
    loss: Callable[..., Any] | None = None,
    checkpointed_loss: Callable[..., Any] | None = None,
    ode_loss: ODELoss | None = None,
    sigma: Any = None,
    samples: int | None = None,
    fd_eps: float = 1e-3,
    **es_options: Any,
) -> Callable[..., tuple[Any, Any]]:
    """The estimator `method` for a task that offers its loss in up to three forms:

    - `loss(params, *args)`: the simulation with its own stepper (ES, BPTT, references);
    - `checkpointed_loss`: the same, looping with `checkpointed_scan` (checkpointed BPTT);
    - `ode_loss`: the same model as an `ODELoss` (pnde, fnde).

    `sigma`, `samples` and `es_options` configure ES and weight perturbation.
    """
    needs = {"bptt_checkpointed": checkpointed_loss, "pnde": ode_loss, "fnde": ode_loss}
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if method in needs and needs[method] is None:
        raise ValueError(f"method {method!r} is not available for this task")
    if method in ("es", "weight_perturbation") and (sigma is None or samples is None):
        raise ValueError(f"method {method!r} needs sigma and samples")
    if loss is None and method not in needs:
        raise ValueError(f"method {method!r} needs the task's loss")
    if method == "es":
        return es(loss, sigma, samples, **es_options)
    if method == "weight_perturbation":
        return weight_perturbation(loss, sigma, samples, **es_options)
    if method == "bptt":
        return bptt(loss)
    if method == "bptt_checkpointed":
        return bptt(checkpointed_loss)
    if method == "pnde":
        return pnde(ode_loss)
    if method == "fnde":
        return fnde(ode_loss)
    return finite_difference(loss, fd_eps)
