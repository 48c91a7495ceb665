"""Running populations in parallel: the ES population axis over JAX devices.

One GPU, several GPUs or several hosts run the same code: build a one-axis mesh over
the devices and give it to `es(..., mesh=mesh)`. On several hosts, call
`jax.distributed.initialize()` first (see docs/scaling.md); `jax.devices()` then lists
every host's devices. To try it on one CPU, split it into fake devices before JAX
starts: `XLA_FLAGS=--xla_force_host_platform_device_count=2`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

POPULATION = "population"


def population_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named "population" over `devices` (all of `jax.devices()` by default)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (POPULATION,))
