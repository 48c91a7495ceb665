"""`bbpes bench roofline`: its work count against hand counts (a network whose step is
one known matmul; the Morris-Lecar network's 2 FLOPs per presynaptic cell) and the
rates it derives from given seconds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from bbpes.bench import roofline
from bbpes.bench.network import problem

TINY = {**roofline.BENCHMARK.defaults, "batch": 2, "samples": 3, "n_inputs": 5, "hold": 2.0}
TINY |= {"n_cells": 16, "repeat": 1, "matmul_size": 64}


def test_matmul_peak_is_xlas_flop_count_over_the_measured_seconds(fake_timer):
    timer = fake_timer({"call": 0.5})
    peak = roofline.matmul_peak(64, 2, timer=timer)
    a = jnp.ones((64, 64), jnp.float32)
    cost = jax.jit(jnp.matmul).lower(a, a).compile().cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    assert flops == 2 * 64**3
    assert peak == {"flops_per_s": flops / 0.5, "seconds": 0.5}
    assert timer.asked == [(["call"], 2)]


class TanhLayer:
    """A network whose step is `tanh(W s + drive)`: per member and trial 2 N^2 + N
    FLOPs (the product and the sum) and N transcendentals."""

    def initial_state(self, shape, n_cells, dtype):
        return jnp.zeros((*shape, n_cells), dtype)

    def step(self, w, state, drive):
        new = jnp.tanh(state @ w.T + drive)
        return new, new


def test_step_cost_counts_every_member_and_trial():
    n, members, batch = 8, 3, 2
    population = jnp.ones((members, n, n), jnp.float32)
    cost = roofline.step_cost(TanhLayer(), population, batch, n)
    assert cost == {"flops": members * batch * (2 * n * n + n), "transcendentals": 48.0}


@pytest.fixture(scope="module")
def evidence_network():
    """The benchmark's network and population at `TINY` sizes (16 cells, 3 members),
    float32 as the benchmark runs them."""
    with jax.enable_x64(False):
        _, network, _, _, _, population = problem(TINY)
    return network, population


def test_the_network_step_costs_two_flops_per_presynaptic_cell_and_five_transcendentals(
    evidence_network,
):
    network, population = evidence_network
    first_8_cells = type(population)(
        population.w_in[:, :8],
        population.w_rec[:, :8, :8],
        population.w_out[:, :, :8],
        population.b_out,
    )
    twice = jax.tree.map(lambda a: jnp.concatenate([a, a]), population)  # 6 members
    with jax.enable_x64(False):
        cost = roofline.step_cost(network, population, 2, 16)
        cost_8 = roofline.step_cost(network, first_8_cells, 2, 8)
        cost_twice = roofline.step_cost(network, twice, 2, 16)
    per_neuron, per_neuron_8 = cost["flops"] / (3 * 2 * 16), cost_8["flops"] / (3 * 2 * 8)
    # the recurrent product grows by 2 FLOPs per neuron per extra cell; the cell update
    # and readout per neuron stay (up to per-trial terms of order 1 / N)
    assert per_neuron - per_neuron_8 == pytest.approx(2 * 8, abs=0.5)
    assert cost["transcendentals"] == 5 * 3 * 2 * 16 and cost_8["transcendentals"] == 5 * 3 * 2 * 8
    assert cost_twice == {k: 2 * v for k, v in cost.items()}


def test_rates_follow_the_given_seconds(fake_timer, evidence_network):
    # the matmul peak timed first (0.5 s: 2 x 64^3 / 0.5 FLOP/s), then the forward pass
    out = roofline.run(TINY, timer=fake_timer({"call": 0.5}, {"call": 2.0}))
    assert out["matmul_peak_flops_per_s"] == 2 * 64**3 / 0.5
    assert out["forward_seconds"] == out["forward_seconds_median"] == 2.0
    # 3 members x 2 trials x 16 cells x 5 inputs x 20 steps of 0.1 ms, in 2 s
    assert out["neuron_steps_per_s"] == 3 * 2 * 16 * 100 / 2.0
    network, population = evidence_network
    with jax.enable_x64(False):
        per_step = roofline.step_cost(network, population, 2, 16)["flops"]
    assert out["flops_per_neuron_step"] == per_step / (3 * 2 * 16)
    # all the FLOPs of 100 steps (and the input current, formed once per input) in 2 s
    assert out["achieved_flops_per_s"] > per_step * 100 / 2.0
    assert 0 < out["matmul_share_of_flops"] < 1
    assert out["fraction_of_peak"] == pytest.approx(out["achieved_flops_per_s"] / (2 * 64**3 / 0.5))
