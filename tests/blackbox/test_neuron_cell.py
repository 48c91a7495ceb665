"""A NEURON cell's description and the `fit-neuron` settings are checked before
anything runs (no NEURON needed): every mistake is a one-line `ConfigError`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bbpes.blackbox import NeuronCell
from bbpes.blackbox._neuron import hoc
from bbpes.blackbox.neuron_cell import BUILTIN, parse_parameters
from bbpes.errors import ConfigError
from bbpes.experiments import fit_neuron
from bbpes.framework.runner import run_experiment

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "neuron_cell"
USERHH = ["gnabar=soma.gnabar_userhh", "gkbar=soma.gkbar_userhh", "gl=soma.gl_userhh"]


@pytest.fixture(autouse=True)
def neuron_installed(monkeypatch):
    """The settings are checked as where NEURON is installed (it need not be here)."""
    monkeypatch.setattr(fit_neuron, "installed", lambda: True)


def test_the_example_cell_and_the_default_are_accepted():
    cell = NeuronCell(
        str(EXAMPLE / "cell.hoc"),
        template="HHSoma",
        mechanisms=str(EXAMPLE / "mechanisms"),
        parameters=parse_parameters(USERHH),
    )
    assert Path(cell.source).is_absolute() and Path(cell.mechanisms).is_absolute()
    assert cell.names == ("gnabar", "gkbar", "gl")
    assert NeuronCell().source == BUILTIN
    config = fit_neuron.EXPERIMENT.config({"parameters": ",".join(USERHH)})
    assert fit_neuron.make_cell(config).parameters[0] == ("gnabar", "soma.gnabar_userhh")
    assert fit_neuron.make_cell(fit_neuron.EXPERIMENT.config()).names == ("gnabar", "gkbar", "gl")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"source": "missing.hoc", "template": "A"}, "hoc file missing.hoc not found"),
        ({"source": str(EXAMPLE / "cell.hoc")}, "name its template"),
        ({"source": str(EXAMPLE / "cell.hoc"), "template": "1x"}, "name its template"),
        ({"source": "cells", "template": ""}, "neither a .hoc file nor MODULE:FUNCTION"),
        ({"source": "missing.py:soma"}, "cell builder file missing.py not found"),
        ({"template": "HHSoma"}, "read only with a .hoc cell"),
        ({"mechanisms": "no/such/dir"}, "mechanisms directory no/such/dir not found"),
        ({"mechanisms": str(EXAMPLE)}, "holds no .mod file"),
        ({"celsius": float("nan")}, "celsius must be finite"),
    ],
)
def test_a_bad_cell_is_refused_in_one_line(fields, message):
    with pytest.raises(ConfigError, match=message) as error:
        NeuronCell(**fields)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "items, message",
    [
        (["gnabar"], "is not NAME=SECTION.VARIABLE"),
        (["gnabar=gnabar_hh"], "is not NAME=SECTION.VARIABLE"),
        (["1a=soma.x"], "is not NAME=SECTION.VARIABLE"),
        (["a=soma.x", "a=soma.y"], "names a more than once"),
    ],
)
def test_a_bad_parameter_map_is_refused(items, message):
    with pytest.raises(ConfigError, match=message):
        parse_parameters(items)
    assert (
        parse_parameters(["a=h.celsius", "b=dend[2].gbar", "c=all.gl_hh"])[1][1] == "dend[2].gbar"
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"method": "bptt"}, "differentiates the simulation"),
        ({"method": "forward_gradient"}, "differentiates the simulation"),
        ({"method": "guided_es"}, "needs a surrogate gradient"),
        ({"problem": "pospischil"}, "unknown problem"),
        ({"parameters": "gnabar=soma.gnabar_hh"}, "problem hh fits gnabar, gkbar, gl"),
        ({"workers": 100}, "workers must be <="),
        ({"address": "no address"}, "is not '', 'auto'"),
        ({"cell": "missing.hoc", "template": "A"}, "not found"),
    ],
)
def test_bad_settings_are_refused_before_a_run(overrides, message):
    with pytest.raises(ConfigError, match=message):
        fit_neuron.EXPERIMENT.config(overrides)


def test_without_neuron_the_run_is_refused_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(fit_neuron, "installed", lambda: False)
    with pytest.raises(
        ConfigError, match=r"needs NEURON, eFEL and Ray: pip install 'bbpes\[neuron\]'"
    ):
        run_experiment("fit-neuron", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.setitem(sys.modules, "neuron", None)  # `import neuron` fails
    with pytest.raises(ConfigError, match="NEURON is not installed"):
        hoc()
