"""A run killed mid-way (SIGKILL, no chance to clean up) and resumed ends with exactly
the metrics of a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bbpes.cli import main

SETTINGS = [
    "--set",
    "t_end=500",
    "--set",
    "steps=600",
    "--set",
    "methods=es",
    "--set",
    "samples=8",
    "--set",
    "grid_points=5",
    "--set",
    "gradient_points=2",
]


def test_a_killed_run_resumes_to_the_uninterrupted_numbers(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    env = {**os.environ, "BBPES_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bbpes",
            "run",
            "turn-off",
            "--quick",
            "--out",
            str(killed),
            *SETTINGS,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = Path(killed) / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoints.exists() and any(checkpoints.glob("*.eqx")):  # not a .tmp being written
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed mid-way"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "metrics.json").exists()  # it really died mid-way
    steps_done = len((killed / "history.jsonl").read_text().splitlines())
    assert 0 < steps_done < 600
    before = [json.loads(line) for line in (killed / "history.jsonl").read_text().splitlines()]
    kept = [r for r in before if r["step"] <= 50]  # up to the first checkpoint (every 50)
    assert main(["run", "turn-off", "--resume", "--out", str(killed)]) == 0
    after = [json.loads(line) for line in (killed / "history.jsonl").read_text().splitlines()]
    assert after[: len(kept)] == kept  # continued from the checkpoint, not redone
    assert main(["run", "turn-off", "--quick", "--out", str(whole), *SETTINGS]) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (killed, whole))
    for key in ("final_loss_es", "final_i_app_es"):
        assert a[key] == b[key]
    ha, hb = (
        [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()]
        for d in (killed, whole)
    )
    assert [r["i_app"] for r in ha if "i_app" in r] == [r["i_app"] for r in hb if "i_app" in r]
