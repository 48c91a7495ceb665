"""The documentation site's pages: every docs page is in the mkdocs nav, and the
command-line page names every command and option the parser has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bbpes.cli import _parser

ROOT = Path(__file__).resolve().parents[2]


def test_every_docs_page_is_in_the_nav():
    nav = set(
        re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    )
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == nav


def test_the_cli_page_names_every_command_and_option():
    page = (ROOT / "docs" / "api" / "cli.md").read_text()
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        assert f"`bbpes {name}" in page, name
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    usage = re.search(rf"`bbpes {name}[^`]*`", page).group(0)
                    assert option in usage, (name, option)
