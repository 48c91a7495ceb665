"""Every setting of every registered experiment, walked: zero, negative, huge and
mistyped values are either refused with a one-line `ConfigError` from `config` (what
`bbpes run` turns into exit code 2 before writing anything) or accepted because the
experiment documents them as meaningful.

`MEANINGFUL` is the explicit list of settings that accept 0 or -1 and why: a new
setting whose check is missing (or an old one whose check is lost) fails the walk."""

from __future__ import annotations

import importlib.util
import time
import tracemalloc

import pytest

from bbpes.errors import ConfigError
from bbpes.experiments import registry

EXPERIMENTS = registry()

SIGNAL_KNOBS = {  # the knobs of bbpes.signals that every experiment with a method has
    "es_chunk": ((0,), "0: every ES sample at once"),
    "tangents": ((0,), "0: as many forward-gradient tangents as ES samples"),
    "guided_alpha": ((0,), "guided ES searching the surrogate subspace only"),
    "truncate_slots": ((0,), "0: a fifth of the input slots"),
}

MEANINGFUL: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {
    "*": {"seed": ((0,), "the default seed")},
    "evidence": {
        **SIGNAL_KNOBS,
        "hold": ((0, -1), "<= 0: the case's hold (6 or 20 ms)"),
        "clip": ((0,), "0: no gradient clip"),
        "p_null": ((0,), "no null inputs"),
        "p_favoured": ((0,), "no favoured type: the three types equally likely"),
        "i_app": ((0, -1), "bias current in units of the cell's drive: none, or hyperpolarising"),
        "in_scale": ((0,), "a standard deviation: zero input weights"),
        "rec_scale": ((0,), "a standard deviation: no recurrence at init (the default)"),
        "out_scale": ((0,), "a standard deviation: zero readout weights"),
        "out_bias": ((0, -1), "the readout's initial bias, any value"),
        "ode_max_steps": ((0,), "0: the stepper's step count"),
        "memory_limit_gb": ((0,), "0: 80% of the free memory"),
    },
    "memory": SIGNAL_KNOBS,
    "turn-off": {
        **SIGNAL_KNOBS,
        "i_app0": ((0, -1), "the initial current (µA/cm²), any value"),
        "clip": ((0,), "0: no gradient clip"),
        "grid_min": ((0, -1), "the landscape's lowest current (µA/cm²), any value"),
    },
    "reversibility": {"i_app": ((0, -1), "the constant current (µA/cm²), any value")},
    "adjoint-drift": {"i_app": ((0, -1), "the constant current (µA/cm²), any value")},
    "turn-off-brian2": {
        "i_app0": ((0, -1), "the initial current (µA/cm²), any value"),
        "grid_min": ((0, -1), "the landscape's lowest current (µA/cm²), any value"),
        "workers": ((0,), "0: every free CPU of the cluster"),
        "retries": ((0,), "0: a failed sample is not tried again"),
    },
    "rober": {
        **SIGNAL_KNOBS,
        "clip": ((0,), "0: no gradient clip"),
        "init_output_scale": ((0,), "a zero output layer: the field starts at zero"),
    },
    "nne-mnist": {
        "test_per_digit": ((0,), "0: every test image"),
        "eval_samples": ((0,), "0: no sampled genotypes at evaluations"),
        "batch_images": ((0,), "0: every training image each generation (the paper)"),
    },
    "nne-vs-es": {
        "test_per_digit": ((0,), "0: every test image"),
        "batch_images": ((0,), "0: every training image each step"),
    },
    "dopamine-mnist": {
        "train_per_digit": ((0,), "0: every training image"),
        "test_per_digit": ((0,), "0: every test image"),
        "k_cap": ((0,), "0: no k-cap"),
        "dnn_epsilon0": ((0,), "the rule's loss threshold, any value >= 0"),
    },
    "fit": {
        **SIGNAL_KNOBS,
        "clip": ((0,), "0: no gradient clip"),
        "noise": ((0,), "0: no recording noise on the ground truth"),
        "ljp": ((0, -1), "the liquid junction potential (mV), any value"),
    },
    "fit-neuron": {
        **SIGNAL_KNOBS,
        "clip": ((0,), "0: no gradient clip"),
        "noise": ((0,), "0: no recording noise on the ground truth"),
        "celsius": ((0, -1), "the temperature (°C), any value above absolute zero"),
        "v_init": ((0, -1), "the initial voltage (mV), any value"),
        "workers": ((0,), "0: every free CPU of the cluster"),
        "retries": ((0,), "0: a failed sample is not tried again"),
        "timeout": ((0,), "0: no time limit on a sample"),
    },
    "signals": {
        "budget": ((0,), "0: the scale's budget"),
        "memory_limit_gb": ((0,), "0: 80% of the free memory"),
    },
}


