"""The soft form: finite everywhere, differentiable with finite non-zero gradients, and
within `SOFT_TOLERANCES` of the hard form at a small temperature."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.features import FEATURES, SOFT_TOLERANCES, extract
from bbpes.features._feature import REGISTRY
from bbpes.features.extract import _extract

TAU = 1e-3  # mV


def longest_excursion(voltage: np.ndarray, dt: float, threshold: float = -20.0) -> np.ndarray:
    """(n,) ms: the longest stretch of each trace above threshold."""
    above = voltage > threshold
    run = np.zeros(voltage.shape[0], int)
    best = np.zeros(voltage.shape[0], int)
    for column in above.T:
        run = np.where(column, run + 1, 0)
        best = np.maximum(best, run)
    return best * dt


@pytest.fixture(scope="module")
def soft_values(synthetic):
    """{temperature: (values, deficits)} on the traces sampled at 0.1 ms."""
    return {
        tau: extract(
            synthetic[0.1], 0.1, 50.0, 250.0, FEATURES, soft=True, temperature=tau, deficits=True
        )
        for tau in (1.0, TAU)
    }


def test_soft_is_finite_everywhere(soft_values):
    for values, deficits in soft_values.values():
        for name in FEATURES:
            assert np.isfinite(values[name]).all(), name
            assert np.isfinite(deficits[name]).all() and (np.asarray(deficits[name]) >= 0).all()


def test_soft_tends_to_hard(synthetic, reference, soft_values):
    hard = reference[0.1].hard
    resolved = longest_excursion(synthetic[0.1], 0.1) <= 5.0
    assert resolved.sum() >= 120
    values, _ = soft_values[TAU]
    for name in FEATURES:
        rtol, atol = SOFT_TOLERANCES[name]
        h, s = hard[name], np.asarray(values[name])
        keep = resolved & ~np.isnan(h)
        bad = np.abs(s[keep] - h[keep]) > atol + rtol * np.abs(h[keep])
        assert not bad.any(), (name, s[keep][bad][:3], h[keep][bad][:3])


def test_deficit_says_which_traces_lack_spikes(reference, soft_values):
    """At a small temperature the deficit is zero exactly where the spikes a feature
    needs are there, and at least one spike where they are not."""
    hard = reference[0.1].hard
    _, deficits = soft_values[TAU]
    for name in ("time_to_first_spike", "inv_first_ISI", "ISI_CV"):
        defined = ~np.isnan(hard[name]) | (hard["Spikecount"] > 64)
        d = np.asarray(deficits[name])
        assert (d[defined] < 1e-6).all() and (d[~defined] >= 1 - 1e-6).all(), name
    assert (np.asarray(deficits["voltage_base"]) == 0).all()


def test_gradient_is_finite(synthetic, reference):
    """The gradient of a loss of a few soft features is finite and reaches the trace."""
    hard = reference[0.1].hard
    i = int(np.nonzero(hard["Spikecount"] >= 6)[0][0])
    names = ["Spikecount", "time_to_first_spike", "AP_amplitude"]

    def loss(v):
        values = extract(v, 0.1, 50.0, 250.0, names, soft=True, temperature=0.5)
        return sum(values[n] for n in names)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(synthetic[0.1][i])))
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0


@pytest.mark.slow
def test_gradients_are_finite_and_reach_the_trace(synthetic, reference):
    """d feature / d voltage (one program for all features, `jax.jacrev`) is finite,
    and non-zero for each feature on a regularly spiking trace."""
    hard = reference[0.1].hard
    i = int(np.nonzero((hard["Spikecount"] >= 6) & ~np.isnan(hard["AP_duration_half_width"]))[0][0])

    def features(v):
        values = extract(v, 0.1, 50.0, 250.0, FEATURES, soft=True, temperature=0.5)
        return jnp.stack([values[n] for n in FEATURES])

    jac = np.asarray(jax.jacrev(features)(jnp.asarray(synthetic[0.1][i])))
    assert np.isfinite(jac).all()
    for name, row in zip(FEATURES, jac):
        assert np.abs(row).max() > 0, name


def test_spike_count_gradient_near_threshold():
    """A bump peaking 1 mV below threshold: the soft spike count is small but its
    gradient raises the bump's top."""
    t = np.arange(0, 300, 0.1)
    v = -70.0 + 49.0 * np.exp(-(((t - 150.0) / 2.0) ** 2))

    def count(v):
        return extract(v, 0.1, 50.0, 250.0, ["Spikecount"], soft=True, temperature=1.0)[
            "Spikecount"
        ]

    assert 0 < float(count(v)) < 0.5
    grad = np.asarray(jax.grad(count)(jnp.asarray(v)))
    assert np.isfinite(grad).all() and grad[np.argmax(v)] > 0


def test_temperature_does_not_recompile(synthetic, soft_values):
    size = _extract._cache_size()
    extract(synthetic[0.1], 0.1, 50.0, 250.0, FEATURES, soft=True, temperature=0.3, deficits=True)
    assert _extract._cache_size() == size


def test_every_feature_documents_its_soft_form():
    for name, feature in REGISTRY.items():
        doc = feature.compute.__doc__ or ""
        assert "Soft" in doc or "soft" in doc, name
