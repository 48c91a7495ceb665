"""The hard form against eFEL: its own test trace and expected values, and synthetic
traces against the installed eFEL, within `bbpes.features.TOLERANCES` (133 traces at
0.1 ms by default; with `-m slow` also at 0.025 and 0.25 ms, 399 in all)."""

from __future__ import annotations

import numpy as np
import pytest

from bbpes.features import FEATURES, TOLERANCES, FeatureSettings, extract, extract_arrays
from bbpes.features._feature import REGISTRY

ARRAYS = {  # SpikeArrays field: (eFEL's name, count field)
    "peak_indices": ("peak_indices", "spike_count"),
    "min_AHP_indices": ("min_AHP_indices", "min_AHP_count"),
    "AP_begin_indices": ("AP_begin_indices", "AP_begin_count"),
    "AP_end_indices": ("AP_end_indices", "AP_end_count"),
}


def close(name: str, ours, theirs) -> np.ndarray:
    """Elementwise agreement within TOLERANCES (on 1/tau for the decay time constant)."""
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    rtol, atol = TOLERANCES[name]
    if name == "decay_time_constant_after_stim":
        ours, theirs = 1 / ours, 1 / theirs
    return np.abs(ours - theirs) <= atol + rtol * np.abs(theirs)


@pytest.fixture(scope="module")
def testdata_arrays(testdata):
    t, v, _ = testdata
    return extract_arrays(v, 0.25, 700.0, 2700.0, FEATURES, time=t)


def test_testdata_matches_efel_expected_results(testdata, testdata_arrays):
    _, _, expected = testdata
    values = testdata_arrays.features
    peaks = expected["peak_time"]
    expected = {
        **expected,
        "Spikecount": [len(peaks)],
        "Spikecount_stimint": [sum(700.0 <= x <= 2700.0 for x in peaks)],
    }
    for name in FEATURES:
        want = np.mean(expected[name])
        assert close(name, values[name], want), (name, values[name], want)


def test_testdata_arrays_match_efel_expected_results(testdata, testdata_arrays):
    _, _, expected = testdata
    arrays = testdata_arrays
    for field, (name, count) in ARRAYS.items():
        n = int(getattr(arrays, count))
        np.testing.assert_array_equal(np.asarray(getattr(arrays, field))[:n], expected[name])
    n = len(expected["AP_rise_indices"])
    assert int(arrays.half_width_valid.sum()) == n
    np.testing.assert_array_equal(arrays.AP_rise_indices[:n], expected["AP_rise_indices"])
    np.testing.assert_array_equal(arrays.AP_fall_indices[:n], expected["AP_fall_indices"])
    np.testing.assert_array_equal(arrays.peak_time[:n], expected["peak_time"])


def test_synthetic_traces_cover_the_cases(reference):
    """The synthetic set holds silent traces, single spikes, regular and bursting
    trains, traces past `max_spikes`, and traces spiking outside the stimulus."""
    values = reference[0.1].hard
    count = values["Spikecount"]
    assert (count == 0).sum() >= 3 and (count == 1).sum() >= 3
    assert (count >= 4).sum() >= 80 and (count > 64).sum() >= 1
    assert (values["Spikecount_stimint"] < np.minimum(count, 64)).sum() >= 5


def check_parity(ref) -> None:
    """Every feature of `ref`'s traces as eFEL's, NaN where eFEL has None."""
    ends_short = np.array([
        (a["AP_end_indices"] is None and a["AP_begin_indices"] is not None)
        or (a["AP_end_indices"] is not None and a["AP_begin_indices"] is not None
            and len(a["AP_end_indices"]) < min(len(a["AP_begin_indices"]), len(a["peak_indices"])))
        for a in ref.efel_arrays
    ])  # fmt: skip
    truncated = ref.hard["Spikecount"] > FeatureSettings().max_spikes
    for name in FEATURES:
        theirs = np.array([np.nan if r[name] is None else r[name] for r in ref.efel])
        ours = ref.hard[name]
        skip = truncated if REGISTRY[name].per_spike else np.zeros_like(truncated)
        assert np.isnan(ours[skip]).all(), name  # NaN past max_spikes, by design
        if name == "AP_duration_half_width":  # eFEL reads past AP_end_indices there
            skip = skip | ends_short
        keep = ~skip
        np.testing.assert_array_equal(np.isnan(ours[keep]), np.isnan(theirs[keep]), err_msg=name)
        both = keep & ~np.isnan(theirs)
        assert both.sum() >= 30, name
        bad = np.nonzero(~close(name, ours[both], theirs[both]))[0]
        assert bad.size == 0, (name, ref.dt, ours[both][bad[:5]], theirs[both][bad[:5]])


def test_synthetic_traces_match_efel(reference):
    check_parity(reference[0.1])


@pytest.mark.slow
@pytest.mark.parametrize("dt", [0.025, 0.25])
def test_synthetic_traces_match_efel_at_other_steps(reference, dt):
    check_parity(reference[dt])


def test_synthetic_arrays_match_efel(reference):
    arrays = reference[0.1].arrays
    for i, theirs in enumerate(reference[0.1].efel_arrays):
        if arrays.truncated[i]:
            continue
        for field, (name, count) in ARRAYS.items():
            n = int(getattr(arrays, count)[i])
            want = [] if theirs[name] is None else theirs[name]
            got = np.asarray(getattr(arrays, field))[i, :n]
            np.testing.assert_array_equal(got, want, err_msg=f"trace {i}, {name}")
        if theirs["AP_rise_indices"] is not None and theirs["AP_fall_indices"] is not None:
            n = int(np.asarray(arrays.half_width_valid[i]).sum())
            for field in ("AP_rise_indices", "AP_fall_indices"):
                got = np.asarray(getattr(arrays, field))[i, :n]
                np.testing.assert_array_equal(got, theirs[field][:n], err_msg=f"{i} {field}")


@pytest.mark.slow
def test_more_spikes_than_max_spikes_with_a_larger_padding(synthetic, reference):
    """The traces past the default padding match eFEL with `max_spikes` raised."""
    ref = reference[0.1]
    many = np.nonzero(np.array([r["Spikecount"] for r in ref.efel]) > 64)[0]
    settings = FeatureSettings(max_spikes=256)
    values = extract(synthetic[0.1][many], 0.1, 50.0, 250.0, FEATURES, settings=settings)
    for name in FEATURES:
        theirs = np.array([ref.efel[i][name] for i in many], float)
        assert close(name, values[name], theirs).all(), name
