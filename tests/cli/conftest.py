"""Fixtures of the command-line tests: tiny settings of `turn-off` (a run of a few
seconds) and the one-line error check."""

from __future__ import annotations

import pytest

TINY_TURN_OFF = [
    "--set",
    "t_end=200",
    "--set",
    "steps=3",
    "--set",
    "grid_points=21",
    "--set",
    "gradient_points=3",
    "--set",
    "samples=8",
]


@pytest.fixture
def tiny() -> list[str]:
    """`--set` arguments that make `bbpes run turn-off --quick` take a few seconds."""
    return list(TINY_TURN_OFF)


@pytest.fixture
def one_line_error(capsys):
    """`one_line_error()`: stderr so far, checked to be exactly one line."""

    def read() -> str:
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    return read
