"""`bbpes bench roofline`: achieved FLOP/s of the ES population forward pass of the
evidence network against the float32 matmul peak measured on the same machine.

Work is counted per time step by XLA's cost analysis of one compiled network step of
the whole population x batch (the fused recurrent + readout matmul, and the
elementwise cell update; transcendentals are counted apart), times the number of steps;
the input current, formed once per input slot, is added by hand (2 D N per trial and
slot). The matmul alone is also reported, as a fraction of the matmul peak: the
roofline of this forward pass is the matmul peak when its matmul dominates.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import Benchmark
from .network import PAPER_SIZES, QUICK_SIZES, neuron_steps, problem
from .timing import Timer, load_average, time_call, time_interleaved


def matmul_peak(size: int, repeat: int, *, timer: Timer = time_interleaved) -> dict[str, float]:
    """FLOP/s of a float32 `(size, size) @ (size, size)` matmul (2 size^3 FLOPs), best
    of `repeat` calls timed by `timer`."""
    keys = jax.random.split(jax.random.key(0))
    a, b = (jax.random.normal(k, (size, size), jnp.float32) for k in keys)
    matmul = jax.jit(jnp.matmul)
    seconds = time_call(lambda: matmul(a, b), repeat, timer=timer).best
    return {"flops_per_s": 2.0 * size**3 / seconds, "seconds": seconds}


def step_cost(network, population, batch: int, n_cells: int) -> dict[str, float]:
    """XLA's count of one network step for every population member and trial."""
    members = jax.tree.leaves(population)[0].shape[0]
    state = network.initial_state((members, batch), n_cells, jnp.float32)
    drive = jnp.zeros((members, batch, n_cells), jnp.float32)
    step = jax.jit(jax.vmap(network.step))
    cost = step.lower(population, state, drive).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"flops": float(cost["flops"]), "transcendentals": float(cost.get("transcendentals", 0))}


def run(config: dict[str, Any], *, timer: Timer = time_interleaved) -> dict[str, Any]:
    with jax.enable_x64(False):
        peak = matmul_peak(config["matmul_size"], config["repeat"], timer=timer)
        task, network, _, tokens, labels, population = problem(config)
        forward = jax.jit(jax.vmap(lambda w: task.loss(network, w, tokens, labels)))
        seconds = time_call(lambda: forward(population), config["repeat"], timer=timer)
        n, b, p = config["n_cells"], config["batch"], config["samples"]
        k = 3  # outputs
        d = task.codes.shape[1]
        steps = task.n_inputs * task.hold_steps
        per_step = step_cost(network, population, b, n)
        matmul_flops = 2.0 * p * b * n * (n + k) * steps
        input_flops = 2.0 * p * b * d * n * task.n_inputs
        total_flops = per_step["flops"] * steps + input_flops
    best = seconds.best
    return {
        "load_average": load_average(),
        "matmul_peak_flops_per_s": peak["flops_per_s"],
        "forward_seconds": best,
        "forward_seconds_median": seconds.median,
        "neuron_steps_per_s": neuron_steps(config, task, p) / best,
        "flops_per_neuron_step": per_step["flops"] / (p * b * n),
        "transcendentals_per_neuron_step": per_step["transcendentals"] / (p * b * n),
        "achieved_flops_per_s": total_flops / best,
        "achieved_matmul_flops_per_s": matmul_flops / best,
        "fraction_of_peak": total_flops / best / peak["flops_per_s"],
        "matmul_fraction_of_peak": matmul_flops / best / peak["flops_per_s"],
        "matmul_share_of_flops": matmul_flops / total_flops,
    }


BENCHMARK = Benchmark(
    name="roofline",
    summary="FLOP/s of the ES population forward pass vs this machine's float32 matmul peak",
    run=run,
    defaults={**PAPER_SIZES, "dt": 0.1, "seed": 0, "matmul_size": 2048, "repeat": 3},
    quick={**QUICK_SIZES, "matmul_size": 1024},
)
