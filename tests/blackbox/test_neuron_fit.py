"""NEURON itself as the simulator of a fit (slow; needs `pip install -e '.[neuron]'`):
the example cell's `.mod` compiled by nrnivmodl and loaded; its traces equal bbpes's
`NeuronHH` in float64; the eFEL loss equals the JAX `FeatureLoss` on the same traces; a
short fit on 2 Ray workers (127.0.0.1) lowers the loss and resumes to the uninterrupted
fit; bad cells are one-line errors that write nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.blackbox import EfelLoss, NeuronCell, compile_mechanisms, load_mechanisms
from bbpes.blackbox._neuron import INSTALL, installed
from bbpes.blackbox.fit import suite_problem
from bbpes.blackbox.mechanisms import _known
from bbpes.blackbox.neuron_cell import parse_parameters
from bbpes.errors import ConfigError
from bbpes.experiments import fit_neuron
from bbpes.fitting import suite
from bbpes.fitting.protocol import simulate_float64
from bbpes.framework.runner import run_experiment
from bbpes.runs import RunDir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not installed(), reason=f"NEURON and eFEL: {INSTALL}"),
    pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "neuron_cell"
USERHH = "gnabar=soma.gnabar_userhh,gkbar=soma.gkbar_userhh,gl=soma.gl_userhh"
HOC = {
    "cell": str(EXAMPLE / "cell.hoc"),
    "template": "HHSoma",
    "mechanisms": str(EXAMPLE / "mechanisms"),
    "parameters": USERHH,
}
SPACE, PROTOCOL, TRUTH, JAX_CELL = suite_problem("hh")


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Compiled mechanisms in a directory of this test run (the workers inherit it)."""
    path = tmp_path_factory.mktemp("nrnivmodl")
    before = os.environ.get("BBPES_NEURON_CACHE")
    os.environ["BBPES_NEURON_CACHE"] = str(path)
    yield path
    os.environ.pop("BBPES_NEURON_CACHE") if before is None else os.environ.update(
        BBPES_NEURON_CACHE=before
    )


def example_cell() -> NeuronCell:
    return NeuronCell(
        HOC["cell"], HOC["template"], HOC["mechanisms"], parse_parameters(USERHH.split(","))
    )


def test_the_example_mechanism_compiles_once_and_loads(cache):
    compiled = compile_mechanisms(EXAMPLE / "mechanisms")
    assert compiled.parent == cache and list(compiled.glob("*/libnrnmech.*"))
    stamp = compiled.stat().st_mtime_ns
    assert compile_mechanisms(EXAMPLE / "mechanisms") == compiled  # from the cache
    assert compiled.stat().st_mtime_ns == stamp
    load_mechanisms(EXAMPLE / "mechanisms")
    assert _known("userhh")
    assert load_mechanisms(EXAMPLE / "mechanisms") is None  # known now: not loaded twice


@pytest.mark.parametrize("which", ["hoc", "python", "builtin"])
def test_neurons_traces_equal_neuron_hh_in_float64(which):
    """Test case 1 at the truth and at another point: the example's `userhh` (compiled
    here) in its hoc template and in its Python builder, and NEURON's own `hh`, against
    `NeuronHH` in float64."""
    if which == "hoc":
        cell = example_cell()
    elif which == "python":
        cell = NeuronCell(
            f"{EXAMPLE / 'build.py'}:soma",
            mechanisms=HOC["mechanisms"],
            parameters=parse_parameters(USERHH.split(",")),
        )
    else:
        cell = fit_neuron.make_cell(fit_neuron.EXPERIMENT.config())
    for values in (TRUTH, (0.2, 0.05, 1e-4)):
        ours = simulate_float64(SPACE.cell(JAX_CELL, jnp.asarray(values)), PROTOCOL)
        theirs = cell.model().traces(values, PROTOCOL)
        assert theirs.shape == ours.shape == (1, 10001)
        np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-6)  # measured 3.4e-9 mV


