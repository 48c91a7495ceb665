#!/usr/bin/env bash
# The device check of issue 18: bbpes's paper workloads on one GPU, in at most 9 minutes.
#
#   bash benchmarks/gpu.sh [--dry] [--wheels DIR] [--budget SECONDS] [--only A,B] OUT
#
# Run from the repository root. On the GPU machine it needs jax with CUDA, equinox,
# diffrax, optax, scipy, matplotlib, rich and psutil; not evosax, ray, pytest or the
# internet (bbpes is imported from src/ through PYTHONPATH, not installed). --wheels DIR
# first installs the wheels in DIR with `pip install --no-index` (evosax, pytest...).
# --dry runs the same steps at tiny sizes on the CPU (tests/benchmarks/test_gpu_script.py).
# --only runs the named steps alone (a rerun): device, tests, sim, es, evidence_A_es,
# evidence_A_bptt, case_C, nne_generation.
#
# Every step runs under `timeout` with its own budget (cut to what is left of the total,
# --budget, 540 s by default) and writes its JSON into OUT; a step that fails or runs out
# of time is recorded in OUT/summary.json (step, rc, seconds) and the next one starts.
# OUT/gpu_table.json gathers the table of the issue; OUT/logs/ holds each step's output.
#
#   device.json          backend, device kind and count, memory, jax version (nvidia-smi)
#   tests.json           the estimator and model tests on the device: passed, failed, names
#   sim.json             `bbpes bench sim`: neuron-steps/s of the ES population (paper scale)
#   es.json              `bbpes bench es`: ES and BPTT step seconds (evosax if installed)
#   evidence_A.json      case A, one seed: ES 300 and BPTT 200 iterations (trimmed to the
#                        budget from es.json's step times), accuracy every 20, s/iteration
#   case_C.json          case C (1 s trials): ES and BPTT step seconds, BPTT peak memory
#   nne_generation.json  `bbpes bench nne-generation` at paper sizes
#   gpu_table.json       the numbers of the issue's table, from the files above
#   summary.json         each step: rc, seconds, its time limit, a note
set -u

DRY=0
WHEELS=""
BUDGET=540
ONLY=""
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry) DRY=1 ;;
        --wheels) WHEELS="$2"; shift ;;
        --budget) BUDGET="$2"; shift ;;
        --only) ONLY=",$2,"; shift ;;
        -*) echo "gpu.sh: unknown option $1" >&2; exit 2 ;;
        *) OUT="$1" ;;
    esac
    shift
done
if [ -z "$OUT" ]; then
    echo "usage: bash benchmarks/gpu.sh [--dry] [--wheels DIR] [--budget SECONDS] [--only A,B] OUT" >&2
    exit 2
fi
if [ ! -f src/bbpes/__init__.py ]; then
    echo "gpu.sh: run it from the repository root" >&2
    exit 2
fi

PY="${PYTHON:-$(command -v python || command -v python3)}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ "$DRY" = 1 ]; then
    export JAX_PLATFORMS=cpu BBPES_CPU_DEVICES=1
fi
mkdir -p "$OUT/logs" "$OUT/runs"
START=$(date +%s)
STEPS_JSON=""

elapsed() { echo $(( $(date +%s) - START )); }

record() { # NAME RC SECONDS LIMIT NOTE
    local entry
    entry=$(printf '{"step": "%s", "rc": %s, "seconds": %s, "limit_seconds": %s, "note": "%s"}' \
        "$1" "$2" "$3" "$4" "$5")
    STEPS_JSON="${STEPS_JSON:+$STEPS_JSON, }$entry"
    printf '{"mode": "%s", "budget_seconds": %s, "elapsed_seconds": %s, "steps": [%s]}\n' \
        "$([ "$DRY" = 1 ] && echo dry || echo device)" "$BUDGET" "$(elapsed)" "$STEPS_JSON" \
        > "$OUT/summary.json"
    echo "gpu.sh: $1 rc=$2 ${3}s (limit ${4}s) $5" >&2
}

