"""Fixtures of the learner tests: a run of `train` interrupted and resumed."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from bbpes.runs import RunDir
from bbpes.train import TrainResult, train


@pytest.fixture
def cut_and_resumed(tmp_path: Path):
    """`cut_and_resumed(learner, params, steps, cut, **options) -> (full, resumed)`: the
    `TrainResult`s of `steps` steps of `train` (key 1) run through, and of `cut` steps
    then resumed from the checkpoints to `steps` (each in a run directory of its own
    under `tmp_path`); `options` go to `train` (`checkpoint_every`, `batch`...)."""

    def run(learner, params, steps: int, cut: int, **options) -> tuple[TrainResult, TrainResult]:
        def train_in(path: Path, steps: int) -> TrainResult:
            return train(
                learner,
                params,
                jax.random.key(1),
                steps=steps,
                run=RunDir(path),
                resume=True,
                progress="off",
                **options,
            )

        full = train_in(tmp_path / "full", steps)
        train_in(tmp_path / "cut", cut)
        return full, train_in(tmp_path / "cut", steps)

    return run
