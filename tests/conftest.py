"""Shared fixtures. Like diffrax's suite, numerics are checked in float64; code paths
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
