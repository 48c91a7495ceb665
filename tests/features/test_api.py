"""`extract`'s contract: shapes, batching under jit and vmap, names, settings, the
padding of per-spike arrays, float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.features import ALIASES, FEATURES, FeatureSettings, extract, extract_arrays

NAMES = ["Spikecount", "AP_amplitude", "ISI_CV"]
CHEAP = ["Spikecount", "voltage_base"]  # quick to compile


@pytest.fixture(scope="module")
def few(synthetic):
    """Six traces sampled at 0.1 ms: silent, one spike, regular, adapting, bursting..."""
    return synthetic[0.1][[1, 3, 10, 40, 60, 80]]


@pytest.fixture(scope="module")
def few_values(few):
    return extract(few, 0.1, 50.0, 250.0, NAMES)


def test_any_batch_shape(few):
    flat = extract(few, 0.1, 50.0, 250.0, CHEAP)
    nested = extract(few.reshape(2, 3, -1), 0.1, 50.0, 250.0, CHEAP)
    one = extract(few[2], 0.1, 50.0, 250.0, CHEAP)
    for name in CHEAP:
        assert nested[name].shape == (2, 3) and one[name].shape == ()
        np.testing.assert_array_equal(np.asarray(nested[name]).ravel(), flat[name])
        np.testing.assert_array_equal(one[name], flat[name][2])


def test_composes_with_jit_and_vmap(few):
    expected = extract(few, 0.1, 50.0, 250.0, CHEAP)["Spikecount"]

    @jax.jit
    def count(v):
        return extract(v, 0.1, 50.0, 250.0, CHEAP)["Spikecount"]

    np.testing.assert_array_equal(count(jnp.asarray(few)), expected)
    np.testing.assert_array_equal(jax.vmap(count)(jnp.asarray(few)[:, None])[:, 0], expected)


def test_names(few):
    values = extract(few, 0.1, 50.0, 250.0, ["spike_count", *CHEAP])
    np.testing.assert_array_equal(values["spike_count"], values["Spikecount"])
    assert set(ALIASES) <= set(values) | {"spike_count_stimint"}
    assert list(extract(few, 0.1, 50.0, 250.0, "Spikecount")) == ["Spikecount"]
    with pytest.raises(ConfigError, match="unknown feature"):
        extract(few, 0.1, 50.0, 250.0, ["Spikecount", "AP_amplitud"])
    with pytest.raises(ConfigError, match="soft=True"):
        extract(few, 0.1, 50.0, 250.0, NAMES, deficits=True)
    assert len(FEATURES) == len(set(FEATURES)) >= 18


def test_settings_are_checked():
    with pytest.raises(ConfigError):
        FeatureSettings(interp_step=0.0)
    with pytest.raises(ConfigError):
        FeatureSettings(voltage_base_mode="mode")
    with pytest.raises(ConfigError):
        FeatureSettings(max_spikes=0)
    with pytest.raises(ConfigError, match="stim_end"):
        extract(np.zeros(100), 0.1, 5.0, 5.0, NAMES)
    assert hash(FeatureSettings()) == hash(FeatureSettings())


@pytest.mark.slow  # compile-heavy: make test-slow (the default suite stays under 10 min)
def test_time_column_equals_dt(few, few_values):
    t = np.arange(few.shape[-1]) * 0.1
    a = few_values
    b = extract(few, 0.1, 50.0, 250.0, NAMES, time=t)
    for name in NAMES:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.slow  # compile-heavy: make test-slow (the default suite stays under 10 min)
def test_more_spikes_than_padding(few, few_values):
    """Past `max_spikes`, the count stays exact, per-spike features are NaN and the
    arrays say `truncated`."""
    settings = FeatureSettings(max_spikes=4)
    full = few_values
    small = extract_arrays(few, 0.1, 50.0, 250.0, NAMES, settings=settings)
    over = np.asarray(full["Spikecount"]) > 4
    assert over.any() and (~over).any()
    np.testing.assert_array_equal(small.features["Spikecount"], full["Spikecount"])
    np.testing.assert_array_equal(small.truncated, over)
    assert np.isnan(np.asarray(small.features["AP_amplitude"])[over]).all()
    kept = ~over & ~np.isnan(np.asarray(full["AP_amplitude"]))
    np.testing.assert_array_equal(
        np.asarray(small.features["AP_amplitude"])[kept], np.asarray(full["AP_amplitude"])[kept]
    )
    assert small.peak_indices.shape == (6, 4)


@pytest.mark.slow  # compile-heavy: make test-slow (the default suite stays under 10 min)
def test_float32_matches_float64(synthetic, reference):
    """In float32 (JAX's default) the values stay within 1e-4 of float64's."""
    names = ["Spikecount", "time_to_first_spike", "ISI_CV", "AP_amplitude", "AHP_depth_abs"]
    single = extract(synthetic[0.1].astype(np.float32), 0.1, 50.0, 250.0, names)
    for name in names:
        ours, want = np.asarray(single[name]), reference[0.1].hard[name]
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(want), err_msg=name)
        ok = ~np.isnan(want)
        np.testing.assert_allclose(ours[ok], want[ok], rtol=1e-4, err_msg=name)


@pytest.mark.slow  # compile-heavy: make test-slow (the default suite stays under 10 min)
def test_settings_reach_efel_semantics(few, efel_of):
    """Non-default settings give eFEL's values under the same settings
    (`FeatureSettings.efel_settings`)."""
    settings = FeatureSettings(threshold=-30.0, derivative_threshold=15.0, interp_step=0.05,
                               voltage_base_mode="median", ignore_first_ISI=False)  # fmt: skip
    names = ["Spikecount", "AP_amplitude", "ISI_CV", "voltage_base"]
    ours = extract(few, 0.1, 50.0, 250.0, names, settings=settings)
    theirs = efel_of(few, 0.1, names, settings.efel_settings())
    for name in names:
        want = np.array([np.nan if r[name] is None else r[name] for r in theirs])
        np.testing.assert_allclose(ours[name], want, rtol=1e-12, err_msg=name)
