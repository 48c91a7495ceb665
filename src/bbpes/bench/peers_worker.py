"""The plumbing the `bbpes bench peers` parts share (`bbpes.bench.peers`): where the
peers live (`.venv-peers`, `benchmarks/peers/`), a peer script held open as a worker
process, and the rounds that time bbpes and the peers in turn, so that a change of the
shared machine's load falls on all alike.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from ..errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
PEERS = ROOT / "benchmarks" / "peers"


def peers_python(config: dict[str, Any]) -> Path:
    """The peers' interpreter (`config["peers_python"]`, by default `.venv-peers`)."""
    path = Path(config.get("peers_python") or ROOT / ".venv-peers" / "bin" / "python")
    if not path.exists():
        raise ConfigError(f"no peers virtualenv at {path}: run `make peers` first")
    return path


LONG_ARGUMENT = 64_000
"""Characters beyond which a worker's argument goes through a file (`@FILE`)."""


class Worker:
    """A peer script held open in `.venv-peers`: it prints one JSON line when ready, then
    one JSON line per command line it is sent (see `benchmarks/peers/sim_worker.py`)."""

    def __init__(self, python: Path, script: str, *args: str, timeout: float = 600.0):
        self.timeout = timeout
        self._err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close)
        self._files = []  # long arguments, passed as @FILE (Linux caps one at 128 KiB)
        passed = []
        for arg in args:
            if len(arg) > LONG_ARGUMENT:
                f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
                f.write(arg)
                f.close()
                self._files.append(Path(f.name))
                arg = "@" + f.name
            passed.append(arg)
        self.process = subprocess.Popen(
            [str(python), str(PEERS / script), *passed],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            cwd=ROOT,
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=self.timeout)
            self._err.seek(0)
            tail = self._err.read().strip().splitlines()[-5:]
            raise RuntimeError(f"peer worker failed: {' | '.join(tail) or 'no output'}")
        return json.loads(line)

    def ask(self, command: str) -> dict[str, Any]:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for path in self._files:
            path.unlink(missing_ok=True)
        for stream in (self.process.stdin, self.process.stdout, self._err):
            with contextlib.suppress(OSError):
                stream.close()


def rounds(calls: dict[str, Callable[[], tuple[float, float]]], repeat: int) -> dict:
    """`repeat` rounds calling each of `calls` in turn (each returns its wall and CPU
    seconds); per call the median wall and CPU seconds and every round's wall seconds."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(repeat, 1)):
        for name, call in calls.items():
            w, c = call()
            wall[name].append(w)
            cpu[name].append(c)
    return {
        name: {
            "seconds": statistics.median(wall[name]),
            "cpu_seconds": statistics.median(cpu[name]),
            "rounds": wall[name],
        }
        for name in calls
    }


def timed_here(fn: Callable[[], Any]) -> Callable[[], tuple[float, float]]:
    def call() -> tuple[float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - t0, time.process_time() - c0

    return call


def timed_peer(worker: Worker, command: str = "time") -> Callable[[], tuple[float, float]]:
    def call() -> tuple[float, float]:
        out = worker.ask(command)
        return out["seconds"], out["cpu_seconds"]

    return call
