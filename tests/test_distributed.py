"""One run as several processes (`bbpes.distributed`): the environment read the way the
docs say, and two processes on this machine (CPU devices, a coordinator on 127.0.0.1)
that train the evidence network's ES population split over both: the parameters of a
one-process run, files from process 0 only, `--resume`, and a one-line error in bounded
time when the other process is killed."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bbpes import distributed
from bbpes.cli import main
from bbpes.distributed import Cluster, first_host, from_environment
from bbpes.errors import ConfigError

# ---------------------------------------------------------------- the environment


def test_bbpes_variables_describe_the_cluster():
    env = {"BBPES_COORDINATOR": "10.0.0.1:1234", "BBPES_NUM_PROCESSES": "4"}
    cluster = from_environment({**env, "BBPES_PROCESS_ID": "2", "BBPES_HEARTBEAT_TIMEOUT": "7"})
    assert cluster == Cluster("10.0.0.1:1234", 4, 2, "BBPES", heartbeat_timeout=7)
    assert not cluster.leader and not cluster.loopback
    assert from_environment({**env, "BBPES_PROCESS_ID": "0"}).leader
    assert Cluster("127.0.0.1:1", 2, 0, "BBPES").loopback
    assert Cluster("localhost:1", 2, 0, "BBPES").loopback
    assert Cluster("[::1]:1", 2, 0, "BBPES").loopback


def test_slurm_variables_describe_the_cluster():
    slurm = {
        "SLURM_STEP_NODELIST": "gpu[007-009,12],cpu1",
        "SLURM_STEP_NUM_TASKS": "4",
        "SLURM_NTASKS": "8",
        "SLURM_PROCID": "3",
        "SLURM_JOB_ID": "4100",
    }
    assert from_environment(slurm) == Cluster("gpu007:61444", 4, 3, "SLURM")
    assert from_environment({**slurm, "BBPES_COORDINATOR_PORT": "5000"}).coordinator == (
        "gpu007:5000"
    )
    ours = {"BBPES_COORDINATOR": "h:1", "BBPES_NUM_PROCESSES": "2", "BBPES_PROCESS_ID": "1"}
    assert from_environment({**slurm, **ours}).source == "BBPES"  # ours win
    assert from_environment({**slurm, "BBPES_DISTRIBUTED": "0"}) is None
    batch_script = {k: v for k, v in slurm.items() if not k.startswith("SLURM_STEP")}
    assert from_environment(batch_script) is None  # not under srun: one process


def test_first_host_of_a_slurm_node_list():
    assert first_host("node001") == "node001"
    assert first_host("node001,host2") == "node001"
    assert first_host("node[001-0015],host2") == "node001"
    assert first_host("node[007,009-015]") == "node007"
    assert first_host("rack[2-3]-ib") == "rack2-ib"


def test_one_process_is_no_cluster():
    assert from_environment({}) is None
    one = {"BBPES_COORDINATOR": "h:1", "BBPES_NUM_PROCESSES": "1", "BBPES_PROCESS_ID": "0"}
    assert from_environment(one) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BBPES_COORDINATOR": "h:1"},
            "BBPES_COORDINATOR set but not BBPES_NUM_PROCESSES, BBPES_PROCESS_ID: a run of "
            "several processes needs all three",
        ),
        (
            {"BBPES_COORDINATOR": "h", "BBPES_NUM_PROCESSES": "2", "BBPES_PROCESS_ID": "0"},
            "BBPES_COORDINATOR must be host:port, got 'h'",
        ),
        (
            {"BBPES_COORDINATOR": "h:1", "BBPES_NUM_PROCESSES": "two", "BBPES_PROCESS_ID": "0"},
            "BBPES_NUM_PROCESSES must be an integer >= 1, got 'two'",
        ),
        (
            {"BBPES_COORDINATOR": "h:1", "BBPES_NUM_PROCESSES": "2", "BBPES_PROCESS_ID": "2"},
            "process id 2 must be below the process count 2",
        ),
    ],
)
def test_bad_settings_are_one_line_errors(env, message, monkeypatch, capsys):
    with pytest.raises(ConfigError) as error:
        from_environment(env)
    assert str(error.value) == message
    for name in ("BBPES_COORDINATOR", "BBPES_NUM_PROCESSES", "BBPES_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "turn-off", "--quick"]) == 2  # before JAX starts: nothing ran
    assert capsys.readouterr().err.strip() == f"bbpes: error: {message}"


def test_the_stop_message_names_the_dead_process(tmp_path, monkeypatch):
    log = tmp_path / "runtime.log"
    cluster = Cluster("127.0.0.1:9", 3, 0, "BBPES", heartbeat_timeout=5)
    monkeypatch.setattr(distributed, "_state", {"cluster": cluster, "log": log, "hint": ""})
    log.write_text(
        "E1207 coordination_service.cc] ... UNAVAILABLE: The following tasks are unhealthy "
        "(stopped sending heartbeats):\n1\nThe tasks have crashed.\n"
    )
    line = distributed.stop_message()
    assert line == (
        "bbpes: error: process 0 of 3: process 1 stopped (no heartbeat for 5 s); the run "
        f"stopped (runtime log: {log})"
    )
    log.write_text("F1207 client.h:80] ... Failed to send RPC to coordination service.\n")
    assert "lost the coordinator, process 0 at 127.0.0.1:9" in distributed.stop_message()
    log.write_text("absl::Status: DEADLINE_EXCEEDED\nRPC: /CoordinationService/RegisterTask\n")
    assert "did not all join the run at 127.0.0.1:9" in distributed.stop_message()


# ---------------------------------------------------------------- two processes

# A tiny evidence network: each ES step takes a few milliseconds, and with 300 steps the
# run checkpoints at steps 50, 100, ... (train's default), so that it can be killed
# between checkpoints and resumed.
TINY = [
    *("--set", "method=es", "--set", "n_cells=8", "--set", "batch=4", "--set", "samples=4"),
    *("--set", "steps=300", "--set", "n_inputs=3", "--set", "input_dim=4"),
    *("--set", "test_trials=8", "--set", "rate_trials=4", "--set", "pca_trials=4"),
    *("--set", "eval_every=50"),
]
HEARTBEAT = 5  # seconds: how soon a dead process is noticed
LIMIT = 240  # seconds any one command may take before the test fails


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "TMPDIR": str(tmp),  # each process's private run directory and runtime log
        "BBPES_HEARTBEAT_TIMEOUT": str(HEARTBEAT),
        "BBPES_INIT_TIMEOUT": "120",
        **extra,
    }


def _start(hosts: list[Path], argv: list[str], tmp: Path) -> list[subprocess.Popen]:
    """`bbpes run evidence *argv` as process i of len(hosts), in the directory hosts[i]
    (one per host, each with its own disk), over a coordinator on 127.0.0.1."""
    coordinator = f"127.0.0.1:{_free_port()}"
    processes = []
    for i, cwd in enumerate(hosts):
        cwd.mkdir(parents=True, exist_ok=True)
        env = _env(
            tmp,
            BBPES_COORDINATOR=coordinator,
            BBPES_NUM_PROCESSES=str(len(hosts)),
            BBPES_PROCESS_ID=str(i),
            BBPES_CPU_DEVICES="1",  # one CPU device per process: 2 in all
        )
        command = [sys.executable, "-m", "bbpes", "run", "evidence", *argv]
        processes.append(
            subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return processes


def _finish(processes: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each; kills them all if one takes too long."""
    done = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=LIMIT)
            done.append((process.returncode, out, err))
    finally:
        for process in processes:
            process.kill()
    return done


