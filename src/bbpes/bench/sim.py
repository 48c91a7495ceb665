"""`bbpes bench sim`: throughput of the recurrent Morris-Lecar network (neuron-steps
per second) at paper scale (128 cells, dt = 0.1 ms), ours against Brian2 on the same
network, measured in the same command when Brian2 is installed.

Ours: the ES forward pass of the evidence task, `samples` weight sets x `batch` trials
in one vmapped, jitted computation (`RecurrentNetwork.run` through `EvidenceTask.loss`,
float32, no trajectory kept); also one weight set x the batch alone.

Brian2: the same network, `brian2_copies` independent copies of the 128 cells (one per
trial), each all-to-all coupled by `Synapses` with a summed current s W_rec T(V), the
input current of each trial's held inputs from a `TimedArray`, the cell's equations
(Eq. 8) integrated by `brian2_method`. Every code-generation target that works here is
timed (cpp_standalone on one core and with OpenMP on every core, cython, numpy), each
in a fresh process, after its compilation; the best one is the baseline. Brian2 runs fewer copies
than ours runs trials (its cost is linear in them, and the full population would take
hours); the rates are per neuron-step. Its network has no readout (ours computes one,
3 of the 131 rows of its matmul).

`ours_over_brian2` is the target's ratio (>= 10 wanted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import jax
import numpy as np

from . import Benchmark
from .network import PAPER_SIZES, QUICK_SIZES, neuron_steps, problem
from .timing import load_average, time_call

TARGETS = ("cpp_standalone", "cpp_standalone_openmp", "cython", "numpy")
"""Brian2 code generation; `cpp_standalone_openmp` is the C++ program on every core."""


def ours(config: dict[str, Any]) -> dict[str, Any]:
    with jax.enable_x64(False):
        task, network, weights, tokens, _, population = problem(config)
        forward = jax.jit(jax.vmap(lambda w: task.readout(network, w, tokens)))
        seconds = time_call(lambda: forward(population), config["repeat"])
        single = jax.jit(lambda w: task.readout(network, w, tokens))
        batch_only = time_call(lambda: single(weights), config["repeat"])
    return {
        "neuron_steps_per_s": neuron_steps(config, task, config["samples"]) / seconds["best"],
        "seconds": seconds["best"],
        "batch_only_neuron_steps_per_s": neuron_steps(config, task, 1) / batch_only["best"],
    }


def brian2_network(config: dict[str, Any], target: str, directory: str):
    """Build the Brian2 network (see the module docstring); returns `(run, neurons)`
    where `run(duration_ms) -> seconds` simulates and times it."""
    import brian2 as b2

    from ..tasks.turn_off_brian2 import constants

    task, network, weights, tokens, _, _ = problem(config)
    copies, n = config["brian2_copies"], config["n_cells"]
    b2.device.reinit()
    standalone = target.startswith("cpp_standalone")
    if standalone:
        b2.set_device("cpp_standalone", build_on_run=False)
        threads = os.cpu_count() if target.endswith("openmp") else 0
        b2.prefs.devices.cpp_standalone.openmp_threads = threads
    else:
        b2.set_device("runtime")
        b2.prefs.codegen.target = target
    unit = b2.uA / b2.cm**2
    namespace = {k: v * eval(u, vars(b2)) for k, (v, u) in constants(network.cell).items()}
    # input current of every cell of every copy, per held input slot: (slots, copies * n)
    slots = int(np.ceil(config["brian2_duration_ms"] / task.hold))
    trials = np.resize(np.arange(tokens.shape[0]), copies)
    stream = np.asarray(task.inputs(tokens[trials]))  # (n_inputs, copies, D)
    stream = stream[np.arange(slots) % stream.shape[0]]
    drive = np.asarray(network.input_current(weights, stream)).reshape(slots, copies * n)
    namespace["I_in"] = b2.TimedArray(drive * unit, dt=task.hold * b2.ms)
    equations = """
    dv/dt = (g_L*(V_L - v) + g_Ca*m_inf*(V_Ca - v) + g_K*w*(V_K - v) + I_in(t, i) + I_rec)/C : volt
    dw/dt = phi*cosh((v - V3)/(2*V4))*(w_inf - w) : 1
    m_inf = 0.5*(1 + tanh((v - V1)/V2)) : 1
    w_inf = 0.5*(1 + tanh((v - V3)/V4)) : 1
    out : 1
    I_rec : amp/meter**2
    """
    dt = config["dt"] * b2.ms
    cells = b2.NeuronGroup(
        copies * n, equations, method=config["brian2_method"], namespace=namespace, dt=dt
    )
    cells.v = network.cell.V_L * b2.mV
    cells.w = 0.0
    # T(V) once per cell and step (as a subexpression, each synapse would recompute it)
    cells.run_regularly("out = 1/(1 + exp(-(v - V_T)/k_p))", dt=dt, when="start")
    synapses = b2.Synapses(
        cells,
        cells,
        "weight : amp/meter**2 (constant)\nI_rec_post = weight*out_pre : amp/meter**2 (summed)",
        dt=dt,
        namespace=namespace,
    )
    post, pre = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")  # w_rec[post, pre]
    offsets = (np.arange(copies) * n)[:, None]
    synapses.connect(i=(offsets + pre.ravel()).ravel(), j=(offsets + post.ravel()).ravel())
    w_rec = np.asarray(weights.w_rec, np.float64).ravel()
    synapses.weight = np.tile(network.current_scale * w_rec, copies) * unit
    net = b2.Network(cells, synapses)
    duration = config["brian2_duration_ms"] * b2.ms

    if standalone:
        net.run(duration, namespace={})
        b2.device.build(directory=directory, run=False)

        def run() -> float:
            b2.device.run()
            return float(b2.device._last_run_time)
    else:
        net.run(config["dt"] * 10 * b2.ms, namespace={})  # code generation and compilation
        net.store()

        def run() -> float:
            net.restore()
            t0 = time.perf_counter()
            net.run(duration, namespace={})
            return time.perf_counter() - t0

    return run, copies * n


def brian2_rate(config: dict[str, Any], target: str) -> dict[str, Any]:
    """Neuron-steps per second of the Brian2 network on `target` (run in this process)."""
    with tempfile.TemporaryDirectory(prefix="bbpes-brian2-sim-") as directory:
        t0 = time.perf_counter()
        run, neurons = brian2_network(config, target, directory)
        build = time.perf_counter() - t0
        seconds = min(run() for _ in range(config["repeat"]))
    steps = round(config["brian2_duration_ms"] / config["dt"])
    return {"neuron_steps_per_s": neurons * steps / seconds, "seconds": seconds, "build": build}


def brian2_in_subprocess(config: dict[str, Any], target: str) -> dict[str, Any]:
    code = (
        "import json, sys\n"
        "from bbpes.bench.sim import brian2_rate\n"
        "print(json.dumps(brian2_rate(json.loads(sys.argv[1]), sys.argv[2])))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(config), target],
        capture_output=True,
        text=True,
        timeout=config["brian2_timeout"],
    )
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def brian2_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("brian2") is not None


def run(config: dict[str, Any]) -> dict[str, Any]:
    mine = ours(config)
    out: dict[str, Any] = {
        "load_average": load_average(),
        "ours_neuron_steps_per_s": mine["neuron_steps_per_s"],
        "ours_seconds": mine["seconds"],
        "ours_batch_only_neuron_steps_per_s": mine["batch_only_neuron_steps_per_s"],
    }
    if not brian2_installed():
        out["brian2"] = "not installed (pip install 'bbpes[brian2]', needs numpy < 2.4)"
        return out
    rates = {}
    for target in config["brian2_targets"]:
        if target not in TARGETS:
            out[f"brian2_{target}"] = {"error": f"unknown target (known: {', '.join(TARGETS)})"}
            continue
        result = brian2_in_subprocess(config, target)
        out[f"brian2_{target}"] = result
        if "neuron_steps_per_s" in result:
            rates[target] = result["neuron_steps_per_s"]
    if rates:
        best = max(rates, key=rates.get)
        out["brian2_best_target"] = best
        out["brian2_neuron_steps_per_s"] = rates[best]
        out["ours_over_brian2"] = mine["neuron_steps_per_s"] / rates[best]
        out["target_10x_brian2"] = out["ours_over_brian2"] >= 10.0
    return out


BENCHMARK = Benchmark(
    name="sim",
    summary="network throughput (neuron-steps/s) of the population x batch, ours vs Brian2",
    run=run,
    defaults={
        **PAPER_SIZES,
        "dt": 0.1,
        "seed": 0,
        "repeat": 3,
        "brian2_copies": 64,
        "brian2_duration_ms": 100.0,
        "brian2_method": "exponential_euler",
        "brian2_targets": list(TARGETS),
        "brian2_timeout": 1800,
    },
    quick={
        **QUICK_SIZES,
        "repeat": 2,
        "brian2_copies": 8,
        "brian2_duration_ms": 20.0,
        "brian2_targets": ["cpp_standalone", "cython"],
    },
)
