"""Plugins: an installed package adds cells and experiments through entry points, and
`bbpes list` and `bbpes run` in a separate process see them.

The package is tests/fixtures/bbpes_plugin_example. "Installed" is done the fastest
honest way: its source directory and a `.dist-info` holding the `entry_points.txt`
that pip writes from its pyproject.toml go on the subprocess's PYTHONPATH, which is
all `importlib.metadata` reads (the project venv itself is left untouched).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tomllib
import warnings
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from bbpes import experiments, imports
from bbpes.errors import ConfigError
from bbpes.framework import catalog as experiment_registry
from bbpes.neurons import registry

PLUGIN = Path(__file__).parent / "fixtures" / "bbpes_plugin_example"


def install(site: Path) -> str:
    """Write the plugin's dist-info into `site`; the PYTHONPATH that installs it."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    info = site / f"bbpes_plugin_example-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return os.pathsep.join([str(PLUGIN / "src"), str(site)])


def bbpes(args: list[str], pythonpath: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath, "BBPES_CPU_DEVICES": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bbpes", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def qif_spikes(t_end: float = 1000.0) -> float:
    """Spikes of the plugin's cell at its drive in `t_end` ms, from the closed-form
    first passage from rest and period (the plugin's docstring)."""
    k, V_r, V_t, V_peak, V_reset, I = 0.04, -65.0, -45.0, 30.0, -70.0, 5.0
    m, w = (V_r + V_t) / 2, math.sqrt(I / k - (V_t - V_r) ** 2 / 4)
    passage = lambda v0: (math.atan((V_peak - m) / w) - math.atan((v0 - m) / w)) / (k * w)
    return 1 + (t_end - passage(V_r)) / passage(V_reset)


LIST_AND_CHECK = """
from bbpes.cli import main
from bbpes.experiments import get
from bbpes.tasks.evidence_setup import cell_drive
assert main(["list"]) == 0
config = get("evidence").config({"neuron": "plugin_cell"})  # evidence's own check
print("drive", config["neuron"], cell_drive(config["neuron"]))
"""


def python(code: str, pythonpath: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath, "BBPES_CPU_DEVICES": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_a_separate_process_lists_and_runs_the_plugins(tmp_path):
    """`bbpes list` shows the plugin's experiment, the evidence experiment accepts the
    plugin's cell (with the plugin's drive), and `bbpes run` runs the plugin's
    experiment on the plugin's cell."""
    pythonpath = install(tmp_path / "site")
    listed = python(LIST_AND_CHECK, pythonpath, tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    assert "plugin_demo" in names and "evidence" in names
    assert "a plugin's experiment" in listed.stdout
    assert "drive plugin_cell 5.0" in listed.stdout  # its own, not Morris-Lecar's 100

    out = tmp_path / "run"
    ran = bbpes(["run", "plugin_demo", "--out", str(out), "--set", "neuron=plugin_cell"],
                pythonpath, tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["drive"] == 5.0
    assert abs(metrics["spikes"] - math.floor(qif_spikes())) <= 1  # 72: the plugin's cell ran

    bad = bbpes(["run", "plugin_demo", "--out", str(tmp_path / "bad"), "--set", "neuron=nope"],
                pythonpath, tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "unknown neuron 'nope'" in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_the_evidence_experiment_trains_a_network_of_the_plugin_cell(tmp_path):
    """`bbpes run evidence --set neuron=plugin_cell`, tiny: about 10 s of CPU."""
    pythonpath = install(tmp_path / "site")
    tiny = ["method=bptt", "steps=2", "n_cells=4", "batch=2", "test_trials=4", "n_inputs=2",
            "rate_trials=2", "pca_trials=4", "neuron=plugin_cell"]  # fmt: skip
    args = ["run", "evidence", "--quick", "--out", str(tmp_path / "r")]
    ran = bbpes(args + [x for pair in tiny for x in ("--set", pair)], pythonpath, tmp_path)
    assert ran.returncode == 0, ran.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["spike_rate_hz_init"] > 0  # the QIF network at its drive fires
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["neuron"] == "plugin_cell"


@pytest.fixture
def entry_points(monkeypatch):
    """Fake entry points for the in-process registries; the plugin package importable."""
    monkeypatch.syspath_prepend(str(PLUGIN / "src"))
    found: dict[str, list[EntryPoint]] = {
        registry.ENTRY_POINTS: [],
        experiment_registry.ENTRY_POINTS: [],
    }

    def add(group: str, name: str, value: str) -> None:
        found[group].append(EntryPoint(name, value, group))

    monkeypatch.setattr(imports, "entry_points", lambda group: found.get(group, []))
    registry._plugins.cache_clear()
    experiment_registry.plugins.cache_clear()
    yield add
    registry._plugins.cache_clear()
    experiment_registry.plugins.cache_clear()


def test_plugin_cells_join_cells_and_drive_and_broken_ones_are_skipped(entry_points):
    cells = registry.ENTRY_POINTS
    entry_points(cells, "plugin_cell", "bbpes_plugin_example:CELL")
    entry_points(cells, "bare_cell", "bbpes_plugin_example:CELL.cell")  # no drive
    entry_points(cells, "lif", "bbpes_plugin_example:CELL")  # a built-in name
    entry_points(cells, "missing", "no_such_module:CELL")
    entry_points(cells, "not_a_cell", "bbpes_plugin_example:run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = set(registry.CELLS)
    skipped = " ".join(str(w.message) for w in caught)
    assert {"plugin_cell", "bare_cell", "lif", "izhikevich"} <= names
    assert not {"missing", "not_a_cell"} & names
    assert (
        "no_such_module" in skipped and "is built in" in skipped and "not a Registered" in skipped
    )
    assert type(registry.cell_by_name("plugin_cell")).__name__ == "QuadraticIntegrateAndFire"
    assert registry.CELLS["lif"] is registry.cells()["lif"].cell  # the built-in one kept
    assert registry.DRIVE["plugin_cell"] == 5.0 and "plugin_cell" in registry.DRIVE
    assert "bare_cell" not in registry.DRIVE and "bare_cell" not in dict(registry.DRIVE)
    # a cell with no drive gets an error, never Morris-Lecar's current
    for ask in (lambda: registry.drive_current("bare_cell"),
                lambda: registry.DRIVE.get("bare_cell", 100.0)):  # fmt: skip
        with pytest.raises(ConfigError, match="no drive current"):
            ask()
    assert registry.DRIVE.get("no_such_neuron", 100.0) == 100.0  # unknown: a plain miss
    with pytest.raises(ConfigError, match="unknown neuron"):
        registry.drive_current("no_such_neuron")


def test_register_adds_a_cell_in_process(entry_points):
    cell = registry.CELLS["izhikevich"]
    registry.register("izhikevich_copy", cell, drive=12.0)
    try:
        assert registry.DRIVE["izhikevich_copy"] == 12.0
        with pytest.raises(ConfigError, match="taken"):
            registry.register("lif", cell)
        with pytest.raises(ConfigError, match="not an AbstractCell"):
            registry.register("junk", object())
    finally:
        registry._REGISTERED.pop("izhikevich_copy")


def test_plugin_experiments_join_the_registry(entry_points):
    group = experiment_registry.ENTRY_POINTS
    entry_points(group, "plugin_demo", "bbpes_plugin_example:EXPERIMENT")
    entry_points(group, "broken", "no_such_module:EXPERIMENT")
    with pytest.warns(UserWarning, match="no_such_module"):
        found = experiments.registry()
    assert found["plugin_demo"].summary.startswith("a plugin's experiment")
    assert experiments.get("plugin_demo") is found["plugin_demo"]
    assert "evidence" in found and "broken" not in found


@pytest.fixture
def study_entry_points(monkeypatch):
    """Fake `bbpes.signals` and `bbpes.problems` entry points (the plugin's)."""
    from bbpes import imports
    from bbpes.signals import registry as signal_registry
    from bbpes.study import plugins

    monkeypatch.syspath_prepend(str(PLUGIN / "src"))
    found = {
        "bbpes.signals": [
            EntryPoint("plugin_es", "bbpes_plugin_example:SIGNAL", "bbpes.signals"),
            EntryPoint("clash", "bbpes_plugin_example:CLASH", "bbpes.signals"),  # named es
            EntryPoint("not_a_signal", "bbpes_plugin_example:run", "bbpes.signals"),
            EntryPoint("broken", "no_such_module:X", "bbpes.signals"),
        ],
        "bbpes.problems": [
            EntryPoint(
                "plugin_quadratic", "bbpes_plugin_example:quadratic_problem", "bbpes.problems"
            )
        ],
    }
    monkeypatch.setattr(imports, "entry_points", lambda group: found.get(group, []))
    signal_registry._plugins.cache_clear()
    plugins._installed.cache_clear()
    yield
    signal_registry._plugins.cache_clear()
    plugins._installed.cache_clear()


def test_installed_signals_and_problems_join_the_study(study_entry_points):
    from bbpes import signals
    from bbpes.study import plugins

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = signals.names()
    said = " ".join(str(w.message) for w in caught)
    assert "no_such_module" in said and "'es' is built in" in said and "not a signal" in said
    assert "plugin_es" in names and "broken" not in names and "not_a_signal" not in names
    assert signals.signal("es") is signals.SIGNALS["es"]  # the built-in one kept
    assert signals.signal("plugin_es").reference.startswith("a plugin's ES")
    assert plugins.installed_problems() == ("plugin_quadratic",)
    regime = plugins.installed_regime("plugin_quadratic", "tiny")
    assert regime.name == "plugin_quadratic" and not regime.higher_is_better
    assert {m: s.knob for m, s in regime.signals.items()} == {
        "bptt": "lr",
        "es": "lr_es",
        "plugin_es": "lr_es",
    }
    problem = regime.build("tiny")
    assert problem.test(problem.init(0)) == pytest.approx(1 + 4 + 9 + 16)
