"""`bbpes bench roofline` on a tiny network: the work count and the ratios it reports."""

from __future__ import annotations

import pytest

from bbpes.bench import run_benchmark
from bbpes.bench.roofline import matmul_peak

TINY = {"n_cells": "16", "batch": "2", "samples": "3", "n_inputs": "5", "hold": "2", "repeat": "1"}


def test_matmul_peak_is_a_rate():
    peak = matmul_peak(128, repeat=2)
    assert peak["flops_per_s"] == pytest.approx(2 * 128**3 / peak["seconds"])


def test_roofline_counts_the_matmul_and_the_cell_update(tmp_path):
    out = run_benchmark("roofline", {**TINY, "matmul_size": "256"}, out=str(tmp_path / "r.json"))
    n, k = 16, 3
    # the fused recurrent + readout matmul is 2 (N + K) FLOPs per neuron-step; the cell's
    # update adds more, and 5 transcendentals (m_inf, w_inf, cosh, exp of T(V), ...)
    assert out["flops_per_neuron_step"] > 2 * (n + k)
    assert out["transcendentals_per_neuron_step"] >= 3
    assert 0 < out["matmul_share_of_flops"] < 1
    assert out["fraction_of_peak"] == pytest.approx(
        out["achieved_flops_per_s"] / out["matmul_peak_flops_per_s"]
    )
    assert (tmp_path / "r.json").exists()
