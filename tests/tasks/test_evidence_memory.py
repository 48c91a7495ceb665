"""`bbpes.tasks.evidence_memory`: the evidence configuration of one measurement, the
values it states for the `evidence` experiment agree with that experiment's defaults,
and a sweep's metrics."""

from __future__ import annotations

import pytest

from bbpes.bench import network
from bbpes.experiments import get
from bbpes.tasks import evidence_memory
from bbpes.tasks.evidence_memory import Sweep, measurement_config

MEMORY = get("memory")


@pytest.mark.parametrize("values", [evidence_memory.EVIDENCE_VALUES, network.EVIDENCE_VALUES])
def test_the_evidence_values_stated_are_the_evidence_experiments_defaults(values):
    defaults = get("evidence").defaults
    assert {key: defaults[key] for key in values} == values


def test_a_measurement_holds_the_inputs_longer_and_keeps_the_sizes_and_knobs():
    config = MEMORY.config({"n_cells": 8, "n_inputs": 5, "samples": 6, "x64": True})
    sub = measurement_config(config, 300.0)
    assert sub["hold"] == 60.0 and sub["ode_max_steps"] == 0
    assert sub["n_cells"] == 8 and sub["samples"] == 6 and sub["es_chunk"] == 0
    assert sub["x64"] is True and sub["neuron"] == "morris_lecar"
    assert "lengths_ms" not in sub and "method" not in sub


def test_a_sweeps_metrics_name_method_and_length():
    sweep = Sweep(
        [10.0, 100.0], {"es": [4, 4], "bptt": [4, 40]}, {"es": [None, 9], "bptt": [None, None]}
    )
    assert sweep.metrics() == {
        "peak_bytes_es_10ms": 4,
        "peak_bytes_es_100ms": 4,
        "rss_bytes_es_100ms": 9,
        "growth_es": 1.0,
        "peak_bytes_bptt_10ms": 4,
        "peak_bytes_bptt_100ms": 40,
        "growth_bptt": 10.0,
    }
