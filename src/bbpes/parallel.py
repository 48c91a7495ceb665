"""Running populations in parallel: the ES population axis over JAX devices.

One GPU, several GPUs or several hosts run the same code: build a one-axis mesh over
the devices and give it to `es(..., mesh=mesh)`. On several hosts, call
`jax.distributed.initialize()` first (see docs/scaling.md); `jax.devices()` then lists
every host's devices.

On one multi-core CPU, XLA's CPU backend runs much of one device's program (the fused
elementwise work of a neuron step) on one thread; splitting the CPU into one device
per core (`split_cpu`, which the `bbpes` command does unless
`BBPES_CPU_DEVICES` says otherwise) lets the population use every core: 1.75x faster
ES iterations for the evidence network on 2 cores (benchmarks/README.md).
"""

from __future__ import annotations

import os
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


def split_cpu(devices: int | None = None) -> int:
    """Ask XLA for `devices` CPU devices (default: `BBPES_CPU_DEVICES`, else one per
    core). Only effective before JAX starts its backend; an `XLA_FLAGS` that already
    sets the count wins. Returns the count asked for (1: leave the CPU whole)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags:
        return int(re.search(_FLAG + r"=(\d+)", flags).group(1))
    if devices is None:
        asked = os.environ.get("BBPES_CPU_DEVICES") or str(os.cpu_count() or 1)
        if not asked.strip().isdigit() or int(asked) < 1:
            raise ValueError(f"BBPES_CPU_DEVICES must be a positive integer, got {asked!r}")
        devices = int(asked)
    if devices > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={devices}".strip()
    return devices
