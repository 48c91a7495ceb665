"""`benchmarks/gpu.sh --dry`: the device check's every step at tiny sizes on this CPU,
as it will run on the GPU machine (bbpes from src/ through PYTHONPATH, no evosax, no
ray), so that it cannot fail there for a reason a CPU would have shown."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

# about a minute of CPU (3-4 min wall on a loaded machine): not in `make test`; `.ci/run`
# runs it explicitly, so the dry run still gates every submission.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "device.json": {"backend", "platform", "device_kind", "device_count", "jax_version"},
    "tests.json": {"passed", "failed", "errors", "failures", "completed"},
    "sim.json": {"benchmark", "ours_neuron_steps_per_s"},
    "es.json": {"benchmark", "es_step_seconds", "bptt_step_seconds", "note"},
    "evidence_A.json": {"es", "bptt", "es_over_bptt_seconds_per_iteration"},
    "case_C.json": {"es_step_seconds", "bptt_step_seconds", "bptt_compiled_peak_bytes"},
    "nne_generation.json": {"benchmark", "seconds_per_generation_of_1000_blocked"},
    "gpu_table.json": {
        "es_step_seconds_case_A",
        "bptt_step_seconds_case_A",
        "es_over_bptt_wall_to_90_case_A",
        "bptt_peak_bytes_in_use_case_C",
        "neuron_steps_per_s_es_population",
        "nne_seconds_per_generation",
    },
    "summary.json": {"mode", "budget_seconds", "elapsed_seconds", "steps"},
}
STEPS = ["device", "tests", "sim", "es", "evidence_A_es", "evidence_A_bptt", "case_C"]
STEPS += ["nne_generation", "gather"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, run_script):
    if shutil.which("timeout") is None:
        pytest.fail("gpu.sh needs coreutils' timeout")
    blocked = tmp_path_factory.mktemp("blocked")  # what the GPU machine lacks
    for name in ("evosax", "ray"):
        (blocked / name).mkdir()
        (blocked / name / "__init__.py").write_text(f"raise ImportError('no {name} here')\n")
    out = tmp_path_factory.mktemp("gpu") / "out"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(blocked)}
    run_script(["bash", "benchmarks/gpu.sh", "--dry", str(out)], ROOT, env)
    return out


def test_every_step_succeeds_and_is_in_the_summary(dry_run):
    summary = json.loads((dry_run / "summary.json").read_text())
    assert summary["mode"] == "dry"
    assert [s["step"] for s in summary["steps"]] == STEPS
    failed = {s["step"]: (dry_run / "logs" / f"{s['step']}.log") for s in summary["steps"]}
    failed = {k: v.read_text()[-2000:] for k, v in failed.items() if v.exists()}
    for entry in summary["steps"]:
        assert entry["rc"] == 0, (entry, failed.get(entry["step"]))
        assert entry["seconds"] >= 0 and "time limit" not in entry["note"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_json_file_is_there_with_its_keys(dry_run, name):
    data = json.loads((dry_run / name).read_text())
    assert EXPECTED[name] <= set(data), sorted(data)
    assert "error" not in data


def test_the_numbers_come_from_the_runs(dry_run):
    tests = json.loads((dry_run / "tests.json").read_text())
    assert tests["passed"] >= 1 and tests["failed"] == 0 and tests["completed"]
    es = json.loads((dry_run / "es.json").read_text())
    assert "evosax" in es["note"]  # ran without it, as on the GPU machine
    evidence = json.loads((dry_run / "evidence_A.json").read_text())
    for method in ("es", "bptt"):
        run = evidence[method]
        assert run["completed"] and run["steps_done"] == run["steps_planned"] == 4
        assert [step for step, _ in run["accuracy"]] == [0, 2, 4]
        assert run["seconds_per_iteration"] > 0
    table = json.loads((dry_run / "gpu_table.json").read_text())
    assert table["es_step_seconds_case_A"] == es["es_step_seconds"]
    assert table["bptt_peak_bytes_in_use_case_C"] is None  # a CPU keeps no such count
    assert table["bptt_compiled_peak_bytes_case_C"] > 0
