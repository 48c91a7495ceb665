"""Running populations in parallel: the ES population axis over JAX devices.

One GPU, several GPUs or several hosts run the same code: build a one-axis mesh over
the devices and give it to `es(..., mesh=mesh)`. On several hosts (or several
processes), start JAX's distributed runtime first: the `bbpes` command does it from the
environment (`bbpes.distributed`; docs/scaling.md, "One run over several hosts");
`jax.devices()` then lists every process's devices.

On one multi-core CPU, XLA's CPU backend runs much of one device's program (the fused
elementwise work of a neuron step) on one thread; splitting the CPU into one device
per core (`split_cpu`, which the `bbpes` command does when no accelerator is
installed, unless `BBPES_CPU_DEVICES` says otherwise) lets the population use every
core: 1.75x faster ES iterations for the evidence network on 2 cores
(benchmarks/README.md).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pkgutil
import re
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

POPULATION = "population"
_FLAG = "--xla_force_host_platform_device_count"


def population_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named "population" over `devices` (all of `jax.devices()` by default)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (POPULATION,))


def population_mesh_for(samples: int) -> Mesh | None:
    """`population_mesh()` when there are several devices and their number divides
    `samples` (a population that does not split evenly stays on one device); else None."""
    n = jax.device_count()
    return population_mesh() if n > 1 and samples % n == 0 else None


def accelerator_expected() -> str | None:
    """The accelerator platform JAX will start on, judged without starting JAX (a
    backend, once started, fixes the CPU device count). None means CPU only.

    - `JAX_PLATFORMS` (or the older `JAX_PLATFORM_NAME`) set: its first platform other
      than `cpu`, if any (`JAX_PLATFORMS=cpu` forces the CPU).
    - Otherwise an installed PJRT plugin, found the way JAX finds them (modules of the
      `jax_plugins` namespace package and the `jax_plugins` entry points: the CUDA,
      ROCm and Metal builds of jax), or `libtpu` (TPU).

    An installed CUDA build on a machine without a GPU still counts as an accelerator
    (JAX then falls back to one CPU device); set `JAX_PLATFORMS=cpu` there to split it.
    """
    platforms = os.environ.get("JAX_PLATFORMS") or os.environ.get("JAX_PLATFORM_NAME")
    if platforms:
        names = [p.strip().lower() for p in platforms.split(",") if p.strip()]
        return next((p for p in names if p != "cpu"), None)
    plugins = installed_plugins()
    if plugins:
        return plugins[0]
    return "tpu" if importlib.util.find_spec("libtpu") is not None else None


def installed_plugins() -> list[str]:
    """Names of the installed JAX PJRT plugin modules (`jax_plugins.xla_cuda12`...),
    found without importing JAX or the plugins."""
    found = set()
    try:
        import jax_plugins  # a namespace package; importing it loads no plugin
    except ImportError:
        pass
    else:
        found |= {m.name for m in pkgutil.iter_modules(jax_plugins.__path__, "jax_plugins.")}
    found |= {ep.value for ep in importlib.metadata.entry_points(group="jax_plugins")}
    return sorted(found)


def split_cpu(devices: int | None = None) -> int:
    """Ask XLA for `devices` CPU devices (default: `BBPES_CPU_DEVICES`, else one per
    core when JAX will run on the CPU, see `accelerator_expected`, and 1 when it will
    run on an accelerator). Only effective before JAX starts its backend; an
    `XLA_FLAGS` that already sets the count wins. Returns the count asked for (1:
    leave the CPU whole)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags:
        return int(re.search(_FLAG + r"=(\d+)", flags).group(1))
    if devices is None:
        asked = os.environ.get("BBPES_CPU_DEVICES")
        if not asked:
            asked = "1" if accelerator_expected() else str(os.cpu_count() or 1)
        if not asked.strip().isdigit() or int(asked) < 1:
            raise ValueError(f"BBPES_CPU_DEVICES must be a positive integer, got {asked!r}")
        devices = int(asked)
    if devices > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={devices}".strip()
    return devices
