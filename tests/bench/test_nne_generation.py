"""The NNE forward-pass benchmark: its three formulations agree (it checks that itself
before timing) and it reports ratios."""

from __future__ import annotations

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
    }
    result = BENCHMARK.run(config)
    assert set(result["seconds_per_chunk"]) == {"dense", "whole_layer", "blocked"}
    assert result["speedup_blocked_vs_dense"] > 0 and result["active_links"] < result["links"]
