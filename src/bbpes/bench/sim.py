"""`bbpes bench sim`: throughput of the recurrent Morris-Lecar network (neuron-steps
per second) at paper scale (128 cells, dt = 0.1 ms): our ES population forward pass
against a plain JAX scan and against Brian2, measured in the same command.

**Plain** (the baseline, `network.plain_scan`): a `jax.lax.scan` of the same
Morris-Lecar step of `samples x batch` networks sharing one weight matrix, float32, a
constant input current, no readout, no trajectory kept: one `(samples x batch, N) @
(N, N)` matmul and the cell's elementwise update per step, the least work a
shared-weight simulation of this size can do with the cell's own stepper.

**Ours**, each route timed in turn, interleaved round by round (so that the load of a
shared machine moves them together), best of `repeat` rounds:

- `full_rank`: the ES population as `es` evaluates it, `samples` dense weight sets x
  `batch` trials in one vmapped, jitted `EvidenceTask.readout` (the network's default
  layout, cells first).
- `trials_first`: the same with the state held `(..., trials, cells)`, as before the
  cells-first layout (route: a batched layout that makes each member's product a
  larger, better-shaped matmul).
- `fused_readout`: the readout stacked under W_rec, one `(N + K) x N` product per step.
- `unrolled`: the step loop unrolled 4 times (`RecurrentNetwork.unroll`).
- `low_rank_r{r}`: low-rank ES members (EGGROLL), `LowRank` matrices whose base is
  shared by the population: one shared `(samples x batch, N) @ (N, N)` product plus the
  members' rank-r corrections per step.
- `batch_only`: one weight set x the batch alone.

The input current is formed once per input slot (outside the step loop) by every
route, and the readout only in the slots that overlap the decision window. Each route
reports its wall-clock rate and its ratio to plain on wall time (`R_over_plain`) and
on CPU time (`R_over_plain_cpu`: CPU seconds of this process, steadier than wall time
when other processes share the cores).

**Brian2** (when installed; numpy < 2.4): the same network, `brian2_copies` independent
copies of the 128 cells (one per trial, all with the network's W_rec), the input
current of each trial's held inputs from a `TimedArray`, the cell's equations (Eq. 8)
integrated by `brian2_method`, each configuration in a fresh process, timed after its
compilation. The recurrent current s W_rec T(V) is computed in one of two ways:

- `synapses_*`: all-to-all `Synapses` with a summed variable (Brian2's own formulation;
  every code generation target).
- `matmul_*`: one dense matrix product per step. In runtime mode (`cython`, `numpy`) a
  `network_operation` does `T @ W^T` with numpy on the group's arrays in place. C++
  standalone cannot run Python network operations; there, a `run_regularly` calls a
  user-written C++ function (`brian2.implementation`) that forms each cell's row
  product from the group's `out` array and W (a constant namespace array), compiled
  with Brian2's flags (-O3 -ffast-math -march=native), on one core or with OpenMP.

Brian2 computes in float64 (its default) unless `brian2_float32` (measured no faster
here). Brian2 runs fewer copies than ours runs trials (its cost is linear in them); the rates
are per neuron-step. Its network has no readout. `ours_over_brian2` is our full-rank
population's rate over the best Brian2 configuration's (>= 30 wanted);
`ours_over_brian2_cpu` the same per CPU-second (ours counts both cores' CPU time, the
C++ program's includes its start-up), the steadier number on a loaded machine, where
wall time penalises programs that synchronise threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ..errors import ConfigError
from ..models.bnn import RecurrentNetwork
from . import Benchmark
from .brian2_network import BRIAN2_CONFIGS, brian2_in_subprocess, brian2_installed
from .network import (
    PAPER_SIZES,
    QUICK_SIZES,
    low_rank_population,
    neuron_steps,
    plain_scan,
    problem,
)
from .timing import Timer, load_average, time_interleaved

ROUTES = ("full_rank", "trials_first", "fused_readout", "unrolled", "low_rank_r1", "low_rank_r4")


def route_calls(config: dict[str, Any]) -> tuple[dict[str, Callable[[], Any]], Any]:
    """The compiled calls of plain and of every route in `config["routes"]` (plus
    `batch_only`), and the evidence task."""
    task, network, weights, tokens, _, population = problem(config)
    steps = task.n_inputs * task.hold_steps
    x0 = task.inputs(tokens)[0]  # the first input slot, (batch, D)
    drive = jnp.tile(network.input_current(weights, x0), (config["samples"], 1))
    plain = jax.jit(lambda w, d: plain_scan(network, w, d, steps))
    calls = {"plain": lambda: plain(weights.w_rec, drive)}

    def variant(**fields) -> RecurrentNetwork:
        keep = {k: getattr(network, k) for k in ("dt", "transmitter", "slope")}
        return RecurrentNetwork(
            network.cell, network.i_app, network.current_scale, **keep, **fields
        )

    def population_call(net, pop, in_axes=0):
        forward = jax.jit(jax.vmap(lambda w: task.readout(net, w, tokens), in_axes=(in_axes,)))
        return lambda: forward(pop)

    for route in config["routes"]:
        if route == "full_rank":
            calls[route] = population_call(variant(), population)
        elif route == "trials_first":
            calls[route] = population_call(variant(layout="trials_first"), population)
        elif route == "fused_readout":
            calls[route] = population_call(variant(fuse_readout=True), population)
        elif route == "unrolled":
            calls[route] = population_call(variant(unroll=4), population)
        elif route.startswith("low_rank_r") and route[10:].isdigit():
            pop, axes = low_rank_population(config, weights, int(route[10:]))
            calls[route] = population_call(variant(), pop, axes)
        else:
            raise ConfigError(f"unknown route {route!r} (known: {', '.join(ROUTES)}, low_rank_rN)")
    single = jax.jit(lambda w: task.readout(network, w, tokens))
    calls["batch_only"] = lambda: single(weights)
    return calls, task


def ours(config: dict[str, Any], *, timer: Timer = time_interleaved) -> dict[str, Any]:
    """Plain and every route, timed in the same rounds by `timer`; rates and ratios.
    Per route: the best wall-clock `seconds`, the best `cpu_seconds` (this process,
    all threads) and the warm-up's `first_seconds`."""
    with jax.enable_x64(False):
        calls, task = route_calls(config)
        timed = timer(calls, config["repeat"])
    times = {
        name: {"first_seconds": t.first, "seconds": t.best, "cpu_seconds": t.cpu_best}
        for name, t in timed.items()
    }
    dense = [r for r in ("full_rank", "trials_first", "fused_readout", "unrolled") if r in calls]
    readouts = {r: timed[r].result for r in dense}
    work = {name: neuron_steps(config, task, config["samples"]) for name in calls}
    work["batch_only"] = neuron_steps(config, task, 1)
    out: dict[str, Any] = {"routes": {}}
    plain = times["plain"]
    for name, t in times.items():
        out["routes"][name] = {"neuron_steps_per_s": work[name] / t["seconds"], **t}
        if name not in ("plain", "batch_only"):
            out[f"{name}_over_plain"] = plain["seconds"] / t["seconds"]
            out[f"{name}_over_plain_cpu"] = plain["cpu_seconds"] / t["cpu_seconds"]
    if len(readouts) > 1:  # the dense routes compute the same numbers
        ref = readouts[dense[0]]
        out["dense_routes_max_abs_difference"] = max(
            float(jnp.max(jnp.abs(a - b)))
            for r in dense[1:]
            for a, b in zip(jax.tree.leaves(readouts[r]), jax.tree.leaves(ref))
        )
    for name in times:
        if name.startswith("low_rank_r") and "full_rank" in times:
            out[f"{name}_over_full_rank"] = times["full_rank"]["seconds"] / times[name]["seconds"]
            cpu = times["full_rank"]["cpu_seconds"] / times[name]["cpu_seconds"]
            out[f"{name}_over_full_rank_cpu"] = cpu
    return out


