"""The NNE forward-pass benchmark: its formulations agree (it checks that itself before
timing), and it reports ratios, the bfloat16 route's error and fractions of the
measured matmul peak."""

from __future__ import annotations

import pytest

from bbpes.bench.nne_generation import BENCHMARK


def test_formulations_agree_and_ratios_are_reported():
    config = {
        **BENCHMARK.defaults,
        "hidden": 20,
        "images": 20,
        "genes": 100,
        "chunk": 5,
        "image_block": 10,
        "hidden_block": 4,
        "repeats": 1,
        "matmul_size": 64,
    }
    result = BENCHMARK.run(config)
    routes = {"dense", "whole_layer", "blocked", "blocked_bfloat16"}
    assert set(result["seconds_per_chunk"]) == set(result["fraction_of_peak"]) == routes
    assert result["speedup_blocked_vs_dense"] > 0 and result["active_links"] < result["links"]
    assert result["fastest_route"] in {"dense", "whole_layer", "blocked"}
    assert result["speedup_fastest_vs_blocked"] >= 1.0
    assert 0 < result["bfloat16_max_relative_loss_error"] < 0.02  # rounded, not wrong
    blocked = result["seconds_per_chunk"]["blocked"]
    assert result["network_evaluations_per_second"]["blocked"] == pytest.approx(5 * 20 / blocked)
    assert result["useful_flops_per_chunk"] == 2 * 5 * 20 * result["active_links"]
    assert result["fraction_of_peak"]["blocked"] == pytest.approx(
        result["useful_flops_per_chunk"] / blocked / result["matmul_peak_flops_per_s"]
    )
