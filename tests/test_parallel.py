"""The ES population sharded over devices gives the unsharded gradient. JAX fixes its
device count at start-up, so the check runs in a fresh process with two CPU devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bbpes.estimators import es
from bbpes.parallel import population_mesh, population_mesh_for, split_cpu

SCRIPT = textwrap.dedent(
    """
    import json, jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    from bbpes.estimators import es
    from bbpes.parallel import population_mesh

    def loss(p, data):
        return jnp.sum((p["w"] - data) ** 2) + jnp.sin(p["b"])

    params = {"w": jnp.arange(5.0), "b": jnp.array(0.3)}
    mesh = population_mesh()
    out = {"devices": len(jax.devices())}
    for name, kw in {"plain": {}, "ranks": {"rank_shaping": True},
                     "unmirrored": {"antithetic": False}, "chunked": {"chunk_size": 3}}.items():
        a = jax.jit(es(loss, 0.1, 40, **kw))(params, jax.random.key(0), jnp.ones(5))
        b = jax.jit(es(loss, 0.1, 40, mesh=mesh, **kw))(params, jax.random.key(0), jnp.ones(5))
        out[name] = max(float(jnp.max(jnp.abs(a[1][k] - b[1][k]))) for k in params)
    print(json.dumps(out))
    """
)


def test_sharded_population_matches_unsharded():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.pop("devices") == 2
    for name, difference in out.items():
        assert difference < 1e-12, name


def test_mesh_must_divide_the_population():
    mesh = population_mesh()
    assert mesh.size == 1
    es(lambda p: p, 0.1, 4, mesh=mesh)  # fine
    with pytest.raises(ValueError, match="divides"):
        es(lambda p: p, 0.1, 4, mesh=population_mesh(mesh.devices.tolist() * 3))


def test_population_mesh_only_when_it_helps():
    assert population_mesh_for(4) is None  # one device here: nothing to split


def test_split_cpu_asks_for_one_device_per_core(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("BBPES_CPU_DEVICES", raising=False)
    assert split_cpu() == (os.cpu_count() or 1)
    if split_cpu() > 1:
        assert f"device_count={os.cpu_count()}" in os.environ["XLA_FLAGS"]


def test_split_cpu_respects_the_user(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1 --xla_force_host_platform_device_count=3")
    assert split_cpu(8) == 3
    assert os.environ["XLA_FLAGS"].count("device_count") == 1
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1")
    monkeypatch.setenv("BBPES_CPU_DEVICES", "1")
    assert split_cpu() == 1
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_foo=1"
    monkeypatch.setenv("BBPES_CPU_DEVICES", "4")
    assert split_cpu() == 4
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_force_host_platform_device_count=4"


def test_a_bad_device_count_is_a_one_line_error(monkeypatch, capsys):
    from bbpes.cli import main

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("BBPES_CPU_DEVICES", "two")
    assert main(["run", "turn-off", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "bbpes: error: BBPES_CPU_DEVICES must be a positive integer, got 'two'"
