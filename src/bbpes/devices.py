"""What the JAX devices are, and how much memory a computation may use on them."""

from __future__ import annotations

import jax
import psutil


def available_memory_bytes(device: jax.Device | None = None) -> float:
    """Bytes free for one computation on `device` (default: the first device): the
    accelerator's `bytes_limit - bytes_in_use` from `memory_stats()` when it reports
    them, the host's available memory otherwise (CPU)."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return float(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return float(psutil.virtual_memory().available)


def describe() -> dict[str, object]:
    """`device_kind`, `device_count` and `backend` of this process, for metrics.json."""
    devices = jax.devices()
    return {
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "backend": jax.default_backend(),
    }