@pytest.fixture(autouse=True)
def brian2_and_ray_installed(monkeypatch):
    """turn-off-brian2 and fit-neuron refuse every configuration where Brian2, NEURON,
    eFEL or Ray are missing: pretend they are there, so that their other checks run."""
    real = importlib.util.find_spec
    fake = ("brian2", "ray", "neuron", "efel")
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name in fake else real(name, *a),
    )


def numeric_kind(default) -> type | None:
    """int or float for a numeric setting (or a list of numbers), else None."""
    item = default[0] if isinstance(default, list) and default else default
    if isinstance(item, bool):
        return None
    if isinstance(item, (int, float)):
        return type(item)
    return float if default is None else None  # a preset-filled number (rober)


def as_text(value: float, kind: type) -> str:
    return str(int(value)) if kind is int else repr(float(value))


def settings(name: str) -> dict:
    return {**EXPERIMENTS[name].defaults, "seed": 0}


def accepts(name: str, key: str, text: str) -> bool:
    """Whether `config({key: text})` is accepted; any error but a ConfigError fails."""
    try:
        EXPERIMENTS[name].config({key: text})
    except ConfigError as error:
        assert "\n" not in str(error), f"{name} {key}={text}: a multi-line error: {error}"
        return False
    return True


def meaningful(name: str, key: str) -> tuple[int, ...]:
    entry = MEANINGFUL.get(name, {}).get(key) or MEANINGFUL["*"].get(key)
    return entry[0] if entry else ()


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_zero_and_negative_values_are_refused_unless_documented(name):
    wrong = []
    for key, default in settings(name).items():
        kind = numeric_kind(default)
        if kind is None or key == "quick":
            continue
        for value in (0, -1):
            if accepts(name, key, as_text(value, kind)) != (value in meaningful(name, key)):
                wrong.append(f"{key}={value}")
    assert not wrong, f"{name}: accepted but undocumented, or documented but refused: {wrong}"


def test_every_documented_setting_exists():
    """The table names real settings only (a renamed setting must be renamed here)."""
    for name, table in MEANINGFUL.items():
        for key in table:
            assert name == "*" or key in settings(name), f"{name} has no setting {key}"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_mistyped_values_are_refused(name):
    accepted = []
    for key, default in settings(name).items():
        texts = ["abc", "1,,x"] + (["2.5"] if numeric_kind(default) is int else [])
        accepted += [f"{key}={t}" for t in texts if accepts(name, key, t)]
    assert not accepted, f"{name} accepted {accepted}"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_huge_values_are_decided_at_once_without_allocating(name):
    """1e12 (steps, cells, samples, ...) is refused or accepted within a second and
    without allocating: sizes are checked against the free memory, never tried. One
    check of the defaults runs first, so that one-time imports (evosax's, for the
    signals a check builds) are not counted as the decision's time or memory."""
    accepts(name, "seed", "0")
    tracemalloc.start()
    try:
        for key, default in settings(name).items():
            kind = numeric_kind(default)
            if kind is None:
                continue
            t0 = time.perf_counter()
            accepts(name, key, as_text(1e12, kind))
            assert time.perf_counter() - t0 < 1.0, f"{name} {key}=1e12 took too long"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"{name}: config allocated {peak / 1e6:.0f} MB"


def test_a_python_caller_is_held_to_the_same_types():
    """`config` given Python values (not strings) checks their types too."""
    evidence = EXPERIMENTS["evidence"]
    assert evidence.config({"steps": 3.0})["steps"] == 3
    assert evidence.config({"lr": 1})["lr"] == 1.0
    for bad in ({"steps": 2.5}, {"steps": True}, {"lr": float("inf")}, {"case": 3}):
        with pytest.raises(ConfigError):
            evidence.config(bad)
    with pytest.raises(ConfigError, match="seed must be in"):
        evidence.config(seed=-1)
