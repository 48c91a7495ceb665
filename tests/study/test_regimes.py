"""bbpes's own regimes (`bbpes.study.regimes`): one module each, found in the study's
order, none importing an experiment; the evidence regimes' levels without learning."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import numpy as np

from bbpes.study import regimes as package
from bbpes.study.problem import Regime
from bbpes.study.regimes import BUDGETS, regimes
from bbpes.study.regimes._evidence import evidence_references

STUDY_ORDER = [
    "case_a", "case_b", "hard", "long_1s", "long_3s", "spiral", "rober_plain",
    "rober_normalised", "fit_hh", "fit_pospischil", "fit_real",
]  # fmt: skip


def test_every_regime_is_one_module_found_in_the_studys_order():
    table = regimes()
    assert list(table) == STUDY_ORDER  # the stored leaderboards' order
    modules = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name[0] != "_"]
    assert sorted(modules) == sorted(table)  # a module per regime, named after it
    for regime in table.values():
        assert isinstance(regime, Regime) and regime.signals and regime.claim
        assert "es" in regime.signals or "evosax:SNES" in regime.signals
    assert set(BUDGETS) == {"tiny", "quick", "reduced", "paper"}


def test_no_regime_imports_an_experiment():
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                assert "experiments" not in target, f"{path.name} imports {target}"


def test_a_regime_builds_its_problem_at_the_tiny_scale():
    problem = regimes()["spiral"].build("tiny")
    assert problem.settings["samples"] == 8 and problem.batch is not None
    params = problem.init(0)
    assert np.isfinite(problem.validate(params))


def test_evidence_references_read_the_last_inputs_only():
    # tokens 1-3 are the types, label k - 1 is type k: the last input is the label's
    # type in trials 0-2, not in trial 3
    tokens = np.array([[2, 1, 1], [3, 3, 2], [1, 2, 3], [2, 2, 1]])
    labels = np.array([0, 1, 2, 1])
    out = evidence_references(tokens, labels)
    assert out == {"chance": 0.5, "last input": 0.75}  # last 5 and 10: longer than a trial
    many = np.tile(tokens, (1, 4))  # 12 inputs: the last 5 and 10 are defined
    assert set(evidence_references(many, labels)) == {
        "chance",
        "last input",
        "last 5 inputs",
        "last 10 inputs",
    }
