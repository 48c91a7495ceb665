"""The NNE forward-pass benchmark: its formulations agree (it checks that itself before
timing), the bfloat16 route is rounded, not wrong, and what it reports follows from
given seconds and a count of the links the images use."""

from __future__ import annotations

import numpy as np
import pytest

from bbpes.bench import nne_generation
from bbpes.bench.nne_generation import BENCHMARK

CONFIG = {
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


def test_rates_speedups_and_useful_work_from_given_seconds(fake_timer):
    seconds = {"dense": 8.0, "whole_layer": 1.0, "blocked": 2.0, "blocked_bfloat16": 4.0}
    timer = fake_timer(seconds, {"call": 0.5})  # the routes, then the matmul peak
    result = nne_generation.run(CONFIG, timer=timer)
    assert timer.asked == [(list(seconds), 1), (["call"], 2)]
    assert result["seconds_per_chunk"] == seconds
    assert result["cpu_seconds_per_chunk"] == {k: s / 4 for k, s in seconds.items()}
    assert result["fastest_route"] == "whole_layer"
    assert result["speedup_blocked_vs_dense"] == 4.0
    assert result["speedup_blocked_vs_whole_layer"] == 0.5
    assert result["speedup_fastest_vs_blocked"] == 2.0
    assert result["speedup_bfloat16_vs_blocked"] == 0.5
    # 5 genotypes x 20 images = 100 network evaluations a chunk
    assert result["network_evaluations_per_second"]["blocked"] == 100 / 2.0
    assert result["seconds_per_generation_of_1000_blocked"] == 2.0 * 1000 / 5
    assert result["seconds_per_generation_of_1000_fastest"] == 1.0 * 1000 / 5
    assert result["matmul_peak_flops_per_s"] == 2 * 64**3 / 0.5
    assert 0 < result["bfloat16_max_relative_loss_error"] < 0.02  # rounded, not wrong

    # useful work: a multiply-add per image and genotype on each first-layer link whose
    # pixel is ink in some image, and on every output link (20 hidden x 5 classes)
    net, _, x, _, _ = nne_generation.problem(CONFIG)
    _, pixel = net.edges()
    used = int(np.sum(np.any(x != 0, axis=0)[pixel])) + 20 * CONFIG["classes"]
    assert result["links"] == len(pixel) + 20 * CONFIG["classes"] > result["active_links"]
    assert result["active_links"] == used
    assert result["useful_flops_per_chunk"] == 2 * 100 * used
    peak = 2 * 64**3 / 0.5
    assert result["fraction_of_peak"]["blocked"] == pytest.approx(2 * 100 * used / 2.0 / peak)
