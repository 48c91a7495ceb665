"""The layers of docs/architecture.md hold in the code: every import between bbpes
modules (function-level ones included) goes from a layer to itself or to a layer the
table lets it import, every module is in a layer, and the table has no cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "bbpes"
DOC = ROOT / "docs" / "architecture.md"


def layer_table() -> tuple[dict[str, str], dict[str, set[str]]]:
    """From the "Layers" table: module (first path component) -> layer, and layer ->
    the layers it may import."""
    section = DOC.read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]
    layer_of, allowed = {}, {}
    for row in rows:
        layer, modules, imports = (cell.strip() for cell in row.strip("|").split("|"))
        for module in modules.split(","):
            layer_of[module.strip().replace("\\_", "_")] = layer
        allowed[layer] = {name.strip() for name in imports.split(",")}
    return layer_of, allowed


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """`(line, bbpes module)` of every import in the module at `path` (its source, or
    `text`), relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if text is None else text)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("bbpes")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "bbpes":  # `from bbpes import x` or `from .. import x`: x is the module
                found += [(node.lineno, f"bbpes.{a.name}") for a in node.names]
            elif target.startswith("bbpes."):
                found.append((node.lineno, target))
    return found


def component(module: str) -> str:
    """The first path component under bbpes ("bbpes" for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "bbpes"


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer():
    layer_of, allowed = layer_table()
    missing = sorted({component(module_name(p)) for p in MODULES} - set(layer_of))
    assert not missing, f"add {missing} to the Layers table of docs/architecture.md"
    for layer, names in allowed.items():
        assert names <= set(allowed), f"{layer} may import unknown layers {names - set(allowed)}"


def test_the_table_has_no_cycle():
    _, allowed = layer_table()
    state: dict[str, str] = {}

    def visit(layer, path):
        if state.get(layer) == "done":
            return
        assert state.get(layer) != "open", f"cycle: {' -> '.join([*path, layer])}"
        state[layer] = "open"
        for below in allowed[layer] - {layer}:
            visit(below, [*path, layer])
        state[layer] = "done"

    for layer in allowed:
        visit(layer, [])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_follow_the_layers(path):
    layer_of, allowed = layer_table()
    mine = layer_of[component(module_name(path))]
    wrong = [
        f"line {line}: {target} ({layer_of.get(component(target), '?')})"
        for line, target in imports(path)
        if layer_of.get(component(target)) not in allowed[mine] | {mine}
    ]
    assert not wrong, f"{module_name(path)} (layer {mine}) imports upward: {wrong}"


def test_the_parser_finds_every_kind_of_import():
    """Relative, absolute and function-level imports, resolved to bbpes modules."""
    text = (
        "from ..experiments import evidence\nimport bbpes.train\n"
        "def f():\n    from .. import signals\n    from .evidence import EvidenceTask\n"
    )
    found = [t for _, t in imports(PACKAGE / "tasks" / "x.py", text)]
    assert found == ["bbpes.experiments", "bbpes.train", "bbpes.signals", "bbpes.tasks.evidence"]


def test_no_lower_layer_names_an_experiment_even_in_text():
    """No module below experiments refers to `bbpes.experiments` by a dotted import
    string either (importlib.import_module), which the AST walk would not see."""
    layer_of, allowed = layer_table()
    pattern = re.compile(r"import_module\(\s*['\"]bbpes\.experiments")
    for path in MODULES:
        mine = layer_of[component(module_name(path))]
        if "experiments" not in allowed[mine] and mine != "experiments":
            assert not pattern.search(path.read_text()), module_name(path)


EXPERIMENTS = PACKAGE / "experiments"


def defines_experiment(path: Path) -> bool:
    """Whether the module at `path` assigns `EXPERIMENT` at its top level."""
    tree = ast.parse(path.read_text())
    targets = [
        t.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    ]
    return "EXPERIMENT" in targets


def test_experiments_holds_experiments_and_their_figures_only():
    """A module of `bbpes.experiments` is an experiment (it defines `EXPERIMENT`) or the
    figures and reports of one (its name ends in `_plots` or `_report`): library code
    (task builders, regimes, shared settings, the framework) lives in its layer."""
    other = [
        p.name
        for p in EXPERIMENTS.glob("*.py")
        if p.name != "__init__.py"
        and not defines_experiment(p)
        and not p.stem.endswith(("_plots", "_report"))
    ]
    assert not other, f"not experiments, nor their figures: {other}"


def test_experiments_do_not_import_each_other():
    """No module of `bbpes.experiments` imports an experiment module (one that defines
    `EXPERIMENT`): what two experiments share is library code, or a figure module. (A
    benchmark, a layer above, may run an experiment's declared settings and checks:
    `bbpes bench memory`.)"""
    experiment_modules = {module_name(p) for p in EXPERIMENTS.glob("*.py") if defines_experiment(p)}
    wrong = []
    for path in sorted(EXPERIMENTS.glob("*.py")):
        for line, target in imports(path):
            named = {target}
            if target == "bbpes.experiments":  # `from . import fit`: the names imported
                tree = ast.parse(path.read_text())
                named = {
                    f"bbpes.experiments.{a.name}"
                    for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.lineno == line
                    for a in node.names
                }
            hit = named & experiment_modules - {module_name(path)}
            wrong += [f"{module_name(path)} line {line}: {t}" for t in hit]
    assert not wrong, f"experiment modules imported: {wrong}"
