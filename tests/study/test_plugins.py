"""A user's own problem for the signals study, named by reference: what the function may
return, and the one-line errors for everything else."""

import math
import subprocess
import sys

import jax.numpy as jnp
import pytest

from bbpes.errors import ConfigError
from bbpes.signals import LossForms
from bbpes.study import plugins
from bbpes.study.problem import Problem, Regime, Sweep

USER_MODULE = """
import jax.numpy as jnp
from bbpes.signals import LossForms, ES
from bbpes.study.problem import Problem, Regime, Sweep

MINE = ES(name="es_mine", reference="mine")

def _problem():
    loss = lambda w: jnp.sum(w ** 2)
    return Problem(forms=LossForms(loss=loss), init=lambda run: jnp.ones(2), batch=None,
                   validate=lambda w: float(loss(w)), test=lambda w: float(loss(w)),
                   settings={"lr": 0.1, "lr_es": 0.1, "sigma": 0.1, "samples": 4})

def pair(scale):
    return _problem(), ["bptt", "user_signals:MINE"]

def no_args():
    return Regime("bowl", "a bowl", "loss", False, 1e-3, {"es": Sweep("lr_es")}, lambda s: _problem())

def wrong(scale):
    return 3

def fails(scale):
    raise RuntimeError("my simulator is not installed\\nsecond line")

def no_signals(scale):
    return _problem(), []

NOT_A_FUNCTION = 7
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_problems.py").write_text(USER_MODULE)
    (tmp_path / "user_signals.py").write_text(
        "from bbpes.signals import ES\nMINE = ES(name='es_mine', reference='mine')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_problem_and_its_signals_become_a_regime(user_module):
    regime = plugins.load_problem("user_problems:pair", "tiny")
    assert regime.name == "pair" and regime.metric == "metric" and not regime.higher_is_better
    assert regime.target == -math.inf and not regime.reached(0.0)  # no target: ranked by metric
    assert {m: s.knob for m, s in regime.signals.items()} == {
        "bptt": "lr",
        "user_signals:MINE": "lr_es",
    }
    assert float(regime.build("tiny").test(jnp.ones(2))) == 2.0


def test_a_function_of_no_argument_returning_a_regime(user_module):
    regime = plugins.load_problem("user_problems:no_args", "quick")
    assert regime.name == "bowl" and regime.target == 1e-3


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("user_problems:wrong", "gave int: expected a bbpes Regime or"),
        ("user_problems:fails", "RuntimeError: my simulator is not installed$"),
        ("user_problems:no_signals", "names no signal"),
        ("user_problems:missing", "has no 'missing'"),
        ("nomodule_xyz:f", "cannot import 'nomodule_xyz'"),
        ("not a reference", "not a reference of the form"),
    ],
)
def test_bad_problems_are_one_line_errors(user_module, reference, message):
    with pytest.raises(ConfigError, match=message) as caught:
        plugins.load_problem(reference, "tiny")
    assert "\n" not in str(caught.value)


def test_user_signals_join_a_regime_once():
    problem = Problem(
        forms=LossForms(loss=jnp.sum), init=lambda r: jnp.ones(2), batch=None,
        validate=float, test=float, settings={},
    )  # fmt: skip
    regime = Regime("r", "c", "m", False, 0.0, {"es": Sweep("lr_es")}, lambda s: problem)
    assert plugins.with_signals(regime, []) is regime
    both = plugins.with_signals(regime, ["es", "evosax:SNES"])
    assert (
        list(both.signals) == ["es", "evosax:SNES"] and both.signals["evosax:SNES"].knob == "sigma"
    )
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        plugins.with_signals(regime, ["nope"])


def test_the_cli_refuses_bad_problem_and_signal_references_writing_nothing(
    tmp_path, monkeypatch, capsys
):
    from bbpes.cli import main

    monkeypatch.chdir(tmp_path)
    for setting in ("problem=nomodule_xyz:f", "signal=nomodule_xyz:S", "problem=math:pi"):
        out = tmp_path / setting.replace(":", "_").replace("=", "_")
        assert main(["run", "signals", "--set", setting, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert not out.exists()
    # and as a separate process does, from the shell
    done = subprocess.run(
        [sys.executable, "-m", "bbpes", "run", "signals", "--set", "problem=nomodule_xyz:f"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "cannot import 'nomodule_xyz'" in done.stderr


def test_quick_keeps_every_signal_of_your_problem(user_module):
    from bbpes.experiments import study
    from bbpes.study.regimes import regimes

    regime = plugins.load_problem("user_problems:pair", "tiny")
    quick = {"quick": True, "signals": list(study.QUICK_SIGNALS), "signal": []}
    assert study.selected_signals(regime, quick) == ["bptt", "user_signals:MINE"]
    # bbpes's own regimes keep --quick's pick; an explicit filter applies to yours too
    case_b = regimes()["case_b"]
    assert set(study.selected_signals(case_b, quick)) == set(study.QUICK_SIGNALS)
    only = {"quick": False, "signals": ["bptt"], "signal": ["evosax:SNES"]}
    assert study.selected_signals(regime, only) == ["bptt", "evosax:SNES"]
