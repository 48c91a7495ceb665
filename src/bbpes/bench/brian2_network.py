"""The Brian2 peer of `bbpes bench sim`: the evidence network built in Brian2 in each
configuration of `BRIAN2_CONFIGS` (the recurrent current by `Synapses`, by a matrix
product in a `network_operation`, or by a C++ function in standalone mode; see
`bbpes.bench.sim`'s docstring), timed in a fresh process per configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from .network import problem
from .timing import load_average

TARGETS = ("cpp_standalone", "cpp_standalone_openmp", "cython", "numpy")
"""Brian2 code generation; `cpp_standalone_openmp` is the C++ program on every core."""

BRIAN2_CONFIGS = {
    **{f"synapses_{t}": ("synapses", t) for t in TARGETS},
    "matmul_cython": ("network_operation", "cython"),
    "matmul_numpy": ("network_operation", "numpy"),
    "matmul_cpp_standalone": ("cpp_function", "cpp_standalone"),
    "matmul_cpp_standalone_openmp": ("cpp_function", "cpp_standalone_openmp"),
}
"""Brian2 configurations by name: (how the recurrent current is formed, target)."""


def brian2_network(config: dict[str, Any], formulation: str, target: str, directory: str):
    """Build the Brian2 network (see the module docstring); returns `(run, cells)`
    where `run() -> (seconds, cpu_seconds)` simulates `brian2_duration_ms` and times it."""
    import brian2 as b2

    from ..tasks.turn_off_brian2 import constants

    task, network, weights, tokens, _, _ = problem(config)
    copies, n = config["brian2_copies"], config["n_cells"]
    b2.device.reinit()
    float_type = np.float32 if config["brian2_float32"] else np.float64
    b2.prefs.core.default_float_dtype = float_type
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
    w_rec = network.current_scale * np.asarray(weights.w_rec, np.float64)  # µA/cm² per unit T
    if formulation == "cpp_function":
        if not standalone:
            raise ValueError("the C++ function formulation is for cpp_standalone only")
        c_type = "float" if config["brian2_float32"] else "double"
        code = _ROW_PRODUCT.replace("%N%", str(n)).replace("%T%", c_type)
        rows = {"rec_W": w_rec.ravel().astype(float_type)}
        namespace["recurrent_row"] = b2.implementation(
            "cpp", code, namespace=rows, name="recurrent_row"
        )(b2.check_units(i=1, result=1)(_row_product_python))
    dt = config["dt"] * b2.ms
    cells = b2.NeuronGroup(
        copies * n,
        equations,
        method=config["brian2_method"],
        namespace=namespace,
        dt=dt,
        name="cells",
    )
    cells.v = network.cell.V_L * b2.mV
    cells.w = 0.0
    objects: list[Any] = [cells]
    transmitter = "out = 1/(1 + exp(-(v - V_T)/k_p))"
    if formulation == "synapses":
        # T(V) once per cell and step (as a subexpression, each synapse would recompute it)
        cells.run_regularly(transmitter, dt=dt, when="start")
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
        synapses.weight = np.tile(w_rec.ravel(), copies) * unit
        objects.append(synapses)
    elif formulation == "network_operation":
        v_values = cells.variables["v"].get_value()  # the group's own arrays (SI units)
        i_values = cells.variables["I_rec"].get_value()
        w_t = (w_rec * float(unit)).T.astype(float_type)
        v_t, k_p = float(namespace["V_T"]), float(namespace["k_p"])

        @b2.network_operation(dt=dt, when="start")
        def recurrent_current():
            spikes = 1.0 / (1.0 + np.exp(-(v_values - v_t) / k_p))
            np.matmul(spikes.reshape(copies, n), w_t, out=i_values.reshape(copies, n))

        objects.append(recurrent_current)
    elif formulation == "cpp_function":
        cells.run_regularly(transmitter, dt=dt, when="start", order=0)
        cells.run_regularly("I_rec = recurrent_row(i)*uA/cm**2", dt=dt, when="start", order=1)
    else:
        raise ValueError(f"unknown formulation {formulation!r}")
    net = b2.Network(*objects)
    duration = config["brian2_duration_ms"] * b2.ms

    if standalone:
        net.run(duration, namespace={})
        b2.device.build(directory=directory, run=False)

        def run() -> tuple[float, float]:
            # the program is a child process: its CPU time includes start-up and output
            c0 = _children_cpu_seconds()
            b2.device.run()
            return float(b2.device._last_run_time), _children_cpu_seconds() - c0
    else:
        net.store("start")
        net.run(config["dt"] * 10 * b2.ms, namespace={})  # code generation and compilation

        def run() -> tuple[float, float]:
            net.restore("start")
            c0, t0 = time.process_time(), time.perf_counter()
            net.run(duration, namespace={})
            return time.perf_counter() - t0, time.process_time() - c0

    return run, cells


def _children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_ROW_PRODUCT = """
static inline %T% recurrent_row(const int i)
{
    // (W_rec T)_i of cell i of its copy: W's row times the copy's T(V), from the group's
    // own `out` array (written by the run_regularly before this one)
    const int row = i % %N%;
    const %T%* spikes = brian::_array_cells_out + (i - row);
    const %T%* weights = _namespacerec_W + row * %N%;
    %T% total = 0;
    for (int k = 0; k < %N%; k++)
        total += weights[k] * spikes[k];
    return total;
}
"""
"""The C++ standalone dense product: one cell's row of W_rec T(V) (N multiply-adds)."""


def _row_product_python(i):
    """The Python version every Brian2 function needs; only the C++ one is ever run."""
    raise NotImplementedError("recurrent_row runs in C++ standalone only")


def brian2_rate(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Neuron-steps per second of the Brian2 configuration `name` (run in this
    process), and the mean membrane potential at the end (mV), which every
    configuration should share."""
    formulation, target = BRIAN2_CONFIGS[name]
    with tempfile.TemporaryDirectory(prefix="bbpes-brian2-sim-") as directory:
        t0 = time.perf_counter()
        run, cells = brian2_network(config, formulation, target, directory)
        build = time.perf_counter() - t0
        walls, cpus = zip(*(run() for _ in range(config["repeat"])))
        final_v = float(np.mean(np.asarray(cells.v_[:]))) * 1e3
    steps = round(config["brian2_duration_ms"] / config["dt"])
    work = config["brian2_copies"] * config["n_cells"] * steps
    return {
        "neuron_steps_per_s": work / min(walls),
        "neuron_steps_per_cpu_s": work / min(cpus),
        "seconds": min(walls),
        "cpu_seconds": min(cpus),
        "build": build,
        "final_mean_v_mV": final_v,
        "load_average": load_average(),
    }


def brian2_in_subprocess(config: dict[str, Any], name: str) -> dict[str, Any]:
    code = (
        "import json, sys\n"
        "from bbpes.bench.brian2_network import brian2_rate\n"
        "print(json.dumps(brian2_rate(json.loads(sys.argv[1]), sys.argv[2])))\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, json.dumps(config), name],
            capture_output=True,
            text=True,
            timeout=config["brian2_timeout"],
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {config['brian2_timeout']} s"}
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def brian2_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("brian2") is not None