def test_the_efel_loss_equals_the_jax_feature_loss():
    """On NEURON's traces (a target, the truth, a near miss, a cell firing more spikes
    than the JAX form's padding, a silent one), eFEL's loss and the JAX hard loss agree."""
    model = example_cell().model()
    target = model.traces(TRUTH, PROTOCOL)
    floss, _ = suite.make_loss(target, PROTOCOL, "features", suite.DEFAULT_FEATURES, 0.05, 2.0)
    twin = EfelLoss.from_feature_loss(floss)
    points = [TRUTH, (0.13, 0.036, 3e-4), (1.0, 0.004, 1e-5), (0.3, 0.036, 3e-4)]
    losses = []
    for values in points:
        v = model.traces(values, PROTOCOL)
        ours = float(floss(jnp.asarray(v)))
        assert twin(v) == pytest.approx(ours, rel=1e-9, abs=1e-12)
        losses.append(ours)
    assert losses[0] == 0.0 and 0 < losses[1] < losses[2]
    values = [twin.values(model.traces(p, PROTOCOL))["Spikecount"][0] for p in points[2:]]
    assert values[0] == 0 and values[1] > twin.max_spikes  # silent; more than the padding


def _config(**overrides):
    config = fit_neuron.EXPERIMENT.config(
        {**HOC, "evaluations": 66, "samples": 10, "workers": 2, "seed": 1, **overrides}
    )
    return {**config, "resume": False}


def test_a_short_fit_on_two_workers_lowers_the_loss_and_resumes(tmp_path):
    """6 CMA-ES steps of 10 samples and the centre (seed 1: its loss falls from the first
    steps on; seed 0 stays on a plateau for 7); then 3 steps, resumed to 6: the same
    numbers (NEURON and the strategy are deterministic)."""
    whole = tmp_path / "whole"
    whole.mkdir()
    metrics = fit_neuron.run(_config(), RunDir(whole))
    history = [r for r in RunDir(whole).read_history() if "hard_loss" in r]
    assert len(history) == 7 and metrics["workers"] == 2 and metrics["simulator"] == "NEURON"
    assert metrics["best_hard_loss"] < history[0]["hard_loss"]
    assert metrics["samples_failed"] == 0 and metrics["samples_evaluated"] >= 6 * 11
    for name in ("fitted.json", "features.json", "features.md", "sweeps.png", "loss.png"):
        assert (whole / name).exists(), name
    fitted = json.loads((whole / "fitted.json").read_text())["parameters"]
    assert set(fitted) == {"gnabar", "gkbar", "gl"}

    cut = tmp_path / "cut"
    cut.mkdir()
    fit_neuron.run(_config(evaluations=33), RunDir(cut))
    resumed = fit_neuron.run({**_config(), "resume": True}, RunDir(cut))
    keys = ("best_hard_loss", "fitted_gnabar", "fitted_gkbar", "fitted_gl", "evaluations")
    assert [resumed[k] for k in keys] == [metrics[k] for k in keys]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"template": "NoSuchCell"}, "defines no template NoSuchCell"),
        ({"parameters": "gnabar=soma.gnabar_hhx,gkbar=soma.gkbar_userhh,gl=soma.gl_userhh"},
         "soma.gnabar_hhx is not a variable of section"),
        ({"parameters": "gnabar=dend.gnabar_userhh,gkbar=soma.gkbar_userhh,gl=soma.gl_userhh"},
         "the cell has no section dend"),
        ({"parameters": "gnabar=h.no_such_global,gkbar=soma.gkbar_userhh,gl=soma.gl_userhh"},
         "NEURON has no global no_such_global"),
    ],
)  # fmt: skip
def test_a_bad_cell_is_one_line_and_writes_nothing(tmp_path, overrides, message):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message) as error:
        run_experiment("fit-neuron", {**HOC, **overrides}, out=out)
    assert "\n" not in str(error.value)
    assert not out.exists()


def test_a_mod_file_that_does_not_compile_is_one_line(tmp_path):
    broken = tmp_path / "mechanisms"
    broken.mkdir()
    text = (EXAMPLE / "mechanisms" / "userhh.mod").read_text()
    (broken / "broken.mod").write_text(
        text.replace("SUFFIX userhh", "SUFFIX brokenhh").replace("BREAKPOINT {", "BREAKPOINT {{")
    )
    with pytest.raises(ConfigError, match=r"nrnivmodl failed on .*full log") as error:
        compile_mechanisms(broken)
    assert "\n" not in str(error.value)


def test_the_command_exits_2_in_one_line(tmp_path):
    out = tmp_path / "run"
    args = [f"--set={k}={v}" for k, v in {**HOC, "template": "Nope"}.items()]
    result = subprocess.run(
        [sys.executable, "-m", "bbpes", "run", "fit-neuron", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("bbpes: error")]
    assert len(errors) == 1 and "defines no template Nope" in errors[0]
    assert not out.exists()
