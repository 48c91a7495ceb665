"""Every `module.name` that a bbpes module reads from a bbpes module it imported
(`from .. import plotting, signals`; `import bbpes.x as y`) exists: a name moved or
removed by a refactor fails here, not in a figure of a slow run that nobody ran (a
removed `plotting.color` once hid in two experiments' plots)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "bbpes"
MODULES = sorted(p for p in SRC.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.Module, name: str, is_package: bool) -> dict[str, str]:
    """Local name -> the bbpes module it is bound to, for `from X import module`
    statements and `import bbpes.x as y` (only names that are modules)."""
    package = name if is_package else name.rpartition(".")[0]
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("bbpes"):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                try:
                    importlib.import_module(full)
                except ImportError:
                    continue  # a name, not a module
                out[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bbpes") and alias.asname:
                    out[alias.asname] = alias.name
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_attributes_read_from_imported_bbpes_modules_exist(path):
    name = module_name(path)
    tree = ast.parse(path.read_text())
    modules = imported_modules(tree, name, path.name == "__init__.py")
    missing = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and isinstance(node.ctx, ast.Load)
        ):
            try:
                module = importlib.import_module(modules[node.value.id])
            except ImportError:  # an optional dependency (NEURON, Brian2): not here
                continue
            if not hasattr(module, node.attr):
                missing.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    assert not missing, f"{name} reads names its imported modules lack: {missing}"
