"""One run as several cooperating processes (hosts): JAX's distributed runtime, started
from the environment by the `bbpes` command (docs/scaling.md, "One run over several
hosts").

Every process runs the same command; the environment says who is who:

| variable | meaning |
| --- | --- |
| `BBPES_COORDINATOR` | `host:port` of process 0, reachable by every process |
| `BBPES_NUM_PROCESSES` | N, the number of processes |
| `BBPES_PROCESS_ID` | this process, 0 .. N-1 |
| `BBPES_HEARTBEAT_TIMEOUT` | seconds without news from a process before it counts as dead (default 60) |
| `BBPES_INIT_TIMEOUT` | seconds the processes wait for each other at start (default 300) |

Under SLURM (`srun`, one task per host or per GPU) nothing needs setting: with
`SLURM_STEP_NODELIST` present and more than one task, the process count and index come
from `SLURM_STEP_NUM_TASKS` (or `SLURM_NTASKS`) and `SLURM_PROCID`, and the coordinator
is the first host of the step's node list on port `BBPES_COORDINATOR_PORT` (default
61440 + job id mod 4096, as JAX picks it). `BBPES_*` variables win over SLURM's;
`BBPES_DISTRIBUTED=0` turns both off.

`initialize` calls `jax.distributed.initialize`, after which `jax.devices()` lists every
process's devices and `bbpes.parallel.population_mesh()` spans them: an ES population
is split over all of them. On the CPU the collectives are Gloo's (JAX's default); a
coordinator on a loopback address (one machine) keeps every server on it.

**A process that dies.** JAX's runtime notices a dead process (no heartbeat for
`heartbeat_timeout` seconds, or the coordinator gone) and stops every other process
with a fatal C++ error and a stack dump. `initialize(..., runtime_log=PATH)` sends what
the C++ runtime prints (fds 1 and 2) to PATH, keeps Python's output on the terminal, and
turns that fatal stop into one line on stderr and exit code `LOST_PEER_EXIT`, within
about `heartbeat_timeout` seconds of the death. A process that hangs without dying is
not detected.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

LOST_PEER_EXIT = 3  # exit code of a process stopped because another one died
DEFAULT_HEARTBEAT_TIMEOUT = 60
DEFAULT_INIT_TIMEOUT = 300


@dataclass(frozen=True)
class Cluster:
    """Where this process stands in a run of several processes."""

    coordinator: str  # host:port of process 0
    processes: int
    process_id: int
    source: str  # "BBPES" or "SLURM": which variables said so
    heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT  # seconds
    init_timeout: int = DEFAULT_INIT_TIMEOUT  # seconds

    @property
    def leader(self) -> bool:
        """Process 0: the one that writes files."""
        return self.process_id == 0

    @property
    def loopback(self) -> bool:
        """Whether the coordinator is on this machine's loopback address."""
        host = self.coordinator.rsplit(":", 1)[0].strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `node[003-005,9],gpu1` -> `node003`."""
    match = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?([^,]*)", nodelist.strip())
    prefix, ranges, suffix = match.groups() if match else ("", None, "")
    first = re.split(r"[,-]", ranges)[0] if ranges else ""
    host = f"{prefix}{first}{suffix}"
    if not host:
        raise ConfigError(f"cannot read the first host of SLURM's node list {nodelist!r}")
    return host


def _int(env: Mapping[str, str], name: str, low: int) -> int:
    text = env[name].strip()
    if not re.fullmatch(r"\d+", text) or int(text) < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {env[name]!r}")
    return int(text)


def from_environment(env: Mapping[str, str] | None = None) -> Cluster | None:
    """The cluster the environment describes (see the module docstring), or None for a
    run of one process. Raises `ConfigError` (one line) for a bad or partial setting."""
    env = os.environ if env is None else env
    if env.get("BBPES_DISTRIBUTED", "").strip() == "0":
        return None
    timeouts = {
        "heartbeat_timeout": _int(env, "BBPES_HEARTBEAT_TIMEOUT", 1)
        if env.get("BBPES_HEARTBEAT_TIMEOUT")
        else DEFAULT_HEARTBEAT_TIMEOUT,
        "init_timeout": _int(env, "BBPES_INIT_TIMEOUT", 1)
        if env.get("BBPES_INIT_TIMEOUT")
        else DEFAULT_INIT_TIMEOUT,
    }
    names = ("BBPES_COORDINATOR", "BBPES_NUM_PROCESSES", "BBPES_PROCESS_ID")
    given = [name for name in names if env.get(name)]
    if given:
        if len(given) < len(names):
            missing = ", ".join(n for n in names if n not in given)
            raise ConfigError(
                f"{', '.join(given)} set but not {missing}: a run of several processes "
                "needs all three"
            )
        coordinator = env["BBPES_COORDINATOR"].strip()
        if not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}", coordinator):
            raise ConfigError(f"BBPES_COORDINATOR must be host:port, got {coordinator!r}")
        processes = _int(env, "BBPES_NUM_PROCESSES", 1)
        process_id = _int(env, "BBPES_PROCESS_ID", 0)
        source = "BBPES"
    elif env.get("SLURM_STEP_NODELIST") and env.get("SLURM_PROCID"):
        tasks = "SLURM_STEP_NUM_TASKS" if env.get("SLURM_STEP_NUM_TASKS") else "SLURM_NTASKS"
        if not env.get(tasks):
            return None
        processes = _int(env, tasks, 1)
        process_id = _int(env, "SLURM_PROCID", 0)
        if env.get("BBPES_COORDINATOR_PORT"):
            port = _int(env, "BBPES_COORDINATOR_PORT", 1)
        else:
            port = 61440 + int(env.get("SLURM_JOB_ID", "0") or 0) % 4096
        coordinator = f"{first_host(env['SLURM_STEP_NODELIST'])}:{port}"
        source = "SLURM"
    else:
        return None
    if processes < 2:
        return None
    if process_id >= processes:
        raise ConfigError(f"process id {process_id} must be below the process count {processes}")
    return Cluster(coordinator, processes, process_id, source, **timeouts)


# What `initialize` set up; read by the abort handler, which runs without arguments.
_state: dict = {}


def initialize(cluster: Cluster, *, runtime_log: str | os.PathLike | None = None) -> None:
    """Start JAX's distributed runtime as `cluster` says, before anything runs on JAX.

    **Arguments:**

    - `cluster`: from `from_environment`.
    - `runtime_log`: a file for what the C++ runtime and Gloo print (fds 1 and 2;
      Python's `sys.stdout` and `sys.stderr` stay where they were); a fatal stop of the
      runtime (a peer died) is then reported as one line on stderr (`stop_message`) with
      exit code `LOST_PEER_EXIT`, and the file is deleted at a normal exit. None keeps
      JAX's own behaviour (a stack dump and SIGABRT).

    A coordinator on a loopback address binds the coordination service and the CPU
    collectives to it, so that a run on one machine opens no port to the network.
    """
    import jax

    _state.update(cluster=cluster, log=runtime_log, hint="")
    if runtime_log is not None:
        _split_output(Path(runtime_log))
        _report_fatal_stops()  # before joining: a run that never assembles stops the same way
    jax.distributed.initialize(
        coordinator_address=cluster.coordinator,
        num_processes=cluster.processes,
        process_id=cluster.process_id,
        cluster_detection_method="deactivate",  # the environment was read above
        initialization_timeout=cluster.init_timeout,
        heartbeat_timeout_seconds=cluster.heartbeat_timeout,
        shutdown_timeout_seconds=max(cluster.heartbeat_timeout, 30),
        # None: JAX's default, every interface (JAX_COORDINATOR_BIND_ADDRESS overrides)
        coordinator_bind_address=cluster.coordinator if cluster.loopback else None,
    )
    if cluster.loopback:
        _gloo_on(cluster.coordinator.rsplit(":", 1)[0].strip("[]"))
    if runtime_log is not None:
        atexit.register(_tidy, Path(runtime_log))


def _tidy(log: Path) -> None:
    """At exit: leave the runtime (its shutdown barrier waits for the other processes;
    a peer lost there is still reported with the log), then delete the log."""
    import jax

    jax.distributed.shutdown()
    log.unlink(missing_ok=True)


def _gloo_on(host: str) -> None:
    """Bind the CPU collectives (Gloo) to `host` instead of the address of this
    machine's hostname. Uses JAX's CPU client factory with an explicit collectives
    object; where that is not available JAX's default stays (Gloo then binds to the
    hostname's address)."""
    import jax

    if jax.config.jax_cpu_collectives_implementation != "gloo":
        return
    try:
        from jax._src import distributed as jax_distributed
        from jax._src import xla_bridge
        from jax._src.lib import _jax

        client = jax_distributed.global_state.client

        def cpu_client():
            collectives = _jax.make_gloo_tcp_collectives(distributed_client=client, hostname=host)
            return xla_bridge.make_cpu_client(collectives=collectives)

        xla_bridge.register_backend_factory("cpu", cpu_client, priority=0, fail_quietly=False)
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another JAX
        pass


def _split_output(path: Path) -> None:
    """fds 1 and 2 (what the C++ runtime and Gloo print) to `path`; Python's sys.stdout
    and sys.stderr keep the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        stream.flush()
        fd = stream.fileno()
        terminal = os.dup(fd)
        os.dup2(log, fd)
        encoding, errors = stream.encoding, stream.errors
        setattr(sys, name, os.fdopen(terminal, "w", buffering=1, encoding=encoding, errors=errors))
        _state[name] = terminal
    os.close(log)


def set_resume_hint(hint: str) -> None:
    """Text added to the one-line report of a lost peer (how to continue the run)."""
    _state["hint"] = hint


def stop_message() -> str:
    """The one line a process prints when the runtime stopped it: who, and why (read
    from the runtime's log)."""
    cluster: Cluster = _state["cluster"]
    text = ""
    with contextlib.suppress(OSError, KeyError, TypeError):
        text = Path(_state["log"]).read_text(errors="replace")[-20000:]
    dead = set(re.findall(r"Task (\d+) heartbeat timeout", text))
    for listed in re.findall(r"stopped sending heartbeats\):\s*([\d,\s]+?)\n\D", text):
        dead |= set(re.findall(r"\d+", listed))
    dead = sorted(dead, key=int)
    if dead:
        who = ("process " if len(dead) == 1 else "processes ") + ", ".join(dead)
        reason = f"{who} stopped (no heartbeat for {cluster.heartbeat_timeout} s)"
    elif "RegisterTask" in text:
        reason = (
            f"the {cluster.processes} processes did not all join the run at "
            f"{cluster.coordinator} within {cluster.init_timeout} s (start every one with the "
            "same coordinator and process count, and a process id of its own)"
        )
    elif "Shutdown barrier" in text:
        reason = "another process did not reach the end of the run"
    elif "Failed to send RPC to coordination service" in text or "leader task" in text:
        reason = f"lost the coordinator, process 0 at {cluster.coordinator}"
    elif "unhealthy" in text:
        reason = "another process stopped"
    else:
        reason = "a fatal error of the runtime"
    where = f" (runtime log: {_state['log']})" if _state.get("log") else ""
    return (
        f"bbpes: error: process {cluster.process_id} of {cluster.processes}: {reason}; "
        f"the run stopped{_state.get('hint', '')}{where}"
    )


def _report_fatal_stops() -> None:
    """Turn the runtime's fatal stop (abort() from a C++ thread, after its log lines went
    to the runtime log) into `stop_message()` on the terminal and exit code
    `LOST_PEER_EXIT`. A Python `signal` handler would never run: abort() kills the
    process as soon as a handler returns, so the handler is a C callback that does not
    return (it ends the process with `os._exit`)."""
    if sys.platform == "win32":  # pragma: no cover - no libc signal() to call
        return

    @ctypes.CFUNCTYPE(None, ctypes.c_int)
    def on_abort(signum: int) -> None:
        try:
            line = stop_message() + "\n"
            os.write(_state.get("stderr", 2), line.encode(errors="replace"))
        finally:
            os._exit(LOST_PEER_EXIT)

    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.argtypes = [ctypes.c_int, type(on_abort)]
    libc.signal.restype = ctypes.c_void_p
    libc.signal(signal.SIGABRT, on_abort)
    _state["on_abort"] = on_abort  # the callback must outlive this function


def await_verdict(error: BaseException) -> None:
    """After `error` in a run of several processes: if it is a JAX runtime error (a
    collective that failed, as when a peer died), wait for the runtime to name the dead
    peer (it then ends this process with `stop_message`, see `initialize`). Returns
    at once for other errors, and after `heartbeat_timeout` + 10 s if the runtime says
    nothing, so that the caller reports `error` itself."""
    import jax

    cluster = _state.get("cluster")
    if cluster is None or _state.get("log") is None:
        return
    if isinstance(error, jax.errors.JaxRuntimeError):
        time.sleep(cluster.heartbeat_timeout + 10)
