"""Every experiment that takes a learning signal, with every method it accepts, at the
tiniest sizes: the learner that `bbpes.signals.make_learner` gives it trains one step,
with the learning rate of the signal's kind (Adam's first step moves every parameter
with a nonzero gradient by the rate, whatever the gradient's scale), and every method
it refuses is refused in `check`, with one line, before anything runs.

A signal added to `bbpes.signals.SIGNALS` joins these cases with no edit here."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bbpes import signals
from bbpes.errors import ConfigError
from bbpes.experiments import get, rober, turn_off
from bbpes.framework.checks import signal_learner, signal_optimizer
from bbpes.tasks import evidence_setup
from bbpes.tasks.evidence_setup import FORMS, build, initial_weights
from bbpes.tasks.turn_off import forms_offered, loss_forms
from bbpes.train import train

SLOW_FORMS = {"ode_loss"}  # diffrax solves and their adjoints compile for tens of seconds


def cases(forms, *, cheap: bool = False):
    """One case per signal whose form is in `forms`; those needing a slow-to-compile
    form are marked slow, and so are the evosax strategies unless the task is `cheap`
    (the registry-wide sweep of them runs on the single-cell task)."""
    out = []
    for m in signals.names():
        info = signals.signal(m)
        if info.needs not in forms:
            continue
        slow = info.needs in SLOW_FORMS or (m.startswith(signals.EVOSAX_PREFIX) and not cheap)
        out.append(pytest.param(m, marks=pytest.mark.slow) if slow else m)
    return out


def refused(forms):
    return [m for m in signals.names() if signals.signal(m).needs not in forms]


def rate(config, method, bp_key="lr"):
    return config["lr_es"] if signals.signal(method).lr == "es" else config[bp_key]


def largest_step(before, after) -> float:
    return max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))
    )


EVIDENCE = {
    "n_cells": 4,
    "batch": 2,
    "samples": 4,
    "n_inputs": 2,
    "hold": 1.0,
    "window": 1.0,
    "input_dim": 3,
    "test_trials": 4,
    "pca_trials": 2,
    "rate_trials": 2,
    "steps": 1,
    "seeds": 1,
    "lr": 1e-3,
    "lr_es": 4e-3,
    "lr_schedule": "constant",
}


@pytest.mark.parametrize("method", cases(FORMS))
def test_evidence_trains_one_step_of_every_signal(method):
    try:
        config = get("evidence").config({**EVIDENCE, "method": method})
    except ConfigError:  # refused in check: then make_learner refuses the real forms too
        config = get("evidence").config(EVIDENCE)
        task, network = build(config)
        with pytest.raises(ConfigError):
            evidence_setup.make_learner(method, task, network, config)
        return
    task, network = build(config)
    weights = initial_weights(config, task, 0)
    learner = evidence_setup.make_learner(method, task, network, config)
    result = train(
        learner,
        weights,
        jax.random.key(0),
        steps=1,
        batch=lambda i: task.trials(2, [0, 2, i]),
        progress="off",
    )
    (record,) = [r for r in result.history if "loss" in r]
    assert np.isfinite(record["loss"]) and not record.get("nonfinite")
    step = largest_step(weights, result.params)
    if signals.signal(method).lr is None:  # the strategy sets its own step
        assert 0 < step < np.inf
    else:
        assert step == pytest.approx(rate(config, method), rel=1e-3)


def test_evidence_refuses_in_check_what_it_cannot_offer():
    for method in refused(FORMS):  # e.g. surrogate-spike BPTT: the network is smooth
        with pytest.raises(ConfigError, match="does not offer"):
            get("evidence").config({"method": method})


@pytest.mark.parametrize("readout", ["soft", "hard"])
@pytest.mark.parametrize("method", cases(forms_offered(True), cheap=True))
def test_turn_off_trains_one_step_of_every_signal(method, readout):
    settings = {"t_end": 50.0, "readout": readout, "methods": method, "samples": 4}
    if signals.signal(method).needs not in forms_offered(readout == "hard"):
        with pytest.raises(ConfigError, match="does not offer"):
            get("turn-off").config(settings)
        return
    config = get("turn-off").config({**settings, "lr": 0.5, "lr_es": 0.25})
    task = turn_off.make_task(config)
    forms = loss_forms(task, hard=readout == "hard")
    start = {"i_app": jnp.asarray(100.0)}
    optimizer = signal_optimizer(method, config, optax.adam)
    learner = signal_learner(method, forms, optimizer, config, start)
    result = train(learner, start, jax.random.key(0), steps=1, progress="off")
    step = float(result.params["i_app"] - start["i_app"])
    info = signals.signal(method)
    if info.lr is None:  # an evosax strategy sets its own step: finite, and it moved
        assert np.isfinite(step) and step != 0.0
    elif readout == "hard" and info.lr == "bp" and info.needs != "surrogate_loss":
        # derivatives of the hard threshold: zero (backprop) or nearly (differences)
        assert abs(step) <= rate(config, method)
        if info.family == "backprop":
            assert step == 0.0
    else:  # more current, more firing: every signal lowers the current by one rate
        assert step == pytest.approx(-rate(config, method), rel=1e-3)


ROBER = {"n_points": 4, "t_max": 1.0, "samples": 4, "lr_bp": 2e-4, "lr_es": 1e-4}
ROBER_FORMS = rober.FORMS - set(rober.UNSUPPORTED)


@pytest.mark.slow
@pytest.mark.parametrize(
    "method",
    [  # evosax's strategies: swept on turn-off (each rober case compiles for a minute)
        m
        for m in signals.names()
        if signals.signal(m).needs in rober.FORMS and not m.startswith(signals.EVOSAX_PREFIX)
    ]
    + [rober.SCALED],
)
def test_rober_trains_one_step_of_every_signal(method):
    if method in rober.UNSUPPORTED:
        with pytest.raises(ConfigError, match=method):
            get("rober").config({**ROBER, "methods": method})
        return
    try:
        config = get("rober").config({**ROBER, "methods": method})
    except ConfigError:  # refused in check: then make_learner refuses the real forms too
        config = get("rober").config(ROBER)
        task = rober.make_task(config)
        with pytest.raises(ConfigError):
            rober.make_learner(task, method, config)
        return
    task = rober.make_task(config)
    field = rober.initial_field(config, task)
    result = train(rober.make_learner(task, method, config), field, jax.random.key(0), steps=1)
    step = largest_step(field, result.params)
    signal = signals.signal(method if method != rober.SCALED else "bptt")
    if signal.lr is None:  # an evosax strategy sets its own step
        assert 0 < step < np.inf
    else:
        assert step == pytest.approx(rate(config, signal.name, "lr_bp"), rel=1e-2)


@pytest.mark.parametrize(
    "method", [m for m in signals.names() if signals.signal(m).needs not in rober.FORMS]
)
def test_rober_refuses_in_check_what_it_cannot_offer(method):
    with pytest.raises(ConfigError, match="does not offer"):
        get("rober").config({"methods": method})


def test_memory_measures_every_signal_the_evidence_task_offers_by_default():
    config = get("memory").config()
    assert config["method"] == [m for m in signals.names() if signals.signal(m).needs in FORMS]


GROWTH = {  # Signal.memory -> (least, most) growth of the peak bytes for 10x the trial
    "flat": (0.9, 1.2),
    "linear in T": (5.0, 12.0),
    "sqrt(T)": (1.5, 4.0),
    "linear in solver steps": (3.0, 12.0),
}


@pytest.mark.parametrize("method", cases(FORMS))
def test_memory_of_every_signal_grows_as_the_registry_says(method):
    """`Signal.memory` is a claim: a 10x longer trial (2 inputs held 2 ms, then 20 ms:
    10 x the steps, the same inputs) must change the compiled peak bytes of one
    learning signal by its law (a law this table does not know is not checked)."""
    from bbpes.tasks.evidence_memory import measurement_config, peak_bytes

    config = get("memory").config(
        {
            "lengths_ms": [4.0, 40.0],
            "n_inputs": 2,
            "window": 1.0,
            "n_cells": 3,
            "batch": 2,
            "samples": 4,
            "method": method,
        }
    )
    short, long = (peak_bytes(method, measurement_config(config, t)) for t in (4.0, 40.0))
    least, most = GROWTH.get(signals.signal(method).memory, (0.0, float("inf")))
    assert least <= long / short <= most, (signals.signal(method).memory, short, long)