wanted() { # NAME: is this step to run (--only)?
    [ -z "$ONLY" ] || [ "$1" = device ] || [ "$1" = wheels ] || [ "${ONLY#*,"$1",}" != "$ONLY" ]
}

step() { # NAME BUDGET COMMAND...: run COMMAND under timeout, log to OUT/logs/NAME.log
    local name="$1" budget="$2" limit t0 rc note=""
    shift 2
    if ! wanted "$name"; then
        record "$name" -1 0 0 "not run: not in --only"
        return
    fi
    limit=$(( BUDGET - $(elapsed) - 5 )) # 5 s left for the last (JAX-free) step
    [ "$limit" -gt "$budget" ] && limit="$budget"
    if [ "$limit" -lt 5 ]; then
        record "$name" -1 0 "$limit" "not run: the time budget is spent"
        return
    fi
    t0=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
    rc=$?
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && note="stopped at its time limit"
    record "$name" "$rc" $(( $(date +%s) - t0 )) "$limit" "$note"
}

if [ -n "$WHEELS" ]; then
    step wheels 120 "$PY" -m pip install --no-index --find-links "$WHEELS" "$WHEELS"/*.whl
fi

# --- device: what JAX sees; on the device run, stop here if it is not an accelerator ----
step device 60 "$PY" - "$OUT/device.json" <<'EOF'
import json, subprocess, sys
import jax
from bbpes.devices import describe
info = {**describe(), "jax_version": jax.__version__, "devices": [str(d) for d in jax.devices()]}
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
except (OSError, subprocess.TimeoutExpired) as error:
    info["nvidia_smi"] = f"not available: {error}"
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info))
EOF
if [ "$DRY" = 0 ] && ! grep -q '"platform": "gpu"' "$OUT/device.json" 2>/dev/null; then
    record stop 1 0 0 "JAX sees no GPU: the paper-scale steps would take hours on a CPU"
    SKIP_ALL=1
else
    SKIP_ALL=0
fi

if [ "$SKIP_ALL" = 0 ]; then
    # --- tests: the estimator and model tests, as far as they get in the budget ---------
    if "$PY" -c "import pytest" 2>/dev/null; then
        if [ "$DRY" = 1 ]; then
            TESTS=(tests/models/test_sparse_mlp.py::test_cross_entropy)
        else
            TESTS=(tests/models/test_sparse_mlp.py tests/models/test_bnn.py
                tests/estimators/test_es.py tests/estimators/test_backprop_and_adjoints.py
                tests/estimators/test_low_rank_es.py tests/estimators/test_truncated_scan.py
                tests/estimators/test_forward_gradient.py tests/models/test_neural_ode.py)
        fi
        step tests 75 "$PY" -m pytest -v -p no:cacheprovider "${TESTS[@]}"
    elif wanted tests; then
        echo "pytest is not installed: no tests were run" > "$OUT/logs/tests.log"
        record tests 0 0 0 "skipped: pytest is not installed"
    fi

    # --- bench sim and bench es at paper scale (tiny when dry) --------------------------
    if [ "$DRY" = 1 ]; then
        SIZES=(--set n_cells=8 --set batch=2 --set samples=4 --set n_inputs=5 --set hold=2
            --set repeat=1)
    else
        SIZES=()
    fi
    step sim 60 "$PY" -m bbpes bench sim --out "$OUT/sim.json" "${SIZES[@]}"
    step es 60 "$PY" -m bbpes bench es --out "$OUT/es.json" "${SIZES[@]}"

    # --- evidence case A, one seed: iterations trimmed to the budget ---------------------
    if [ "$DRY" = 1 ]; then
        EV=(--set n_cells=8 --set batch=4 --set samples=4 --set n_inputs=5 --set hold=2
            --set test_trials=16 --set pca_trials=8 --set rate_trials=8 --set eval_every=2)
        ES_STEPS=4
        BPTT_STEPS=4
        ES_BUDGET=60
        BPTT_BUDGET=60
    else
        EV=(--set eval_every=20 --set es_chunk=0)
        ES_BUDGET=150
        BPTT_BUDGET=100
        # 60 s for starting, compiling and the memory prediction; evaluations of the 1,000
        # test trials every 20 iterations cost about 1.1x (ES) and 1.3x (BPTT) per step.
        read -r ES_STEPS BPTT_STEPS < <("$PY" - "$OUT/es.json" "$ES_BUDGET" "$BPTT_BUDGET" <<'EOF'
import json, sys
try:
    es = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    es = {}
def steps(wanted, seconds, budget, factor):
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return wanted
    return max(10, min(wanted, int((float(budget) - 60) / (factor * seconds))))
print(steps(300, es.get("es_step_seconds"), sys.argv[2], 1.1),
      steps(200, es.get("bptt_step_seconds"), sys.argv[3], 1.3))
EOF
        )
    fi
    echo "{\"es_steps\": ${ES_STEPS:-300}, \"bptt_steps\": ${BPTT_STEPS:-200}}" > "$OUT/runs/plan.json"
    step evidence_A_es "$ES_BUDGET" "$PY" -m bbpes run evidence --out "$OUT/runs/evidence_A_es" \
        --set case=A --set method=es --set seeds=1 --set steps="${ES_STEPS:-300}" "${EV[@]}"
    step evidence_A_bptt "$BPTT_BUDGET" "$PY" -m bbpes run evidence \
        --out "$OUT/runs/evidence_A_bptt" --set case=A --set method=bptt --set seeds=1 \
        --set steps="${BPTT_STEPS:-200}" "${EV[@]}"

    # --- case C: step times of ES and BPTT, BPTT's peak device memory -------------------
    if [ "$DRY" = 1 ]; then
        CASE_C='{"n_cells": 8, "batch": 2, "samples": 4, "n_inputs": 5, "hold": 4.0,
            "dt": 0.1, "seed": 0, "repeat": 1, "es_chunk": 0}'
    else
        CASE_C='{"n_cells": 128, "batch": 64, "samples": 100, "n_inputs": 50, "hold": 20.0,
            "dt": 0.1, "seed": 0, "repeat": 2, "es_chunk": 0}'
    fi
    step case_C 60 "$PY" -m bbpes.bench.devices "$CASE_C" "$OUT/case_C.json"

    # --- one NNE generation at paper sizes ----------------------------------------------
    if [ "$DRY" = 1 ]; then
        NNE=(--set hidden=20 --set images=20 --set genes=100 --set chunk=5 --set image_block=10
            --set hidden_block=4 --set repeats=1 --set matmul_size=64)
    else
        NNE=()
    fi
    step nne_generation 45 "$PY" -m bbpes bench nne-generation --out "$OUT/nne_generation.json" \
        "${NNE[@]}"
fi

# --- gather: a JSON for every step (an error note where it failed), and the table -------
t0=$(date +%s)
"$PY" - "$OUT" <<'EOF' > "$OUT/logs/gather.log" 2>&1
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
summary = json.loads((out / "summary.json").read_text())
status = {s["step"]: s for s in summary["steps"]}

def failed(step, **extra):
    s = status.get(step, {"rc": None, "note": "not run"})
    log = out / "logs" / f"{step}.log"
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    return {"error": f"step {step}: rc {s['rc']} {s['note']}".strip(), "log_tail": tail, **extra}

def load(name, step):
    path = out / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        data = failed(step)
        path.write_text(json.dumps(data, indent=2))
        return data

def tests():
    import re
    log = out / "logs" / "tests.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    results = re.findall(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", text, re.M)
    count = lambda *kinds: sum(1 for _, r in results if r in kinds)
    s = status.get("tests", {})
    return {
        "passed": count("PASSED", "XFAIL"), "failed": count("FAILED", "XPASS"),
        "errors": count("ERROR"), "skipped": count("SKIPPED"),
        "failures": [name for name, r in results if r in ("FAILED", "XPASS", "ERROR")],
        "completed": s.get("rc") in (0, 1) and "time limit" not in s.get("note", ""),
        "rc": s.get("rc"), "note": s.get("note", "not run"),
    }

def evidence_run(method, planned):
    run = out / "runs" / f"evidence_A_{method}"
    history = []
    if (run / "history.jsonl").exists():
        for line in (run / "history.jsonl").read_text().splitlines():
            try:
                history.append(json.loads(line))
            except ValueError:
                pass  # a line cut by the time limit
    timed = [r for r in history if isinstance(r.get("seconds"), (int, float)) and r.get("step")]
    accuracy = [[r["step"], r["accuracy"]] for r in history if r.get("accuracy") is not None]
    first90 = next((r for r in history if (r.get("accuracy") or 0) >= 0.9), None)
    per_iteration = None
    if len(timed) >= 2:  # after the first step, which includes compilation
        per_iteration = (timed[-1]["seconds"] - timed[0]["seconds"]) / (
            timed[-1]["step"] - timed[0]["step"])
    if not history:
        return failed(f"evidence_A_{method}", steps_planned=planned)
    return {
        "steps_planned": planned, "steps_done": timed[-1]["step"] if timed else 0,
        "completed": (run / "metrics.json").exists(),
        "seconds_per_iteration": per_iteration,
        "first_step_seconds": timed[0]["seconds"] if timed else None,
        "accuracy": accuracy, "final_accuracy": accuracy[-1][1] if accuracy else None,
        "iterations_to_90": first90["step"] if first90 else None,
        "seconds_to_90": first90.get("seconds") if first90 else None,
    }

def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None

load("device", "device")
(out / "tests.json").write_text(json.dumps(tests(), indent=2))
sim, es = load("sim", "sim"), load("es", "es")
plan = json.loads((out / "runs" / "plan.json").read_text()) if (out / "runs" / "plan.json").exists() else {}
evidence = {"es": evidence_run("es", plan.get("es_steps")),
            "bptt": evidence_run("bptt", plan.get("bptt_steps"))}
evidence["es_over_bptt_seconds_per_iteration"] = ratio(
    evidence["es"].get("seconds_per_iteration"), evidence["bptt"].get("seconds_per_iteration"))
evidence["es_over_bptt_seconds_to_90"] = ratio(
    evidence["es"].get("seconds_to_90"), evidence["bptt"].get("seconds_to_90"))
(out / "evidence_A.json").write_text(json.dumps(evidence, indent=2))
case_c, nne = load("case_C", "case_C"), load("nne_generation", "nne_generation")
table = {
    "es_step_seconds_case_A": es.get("es_step_seconds"),
    "bptt_step_seconds_case_A": es.get("bptt_step_seconds"),
    "es_over_bptt_step_case_A": ratio(es.get("es_step_seconds"), es.get("bptt_step_seconds")),
    "es_seconds_per_iteration_evidence_A": evidence["es"].get("seconds_per_iteration"),
    "bptt_seconds_per_iteration_evidence_A": evidence["bptt"].get("seconds_per_iteration"),
    "es_over_bptt_wall_to_90_case_A": evidence["es_over_bptt_seconds_to_90"],
    "es_step_seconds_case_C": case_c.get("es_step_seconds"),
    "bptt_step_seconds_case_C": case_c.get("bptt_step_seconds"),
    "bptt_peak_bytes_in_use_case_C": case_c.get("bptt_peak_bytes_in_use"),
    "bptt_compiled_peak_bytes_case_C": case_c.get("bptt_compiled_peak_bytes"),
    "neuron_steps_per_s_es_population": sim.get("ours_neuron_steps_per_s"),
    "nne_seconds_per_generation": nne.get("seconds_per_generation_of_1000_blocked"),
    "nne_seconds_per_generation_fastest": nne.get("seconds_per_generation_of_1000_fastest"),
}
(out / "gpu_table.json").write_text(json.dumps(table, indent=2))
print(json.dumps(table, indent=2))
EOF
rc=$?
record gather "$rc" $(( $(date +%s) - t0 )) 0 ""
cat "$OUT/gpu_table.json" 2>/dev/null
exit 0
