"""`bbpes.devices`: an accelerator's own memory statistics when it has them, the host's
otherwise; checked with fake device objects (no GPU here) and on this CPU."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import psutil
import pytest

from bbpes import devices

GIB = 2**30


@dataclass
class FakeDevice:
    """What `bbpes.devices` reads of a `jax.Device`."""

    platform: str
    stats: dict | Exception | None
    device_kind: str = "NVIDIA H200"

    def memory_stats(self):
        if isinstance(self.stats, Exception):
            raise self.stats
        return self.stats


class HostMemory:
    """What `psutil.virtual_memory()` returns, as `bbpes.devices` reads it."""

    available, total = 12 * GIB, 24 * GIB


GPU = FakeDevice(
    "gpu", {"bytes_limit": 100 * GIB, "bytes_in_use": 30 * GIB, "peak_bytes_in_use": 42 * GIB}
)


def test_an_accelerator_reports_its_own_free_memory():
    assert devices.available_memory_bytes(GPU) == 70 * GIB
    assert devices.peak_bytes_in_use(GPU) == 42 * GIB


def test_without_bytes_in_use_the_whole_limit_is_free():
    assert devices.available_memory_bytes(FakeDevice("gpu", {"bytes_limit": 8 * GIB})) == 8 * GIB


@pytest.mark.parametrize(
    "device",
    [
        FakeDevice("cpu", {"bytes_limit": 1, "bytes_in_use": 0}),  # a CPU is never asked
        FakeDevice("gpu", None),
        FakeDevice("gpu", {"bytes_in_use": 5}),  # no limit: nothing to subtract from
        FakeDevice("tpu", NotImplementedError("no statistics")),
    ],
)
def test_otherwise_the_hosts_available_memory(device, monkeypatch):
    monkeypatch.setattr(psutil, "virtual_memory", lambda: HostMemory)
    assert devices.available_memory_bytes(device) == 12 * GIB
    assert devices.peak_bytes_in_use(device) is None
    assert devices.describe([device])["device_memory_bytes"] == 24 * GIB


def test_this_cpu_reads_the_host(monkeypatch):
    assert jax.devices()[0].platform == "cpu"
    monkeypatch.setattr(psutil, "virtual_memory", lambda: HostMemory)
    assert devices.memory_stats() is None
    assert devices.available_memory_bytes() == 12 * GIB
    assert devices.peak_bytes_in_use() is None


def test_describe_this_process_and_an_accelerator(monkeypatch):
    monkeypatch.setattr(psutil, "virtual_memory", lambda: HostMemory)
    here = devices.describe()
    assert here["device_count"] == len(jax.devices())
    assert here["platform"] == here["backend"] == "cpu"
    assert here["device_memory_bytes"] == 24 * GIB  # the host's, not an allocator's
    gpus = devices.describe([GPU, FakeDevice("gpu", {"bytes_limit": 8 * GIB}, "other")])
    assert gpus["device_count"] == 2 and gpus["device_kind"] == "NVIDIA H200"  # the first
    assert gpus["platform"] == "gpu" and gpus["device_memory_bytes"] == 100 * GIB
