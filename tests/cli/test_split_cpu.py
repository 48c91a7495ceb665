"""`bbpes run` splits the CPU into one JAX device per core only when JAX will run on
the CPU, judged from the environment and the installed plugins before JAX starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bbpes import parallel
from bbpes.parallel import accelerator_expected, installed_plugins, split_cpu

FLAG = "--xla_force_host_platform_device_count"


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("JAX_PLATFORMS", "JAX_PLATFORM_NAME", "BBPES_CPU_DEVICES", "XLA_FLAGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 4)
    return monkeypatch


@pytest.mark.parametrize(
    "platforms, expected",
    [("cpu", None), ("cuda", "cuda"), ("cpu,tpu", "tpu"), ("CUDA,cpu", "cuda")],
)
def test_jax_platforms_decides(clean_env, platforms, expected):
    clean_env.setenv("JAX_PLATFORMS", platforms)
    assert accelerator_expected() == expected


def test_cpu_is_split_one_device_per_core(clean_env):
    clean_env.setenv("JAX_PLATFORMS", "cpu")
    assert split_cpu() == 4
    assert os.environ["XLA_FLAGS"] == f"{FLAG}=4"


def test_an_accelerator_keeps_the_cpu_whole(clean_env):
    clean_env.setenv("JAX_PLATFORMS", "cuda")
    assert split_cpu() == 1
    assert "XLA_FLAGS" not in os.environ


def test_an_explicit_count_wins_over_the_accelerator(clean_env):
    clean_env.setenv("JAX_PLATFORMS", "cuda")
    clean_env.setenv("BBPES_CPU_DEVICES", "3")
    assert split_cpu() == 3 and os.environ["XLA_FLAGS"] == f"{FLAG}=3"


def test_an_installed_plugin_counts_as_an_accelerator(clean_env, tmp_path):
    # a plugin the way the CUDA build of jax installs one: a module of `jax_plugins`
    (tmp_path / "jax_plugins").mkdir()
    (tmp_path / "jax_plugins" / "xla_fake_gpu.py").write_text(
        "raise ImportError('never imported')\n"
    )
    clean_env.syspath_prepend(str(tmp_path))
    # a namespace package keeps its path once imported: import it afresh, forget it after
    previous = sys.modules.pop("jax_plugins", None)
    try:
        assert "jax_plugins.xla_fake_gpu" in installed_plugins()
        assert accelerator_expected() == installed_plugins()[0]
        assert split_cpu() == 1 and "XLA_FLAGS" not in os.environ
        clean_env.setenv("JAX_PLATFORMS", "cpu")  # the way to split it anyway
        assert split_cpu() == 4
    finally:
        sys.modules.pop("jax_plugins", None)
        if previous is not None:
            sys.modules["jax_plugins"] = previous


def test_the_command_line_split_happens_before_jax_starts():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "BBPES_CPU_DEVICES")}
    env.update(JAX_PLATFORMS="cpu", BBPES_CPU_DEVICES="2")
    code = (
        "from bbpes.cli import _split_cpu; _split_cpu(); import jax; "
        "print(jax.device_count(), jax.default_backend())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["2", "cpu"]
