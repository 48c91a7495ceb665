"""A black-box Python simulator trained by ES through Ray.

The simulator is plain Python (a for loop over time steps, no JAX): a leaky
integrate-and-fire cell (Dayan & Abbott 2001, section 5.4: tau_m = 10 ms, E_L = V_reset
= -65 mV, V_th = -50 mV, and a 2 ms refractory period) driven by a constant current.
It stands for anything ES can call but not differentiate: a NEURON or Brian2 model, a
C program. The task: find the current that gives 10 spikes in 200 ms.

The spike count is a step function of the current, so its gradient is zero almost
everywhere; ES follows the gradient of its Gaussian smoothing instead. Ray workers
evaluate the ES population in parallel, on this machine or on a cluster
(`RayEvaluator(..., address="auto")`).

Run it: `python examples/ray_simulator.py` (BBPES_EXAMPLE_TINY=1: one worker, two steps).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import optax

from bbpes import GradientLearner, train
from bbpes.ray_es import ray_es
from bbpes.ray_evaluator import RayEvaluator

TINY = os.environ.get("BBPES_EXAMPLE_TINY") == "1"
TARGET_SPIKES = 10


def spike_count(i_app: float, t_end: float = 200.0, dt: float = 0.1) -> int:
    """Spikes of a leaky integrate-and-fire cell in `t_end` ms at a constant current
    `i_app` (µA/cm²); forward Euler, plain Python."""
    c_m, g_leak, e_leak, v_th, v_reset, t_ref = 1.0, 0.1, -65.0, -50.0, -65.0, 2.0
    v, refractory, spikes = e_leak, 0.0, 0
    for _ in range(round(t_end / dt)):
        if refractory > 0:
            refractory -= dt
            continue
        v += dt * (g_leak * (e_leak - v) + i_app) / c_m
        if v >= v_th:
            v, refractory, spikes = v_reset, t_ref, spikes + 1
    return spikes


def simulator_loss(params) -> float:
    """Any Python: `params` arrives as a dict of numpy values, a float goes back."""
    return float((spike_count(float(params["i_app"])) - TARGET_SPIKES) ** 2)


def main():
    steps, samples, workers = (2, 4, 1) if TINY else (40, 16, 2)
    params = {"i_app": jnp.asarray(1.6)}
    print(f"spikes at I = 1.6: {spike_count(1.6)}, target {TARGET_SPIKES}")
    with RayEvaluator(simulator_loss, workers=workers) as evaluator:
        signal = ray_es(evaluator, sigma=0.1, samples=samples)
        result = train(
            GradientLearner(signal, optax.adam(0.05)),
            params,
            jax.random.key(0),
            steps=steps,
            progress="off",
        )
    i_app = float(result.params["i_app"])
    first = result.history[0]["loss"]
    print(f"ray es: loss {first:.4g} -> {simulator_loss({'i_app': i_app}):.4g}")
    print(f"I = {i_app:.3f} µA/cm²: {spike_count(i_app)} spikes")


if __name__ == "__main__":
    main()
