"""Shared fixtures: a key, the MNIST test files, a script in a fresh process, and a
run of `train` interrupted and resumed. Like diffrax's suite, numerics are checked in float64; code paths
that must work in float32 say so with `jax.enable_x64(False)`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)
# `bbpes run` splits the CPU into one device per core unless told otherwise; the
# in-process runs of the suite keep one device (whichever test starts JAX first), and
# the tests of the split ask for it in a subprocess.
os.environ.setdefault("BBPES_CPU_DEVICES", "1")

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def mnist_dir() -> Path:
    """The real MNIST test set (t10k-*) shipped beside the project, or BBPES_DATA."""
    path = Path(os.environ.get("BBPES_TEST_MNIST", SHARED_MNIST))
    if not (path / "t10k-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST test files not found in {path}; set BBPES_TEST_MNIST")
    return path


@pytest.fixture(scope="session")
def run_script():
    """`run_script(argv, cwd, env, timeout=600)`: run `argv` in a fresh process in `cwd`
    with the environment `env`; fails the test (with the end of its stderr) unless it
    exits 0. Returns the finished process (text `stdout`, `stderr`). Session-scoped, so
    fixtures of any scope can use it."""

    def run(
        argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float = 600
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            list(argv), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    return run


class Killed(Exception):
    """What `cut_and_resumed(kill=True)` raises in the cut run's batch: a killed process."""


@pytest.fixture
def cut_and_resumed(tmp_path: Path):
    """`cut_and_resumed(learner, params, steps, cut, kill=False, **options) -> (full,
    resumed)`: the `TrainResult`s of `steps` steps of `train` (key 1) run through, in
    `tmp_path / "full"`, and of a run in `tmp_path / "cut"` stopped after `cut` steps
    and then resumed from its checkpoints to `steps`; `options` go to `train`
    (`checkpoint_every`, `batch`...). The cut run finishes `cut` steps (a checkpoint
    at its end), or with `kill` dies in the batch of step `cut + 1` (`batch` given),
    past its last checkpoint, as a killed process does."""
    from bbpes.runs import RunDir  # here: after x64 and the device count are set above
    from bbpes.train import train

    def run(learner, params, steps: int, cut: int, kill: bool = False, **options):
        def train_in(path: Path, steps: int, **more):
            return train(
                learner,
                params,
                jax.random.key(1),
                steps=steps,
                run=RunDir(path),
                resume=True,
                progress="off",
                **{**options, **more},
            )

        full = train_in(tmp_path / "full", steps)
        if kill:

            def killing_batch(i):
                if i == cut:
                    raise Killed
                return options["batch"](i)

            with pytest.raises(Killed):
                train_in(tmp_path / "cut", steps, batch=killing_batch)
        else:
            train_in(tmp_path / "cut", cut)
        return full, train_in(tmp_path / "cut", steps)

    return run
