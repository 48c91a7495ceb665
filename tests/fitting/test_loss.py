"""The fit losses: eFEL's distance (checked against `efel.get_distance` itself), the
penalty for a feature a trace does not produce, the soft form, the trace MSE."""

from __future__ import annotations

import efel
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.fitting import CurrentClamp, simulate
from bbpes.fitting.loss import PENALTY, FeatureLoss, FeatureTarget, TraceMSE, WeightedLoss
from bbpes.neurons.neuron_hh import NeuronHH

PROTOCOL = CurrentClamp(
    amplitudes=(0.0, 0.05), start=50.0, end=250.0, duration=300.0, record_every=4
)
DT = PROTOCOL.dt * PROTOCOL.record_every


@pytest.fixture(scope="module")
def traces():
    """A silent sweep (no current) and a spiking one of a 10 x 10 µm `hh` soma."""
    return np.asarray(simulate(NeuronHH(diam=10.0, L=10.0), PROTOCOL), dtype=np.float64)


def efel_distance(v, name, mean, std):
    efel.reset()
    trace = {"T": np.arange(v.size) * DT, "V": v, "stim_start": [50.0], "stim_end": [250.0]}
    return efel.get_distance(trace, name, mean, std, trace_check=False)


CASES = (
    ("Spikecount", 3.0, 0.5),
    ("mean_frequency", 20.0, 2.0),
    ("time_to_first_spike", 10.0, 1.0),
    ("voltage_base", -60.0, 1.0),
    ("inv_first_ISI", 30.0, 3.0),
)
EFEL_NAMES = {"Spikecount": "spike_count"}  # eFEL 5's name (the old one is deprecated)


def test_hard_scores_are_efels_distance(traces):
    """On the spiking sweep, and on the silent one (the penalty where eFEL has no
    value), each score is `efel.get_distance` of the same trace, to float32 rounding."""
    for sweep in (0, 1):
        targets = tuple(FeatureTarget(n, sweep, m, s) for n, m, s in CASES)
        ours = np.asarray(FeatureLoss(targets, 50.0, 250.0, DT).scores(jnp.asarray(traces)))
        for (name, mean, std), score in zip(CASES, ours):
            theirs = efel_distance(traces[sweep], EFEL_NAMES.get(name, name), mean, std)
            assert score == pytest.approx(theirs, rel=2e-3, abs=2e-3), (name, sweep)


def test_a_feature_the_trace_lacks_scores_the_penalty(traces):
    loss = FeatureLoss((FeatureTarget("AP_amplitude", 0, 80.0, 4.0),), 50.0, 250.0, DT)
    assert float(loss(jnp.asarray(traces))) == PENALTY


def test_the_loss_is_zero_at_the_target_and_weighs_its_features(traces):
    v = jnp.asarray(traces)
    from bbpes.features import extract

    got = extract(v, DT, 50.0, 250.0, ("AP_amplitude", "voltage_base"))
    exact = (
        FeatureTarget("AP_amplitude", 1, float(got["AP_amplitude"][1]), 4.0),
        FeatureTarget("voltage_base", 1, float(got["voltage_base"][1]), 1.0, weight=3.0),
    )
    loss = FeatureLoss(exact, 50.0, 250.0, DT).with_soft_targets(v)
    assert float(loss(v)) == pytest.approx(0.0, abs=1e-5)
    assert float(loss(v, soft=True)) == pytest.approx(0.0, abs=1e-5)
    off = FeatureLoss(
        (exact[0], FeatureTarget("voltage_base", 1, exact[1].mean + 2.0, 1.0, weight=3.0)),
        50.0, 250.0, DT,
    )  # fmt: skip
    assert float(off(v)) == pytest.approx(3.0 * 2.0 / 4.0, rel=1e-4)  # weighted mean


@pytest.mark.slow  # a gradient through the simulation and the soft features: .ci/run
def test_the_soft_loss_has_a_finite_gradient_in_the_parameters():
    short = CurrentClamp(amplitudes=(0.05,), start=10.0, end=60.0, duration=70.0, record_every=4)
    target = simulate(NeuronHH(diam=10.0, L=10.0), short)
    loss = FeatureLoss(
        (FeatureTarget("Spikecount", 0, 3.0, 0.5), FeatureTarget("AP_amplitude", 0, 80.0, 4.0)),
        10.0, 60.0, DT, temperature=2.0,
    ).with_soft_targets(target)  # fmt: skip

    def f(gnabar):
        return loss(simulate(NeuronHH(diam=10.0, L=10.0, gnabar=gnabar), short), True)

    g = jax.grad(f)(0.1)
    assert np.isfinite(float(g)) and float(g) != 0.0


def test_trace_mse_and_weighted_sums(traces):
    v = jnp.asarray(traces)
    mse = TraceMSE(traces, scale=10.0)
    assert float(mse(v)) == 0.0
    assert float(mse(v + 10.0)) == pytest.approx(1.0)
    both = WeightedLoss((mse, mse), (1.0, 2.0))
    assert float(both(v + 10.0)) == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="differ in shape"):
        mse(v[:, :-1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(feature="nope", sweep=0, mean=1.0, std=1.0), "unknown feature"),
        (dict(feature="Spikecount", sweep=0, mean=1.0, std=0.0), "std must be > 0"),
        (dict(feature="Spikecount", sweep=0, mean=float("nan"), std=1.0), "no value"),
        (dict(feature="Spikecount", sweep=0, mean=1.0, std=1.0, weight=-1.0), "weight"),
    ],
)
def test_bad_targets_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FeatureTarget(**kwargs)