def _leaves(checkpoint: Path) -> list[np.ndarray]:
    """The arrays of a checkpoint (`equinox.tree_serialise_leaves` writes one .npy
    record per leaf), without the wall seconds it also stores (the second to last)."""
    data = checkpoint.read_bytes()
    stream, leaves = io.BytesIO(data), []
    while stream.tell() < len(data):
        leaves.append(np.load(stream))
    return leaves[:-2] + leaves[-1:]


def _losses(run: Path) -> list[tuple[int, float]]:
    lines = (run / "history.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r]


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The run in one process with two CPU devices: the population split the same way."""
    tmp = tmp_path_factory.mktemp("one-process")
    command = [sys.executable, "-m", "bbpes", "run", "evidence", "--quick", "--out", "run"]
    done = subprocess.run(
        [*command, *TINY],
        cwd=tmp,
        env=_env(tmp, BBPES_CPU_DEVICES="2"),
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "run"


@pytest.mark.slow  # about 40 s: run by CI after the default suite (.ci/run)
def test_two_processes_train_as_one(reference, tmp_path):
    """Two processes (two 'hosts': each its own working directory) give the parameters
    of the one-process run, bit for bit, and only process 0 writes its run directory."""
    hosts = [tmp_path / "host0", tmp_path / "host1"]
    (zero, out, err), (one, out1, err1) = _finish(
        _start(hosts, ["--quick", "--out", "run", *TINY], tmp_path)
    )
    assert zero == 0, err[-3000:]
    assert one == 0, err1[-3000:]
    assert "metrics:" in out and "results: run/" in out
    assert "[Gloo]" not in out + err  # the runtime's own messages went to its log
    assert out1 == "" and err1 == ""  # process 1 prints nothing...
    assert not (hosts[1] / "run").exists()  # ...and writes nothing to the run directory
    assert not list(tmp_path.glob("bbpes-*"))  # its private directory and the logs: gone
    run = hosts[0] / "run"
    assert sorted(_snapshot(run)) == sorted(_snapshot(reference))
    for mine, theirs in zip(
        _leaves(run / "checkpoints" / "es-seed0.eqx"),
        _leaves(reference / "checkpoints" / "es-seed0.eqx"),
    ):
        np.testing.assert_array_equal(mine, theirs)
    assert _losses(run) == _losses(reference)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["devices"] == "2 cpu"


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0], ids=["process-1-killed", "coordinator-killed"])
def test_a_killed_process_stops_the_other_and_the_run_resumes(victim, reference, tmp_path):
    """One process killed after the first checkpoint: the other exits with one error line
    and code 3 within the heartbeat timeout (or at once when the coordinator died); the
    same command with --resume (the run directory on a filesystem both hosts see) ends
    with the parameters of the uninterrupted run."""
    hosts = [tmp_path / "host0", tmp_path / "host1"]
    processes = _start(hosts, ["--quick", "--out", "run", *TINY], tmp_path)
    checkpoint = hosts[0] / "run" / "checkpoints" / "es-seed0.eqx"
    deadline = time.monotonic() + LIMIT
    while not checkpoint.exists() and time.monotonic() < deadline:
        assert all(p.poll() is None for p in processes), "a process ended before the kill"
        time.sleep(0.005)
    processes[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    done = _finish(processes)
    waited = time.monotonic() - killed
    code, _, err = done[1 - victim]
    assert code == distributed.LOST_PEER_EXIT, err[-3000:]
    assert waited < HEARTBEAT + 30
    errors = [line for line in err.splitlines() if line.startswith("bbpes: error")]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err[-3000:]
    reason = "process 1 stopped (no heartbeat" if victim else "lost the coordinator, process 0"
    assert errors[0].startswith(f"bbpes: error: process {1 - victim} of 2: {reason}")
    assert "Traceback" not in err and "Check failure" not in err
    steps = _losses(hosts[0] / "run")[-1][0]
    assert 50 <= steps < 300  # it really stopped mid-way
    assert not (hosts[0] / "run" / "metrics.json").exists()

    shutil.copytree(hosts[0] / "run", hosts[1] / "run")  # a filesystem both hosts see
    before = _snapshot(hosts[1] / "run")
    done = _finish(_start(hosts, ["--resume", "--out", "run"], tmp_path))
    assert [code for code, _, _ in done] == [0, 0], done[0][2][-3000:] + done[1][2][-3000:]
    assert _snapshot(hosts[1] / "run") == before  # process 1 only read it
    run = hosts[0] / "run"
    for mine, theirs in zip(
        _leaves(run / "checkpoints" / "es-seed0.eqx"),
        _leaves(reference / "checkpoints" / "es-seed0.eqx"),
    ):
        np.testing.assert_array_equal(mine, theirs)
    assert _losses(run) == _losses(reference)
