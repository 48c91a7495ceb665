"""What the JAX devices are, and how much memory a computation may use on them.

An accelerator (GPU, TPU) reports its own memory through `jax.Device.memory_stats()`
(`bytes_limit`: what JAX's allocator may use, `bytes_in_use`, `peak_bytes_in_use`); a
CPU device reports none (`None`), and shares the host's memory, read with psutil.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import psutil


def memory_stats(device: Any = None) -> dict[str, int] | None:
    """The allocator statistics of `device` (default: the first device), or None where
    the device keeps none (CPU) or cannot report them."""
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats()
    except (NotImplementedError, RuntimeError):  # a plugin without the statistics
        return None
    return dict(stats) if stats else None


def available_memory_bytes(device: Any = None) -> float:
    """Bytes free for one computation on `device` (default: the first device): the
    accelerator's `bytes_limit - bytes_in_use` from `memory_stats()` when it reports
    them, the host's available memory otherwise (CPU)."""
    stats = memory_stats(device)
    if stats and "bytes_limit" in stats:
        return float(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return float(psutil.virtual_memory().available)


def peak_bytes_in_use(device: Any = None) -> int | None:
    """The most bytes the accelerator's allocator has held since this process started
    (`memory_stats()["peak_bytes_in_use"]`); None on a CPU, which keeps no such count."""
    stats = memory_stats(device)
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def describe(devices: Sequence[Any] | None = None) -> dict[str, object]:
    """What the numbers were computed on, for metrics.json (flat keys):
    `device_kind` and `platform` of the first device, `device_count`, `backend`, and
    `device_memory_bytes` (an accelerator's `bytes_limit`, a CPU's host memory)."""
    devices = list(devices) if devices is not None else jax.devices()
    stats = memory_stats(devices[0])
    memory = stats.get("bytes_limit") if stats else None
    return {
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "platform": devices[0].platform,
        "backend": jax.default_backend(),
        "device_memory_bytes": int(memory or psutil.virtual_memory().total),
    }
