"""Every setting of every registered experiment, walked against its declaration
(`bbpes.settings.Setting`): a number declares its range (or that any value is
meaningful), and zero, negative, huge and mistyped values are refused with a one-line
`ConfigError` from `config` (what `bbpes run` turns into exit code 2 before writing
anything) exactly where the declaration says so. A new setting whose range is not
declared, or an experiment check that refuses what its declaration allows, fails."""

from __future__ import annotations

import importlib.util
import json
import time
import tracemalloc
from pathlib import Path

import pytest

from bbpes.errors import ConfigError
from bbpes.experiments import registry

EXPERIMENTS = registry()


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


def as_text(value: float, setting) -> str:
    item = setting.prototype[0] if isinstance(setting.prototype, list) else setting.prototype
    return str(int(value)) if isinstance(item, int) else repr(float(value))


def numbers(name: str) -> list:
    """The numeric settings of experiment `name` (numbers and lists of numbers)."""
    return [s for s in EXPERIMENTS[name].settings if s.numeric]


def accepts(name: str, key: str, text: str) -> bool:
    """Whether `config({key: text})` is accepted; any error but a ConfigError fails."""
    try:
        EXPERIMENTS[name].config({key: text})
    except ConfigError as error:
        assert "\n" not in str(error), f"{name} {key}={text}: a multi-line error: {error}"
        return False
    return True


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_number_declares_its_range(name):
    missing = [s.name for s in numbers(name) if not s.ranged]
    assert not missing, f"{name}: declare the range of {missing} (or any_value=True)"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_setting_has_help(name):
    missing = [s.name for s in EXPERIMENTS[name].settings if not s.help]
    assert not missing, f"{name}: no help line for {missing}"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_zero_and_negative_values_are_decided_by_the_declaration(name):
    wrong = []
    for setting in numbers(name):
        for value in (0, -1):
            allowed = setting.allows([value] if isinstance(setting.prototype, list) else value)
            if accepts(name, setting.name, as_text(value, setting)) != allowed:
                wrong.append(f"{setting.name}={value} ({'allowed' if allowed else 'refused'})")
    assert not wrong, f"{name}: config disagrees with the declaration on {wrong}"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_quick_values_are_valid(name):
    EXPERIMENTS[name].config(quick=True)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_mistyped_values_are_refused(name):
    accepted = []
    for setting in EXPERIMENTS[name].settings:
        whole = setting.numeric and as_text(1, setting) == "1"
        texts = ["abc", "1,,x"] + (["2.5"] if whole else [])
        accepted += [f"{setting.name}={t}" for t in texts if accepts(name, setting.name, t)]
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
        for setting in numbers(name):
            t0 = time.perf_counter()
            accepts(name, setting.name, as_text(1e12, setting))
            assert time.perf_counter() - t0 < 1.0, f"{name} {setting.name}=1e12 took too long"
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
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        evidence.config(seed=-1)


STORED = sorted((Path(__file__).parents[2] / "docs" / "data").glob("*/config.json"))


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.parent.name)
def test_every_stored_run_reads_back_with_its_settings(path):
    """Each run stored under docs/data/ (which `--resume` continues) is valid under the
    declarations: every key known, every value of its type and in its range, and the
    resolved configuration holds the stored values."""
    from bbpes.framework.runner import read_settings_file

    stored = json.loads(path.read_text())
    name = stored["experiment"]
    settings, quick = read_settings_file(path, name)
    config = EXPERIMENTS[name].config(settings, quick=quick)
    assert {k: config[k] for k in settings} == settings