def run(config: dict[str, Any], *, timer: Timer = time_interleaved) -> dict[str, Any]:
    unknown = [name for name in config["brian2_configs"] if name not in BRIAN2_CONFIGS]
    if unknown:
        known = ", ".join(BRIAN2_CONFIGS)
        raise ConfigError(f"unknown Brian2 configuration {unknown[0]!r} (known: {known})")
    load = load_average()
    mine = ours(config, timer=timer)
    routes = mine["routes"]
    full = routes.get("full_rank", routes["batch_only"])
    per_cpu_s = {
        name: t["neuron_steps_per_s"] * t["seconds"] / t["cpu_seconds"]
        for name, t in routes.items()
    }
    out: dict[str, Any] = {
        "load_average": load,
        "ours_neuron_steps_per_s": full["neuron_steps_per_s"],
        "ours_neuron_steps_per_cpu_s": per_cpu_s.get("full_rank", per_cpu_s["batch_only"]),
        "ours_seconds": full["seconds"],
        "plain_neuron_steps_per_s": routes["plain"]["neuron_steps_per_s"],
        "ours_batch_only_neuron_steps_per_s": routes["batch_only"]["neuron_steps_per_s"],
        **mine,
    }
    if "full_rank_over_plain" in mine:
        out["ours_over_plain"] = mine["full_rank_over_plain"]
        out["ours_over_plain_cpu"] = mine["full_rank_over_plain_cpu"]
    timed = [r for r in config["routes"] if f"{r}_over_plain_cpu" in mine]
    if timed:
        best = max(timed, key=lambda r: mine[f"{r}_over_plain_cpu"])
        out["best_route"] = best
        out["best_route_over_plain"] = mine[f"{best}_over_plain"]
        out["best_route_over_plain_cpu"] = mine[f"{best}_over_plain_cpu"]
        out["target_plain_rate"] = mine[f"{best}_over_plain_cpu"] >= 1.0
    out["load_average_after_ours"] = load_average()
    if not brian2_installed():
        out["brian2"] = "not installed (pip install 'bbpes[brian2]', needs numpy < 2.4)"
        return out
    wall, cpu = {}, {}
    for name in config["brian2_configs"]:
        result = brian2_in_subprocess(config, name)
        if "neuron_steps_per_s" in result:
            wall[name], cpu[name] = result["neuron_steps_per_s"], result["neuron_steps_per_cpu_s"]
            result["ours_over_this"] = out["ours_neuron_steps_per_s"] / wall[name]
            result["ours_over_this_cpu"] = out["ours_neuron_steps_per_cpu_s"] / cpu[name]
        out[f"brian2_{name}"] = result
    if wall:
        best, best_cpu = max(wall, key=wall.get), max(cpu, key=cpu.get)
        out["brian2_best"], out["brian2_best_cpu"] = best, best_cpu
        out["brian2_neuron_steps_per_s"] = wall[best]
        out["ours_over_brian2"] = out["ours_neuron_steps_per_s"] / wall[best]
        out["ours_over_brian2_cpu"] = out["ours_neuron_steps_per_cpu_s"] / cpu[best_cpu]
        for name in ("plain", *timed):
            out[f"{name}_over_brian2"] = routes[name]["neuron_steps_per_s"] / wall[best]
            out[f"{name}_over_brian2_cpu"] = per_cpu_s[name] / cpu[best_cpu]
        out["target_30x_brian2"] = out["ours_over_brian2"] >= 30.0
    return out


BENCHMARK = Benchmark(
    name="sim",
    summary="network throughput (neuron-steps/s): the ES population's routes vs a plain scan and Brian2",
    run=run,
    defaults={
        **PAPER_SIZES,
        "dt": 0.1,
        "seed": 0,
        "repeat": 3,
        "routes": list(ROUTES),
        "brian2_copies": 64,
        "brian2_duration_ms": 100.0,
        "brian2_method": "exponential_euler",
        "brian2_float32": False,
        "brian2_configs": list(BRIAN2_CONFIGS),
        "brian2_timeout": 1800,
    },
    quick={
        **QUICK_SIZES,
        "repeat": 2,
        "brian2_copies": 8,
        "brian2_duration_ms": 20.0,
        "brian2_configs": [
            "synapses_cpp_standalone",
            "synapses_cython",
            "matmul_cython",
            "matmul_cpp_standalone",
        ],
    },
)
