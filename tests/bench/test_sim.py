"""`bbpes bench sim`: our routes and the plain scan always, rated from given seconds;
Brian2's configurations only where it is installed (slow)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.bench import run_benchmark, sim
from bbpes.bench.network import low_rank_population, plain_scan, problem
from bbpes.errors import ConfigError
from bbpes.estimators.low_rank import LowRank

TINY = {"n_cells": "8", "batch": "2", "samples": "3", "n_inputs": "5", "hold": "2", "repeat": "1"}
TINY_CONFIG = {
    **sim.BENCHMARK.defaults,
    **{k: float(v) if k == "hold" else int(v) for k, v in TINY.items()},
}


def test_without_brian2_the_routes_are_rated_from_their_seconds(monkeypatch, fake_timer):
    monkeypatch.setattr(sim, "brian2_installed", lambda: False)
    seconds = {"plain": 8.0, "full_rank": 2.0, "trials_first": 4.0, "fused_readout": 2.5}
    seconds |= {"unrolled": 3.0, "low_rank_r1": 1.0, "low_rank_r4": 1.6, "batch_only": 1.0}
    timer = fake_timer(seconds, run_calls=True)  # each route runs once, for its readout
    out = sim.run(TINY_CONFIG, timer=timer)
    assert timer.asked == [(["plain", *sim.ROUTES, "batch_only"], 1)]
    # 3 members x 2 trials x 8 cells x 5 inputs x 20 steps of 0.1 ms
    assert out["ours_seconds"] == 2.0 and out["ours_neuron_steps_per_s"] == 4800 / 2.0
    assert out["ours_neuron_steps_per_cpu_s"] == 4800 / 0.5  # CPU seconds: a quarter
    assert out["plain_neuron_steps_per_s"] == 4800 / 8.0
    assert out["ours_batch_only_neuron_steps_per_s"] == 1600 / 1.0  # one member
    assert out["routes"]["unrolled"] == {
        "neuron_steps_per_s": 1600.0,
        "first_seconds": 30.0,
        "seconds": 3.0,
        "cpu_seconds": 0.75,
    }
    assert out["ours_over_plain"] == out["full_rank_over_plain"] == 4.0
    assert out["trials_first_over_plain"] == out["trials_first_over_plain_cpu"] == 2.0
    assert out["low_rank_r1_over_full_rank"] == 2.0 and out["low_rank_r4_over_full_rank"] == 1.25
    assert out["best_route"] == "low_rank_r1" and out["best_route_over_plain"] == 8.0
    assert out["target_plain_rate"] is True
    assert out["dense_routes_max_abs_difference"] < 1e-4  # float32 readouts of order 1
    assert "not installed" in out["brian2"] and "ours_over_brian2" not in out


def test_a_route_slower_than_plain_misses_the_target(monkeypatch, fake_timer):
    monkeypatch.setattr(sim, "brian2_installed", lambda: False)
    config = {**TINY_CONFIG, "routes": ["full_rank"]}
    out = sim.run(
        config,
        timer=fake_timer({"plain": 1.0, "full_rank": 3.0, "batch_only": 1.0}, run_calls=True),
    )
    assert out["best_route"] == "full_rank" and out["ours_over_plain"] == pytest.approx(1 / 3)
    assert out["target_plain_rate"] is False and "dense_routes_max_abs_difference" not in out


def test_unknown_routes_and_brian2_configurations_are_config_errors(monkeypatch):
    monkeypatch.setattr(sim, "brian2_installed", lambda: False)
    with pytest.raises(ConfigError, match="unknown route"):
        run_benchmark("sim", {**TINY, "routes": "full_rank,sideways"})
    with pytest.raises(ConfigError, match="unknown Brian2"):
        run_benchmark("sim", {**TINY, "brian2_configs": "synapses_cython,matlab"})


def test_plain_scan_is_the_networks_own_step_with_shared_weights():
    """The baseline against `RecurrentNetwork.step` in a Python loop: the same cell
    update under drive + s W_rec T(V), for every row of the batch."""
    config = {**sim.BENCHMARK.defaults, "n_cells": 8, "batch": 2, "samples": 3, "n_inputs": 5}
    config["hold"] = 2.0
    _, network, weights, _, _, _ = problem(config)
    drive = jax.random.uniform(jax.random.key(0), (6, 8), minval=80.0, maxval=120.0)
    got = plain_scan(network, weights.w_rec, drive, 30)
    state = network.initial_state((6,), 8, drive.dtype)
    for _ in range(30):
        state, _ = network.step(weights, state, drive)
    for g, w in zip(got, state):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_low_rank_population_shares_the_base():
    config = {**sim.BENCHMARK.defaults, "n_cells": 8, "batch": 2, "samples": 3, "n_inputs": 5}
    _, _, weights, _, _, _ = problem(config)
    population, in_axes = low_rank_population(config, weights, 2)
    assert population.w_rec.base is weights.w_rec and population.w_rec.a.shape == (3, 8, 2)
    assert population.b_out.shape == (3, *weights.b_out.shape)
    assert isinstance(in_axes.w_rec, LowRank) and in_axes.w_rec.base is None
    members = jax.vmap(lambda w: w.w_rec.dense(), in_axes=(in_axes,))(population)
    assert members.shape == (3, 8, 8) and float(jnp.std(members[0] - members[1])) > 0


@pytest.mark.slow
def test_brian2_configurations_are_measured_and_agree_when_installed():
    """Needs the brian2 extra (its own virtualenv, numpy < 2.4). Every configuration
    simulates the same network: the same final mean voltage."""
    configs = ["synapses_cpp_standalone", "synapses_cython", "matmul_cython"]
    configs.append("matmul_cpp_standalone")
    settings = {**TINY, "brian2_copies": "2", "brian2_duration_ms": "10", "routes": "full_rank"}
    out = run_benchmark("sim", {**settings, "brian2_configs": ",".join(configs)})
    voltages = []
    for name in configs:
        result = out[f"brian2_{name}"]
        assert result["neuron_steps_per_s"] > 0, result
        voltages.append(result["final_mean_v_mV"])
    np.testing.assert_allclose(voltages, voltages[0], rtol=1e-9)
    best = out["brian2_neuron_steps_per_s"]
    assert out["ours_over_brian2"] == pytest.approx(out["ours_neuron_steps_per_s"] / best)
