"""Reading current-clamp recordings: BluePyEfe's cell B6 (Igor waves), an Axon file
and an NWB file written by tests/fixtures/recordings/make_fixtures.py, CSV files in
every unit, and a one-line ConfigError for every bad input."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest

from bbpes.errors import ConfigError
from bbpes.fitting.recordings import Recording, Step, read_recording, write_csv

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "recordings"
EPHYS = Path(os.environ.get("BBPES_TEST_EPHYS", ROOT.parent / "shared" / "data" / "ephys"))
B6 = range(181, 186)
B6_STEP_PA = (106.0, 162.0, 225.0, 284.0, 341.0)  # README: median current during the step


def b6_files(channel: int) -> list[Path]:
    files = [EPHYS / "bluepyefe" / f"B6_Ch{channel}_IDRest_{k}.ibw" for k in B6]
    if not files[0].exists():
        pytest.fail(f"BluePyEfe's recordings not found in {EPHYS}; set BBPES_TEST_EPHYS")
    return files


@pytest.fixture(scope="module")
def b6() -> Recording:
    return read_recording(b6_files(3), b6_files(0), ljp=14.0)


def test_b6_sweeps_and_step(b6):
    assert b6.n_sweeps == 5 and b6.voltage.shape == (5, 12000) and b6.current.shape == (5, 12000)
    assert b6.dt == pytest.approx(0.25)
    assert b6.duration == pytest.approx(3000.0)
    assert b6.times[-1] == pytest.approx(2999.75)
    assert abs(b6.start - 700.25) <= b6.dt and abs(b6.end - 2700.0) <= b6.dt
    assert b6.end - b6.start == pytest.approx(2000.0)
    np.testing.assert_allclose(np.array(b6.holding) * 1e3, -12.5, atol=1.0)
    during = (np.array(b6.amplitudes) + np.array(b6.holding)) * 1e3
    np.testing.assert_allclose(during, B6_STEP_PA, atol=3.0)
    assert all(a > 0.1 for a in b6.amplitudes)  # nA above holding, increasing
    assert list(b6.amplitudes) == sorted(b6.amplitudes)
    assert len(b6.source) == 10 and b6.source[0].endswith("B6_Ch3_IDRest_181.ibw")


def test_b6_junction_potential_is_subtracted(b6):
    assert b6.ljp == 14.0
    raw = read_recording(b6_files(3)[:1], b6_files(0)[:1])
    np.testing.assert_allclose(raw.voltage[0] - b6.voltage[0], 14.0, atol=1e-9)
    peaks = b6.voltage.max(axis=1)
    assert np.all((peaks > 15.0 - 14.0) & (peaks < 20.0 - 14.0)), peaks  # +16..+19 mV raw
    rest = np.median(b6.voltage[:, : int(b6.start / b6.dt)], axis=1)
    assert np.all((rest > -100.0) & (rest < -70.0)), rest


def test_b6_protocol(b6):
    pytest.importorskip("bbpes.fitting.protocol")
    protocol = b6.protocol()
    assert protocol.amplitudes == b6.amplitudes
    assert (protocol.start, protocol.end, protocol.duration) == (b6.start, b6.end, 3000.0)
    assert protocol.dt == 0.025 and protocol.record_every == 10
    assert protocol.holding == pytest.approx(b6.holding[0])  # one shared holding current
    assert b6.protocol(dt=0.05).record_every == 5
    with pytest.raises(ConfigError, match="not a multiple"):
        b6.protocol(dt=0.1)


def test_b6_sweep_selection_and_csv_round_trip(b6, tmp_path):
    two = read_recording(b6_files(3), b6_files(0), ljp=14.0, sweeps=[0, 4])
    np.testing.assert_array_equal(two.voltage, b6.voltage[[0, 4]])
    assert two.amplitudes == (b6.amplitudes[0], b6.amplitudes[4])
    write_csv(two, tmp_path / "b6.csv")
    back = read_recording(tmp_path / "b6.csv")
    np.testing.assert_array_equal(back.voltage, two.voltage)
    np.testing.assert_array_equal(back.current, two.current)
    assert back.dt == pytest.approx(two.dt, rel=1e-12)
    assert (back.start, back.end) == pytest.approx((two.start, two.end))
    assert back.amplitudes == pytest.approx(two.amplitudes)
    assert back.holding == pytest.approx(two.holding)


# A synthetic cell: 1,000 samples at 0.1 ms, a step from 20 to 80 ms on -10 pA holding.
T, DT, START, END = 1000, 0.1, 20.0, 80.0
AMPS = (0.05, 0.1, 0.15)  # nA


def synthetic(noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """time (ms), voltage (3, T) mV, current (3, T) nA."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) * DT
    on = (t >= START) & (t < END)
    current = -0.01 + np.array(AMPS)[:, None] * on + noise * rng.standard_normal((3, T))
    voltage = -70.0 + 100.0 * current + rng.standard_normal((3, T))
    return t, voltage, current


def write_table(path: Path, columns, header: str | None = None, sep: str = ",") -> Path:
    rows = np.column_stack(columns)
    lines = ([header] if header else []) + [sep.join(map(repr, r)) for r in rows.tolist()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_round_trip_without_current(tmp_path):
    _, voltage, _ = synthetic()
    rec = Recording(voltage, DT, None, AMPS, (-0.01,) * 3, START, END, ljp=7.0)
    write_csv(rec, tmp_path / "r.csv")
    back = read_recording(tmp_path / "r.csv")
    np.testing.assert_array_equal(back.voltage, voltage)
    assert (back.start, back.end, back.dt) == pytest.approx((START, END, DT))
    assert back.amplitudes == pytest.approx(AMPS) and back.holding == pytest.approx((-0.01,) * 3)
    assert back.ljp == 0.0  # the file holds the corrected voltage
    assert "7.0 mV subtracted" in (tmp_path / "r.csv").read_text().splitlines()[0]


def test_csv_units_by_setting_and_by_header(tmp_path):
    t, voltage, current = synthetic()
    files = [write_table(tmp_path / f"s{k}.txt", [t * 1e-3, voltage[k] * 1e-3, current[k] * 1e3],
                         sep=" ") for k in range(3)]  # fmt: skip
    rec = read_recording(files, time_unit="s", voltage_unit="V", current_unit="pA")
    np.testing.assert_allclose(rec.voltage, voltage, rtol=1e-12)
    np.testing.assert_allclose(rec.current, current, rtol=1e-12, atol=1e-15)
    assert rec.dt == pytest.approx(DT) and (rec.start, rec.end) == pytest.approx((START, END))
    assert rec.amplitudes == pytest.approx(AMPS)
    header = "t (s);V [V];I_pA;v_1 (mV);i_1 (nA)"
    one = write_table(
        tmp_path / "multi.csv",
        [t * 1e-3, voltage[0] * 1e-3, current[0] * 1e3, voltage[1], current[1]],
        header,
        sep=";",
    )
    rec = read_recording(one)
    np.testing.assert_allclose(rec.voltage, voltage[:2], rtol=1e-12)
    assert rec.amplitudes == pytest.approx(AMPS[:2])
    with pytest.raises(ConfigError, match="header gives the voltage in V but voltage_unit is 'mV'"):
        read_recording(one, voltage_unit="mV")


def test_separate_current_files_and_given_step(tmp_path):
    t, voltage, current = synthetic()
    vfiles = [write_table(tmp_path / f"v{k}.csv", [t, voltage[k]]) for k in range(3)]
    ifiles = [write_table(tmp_path / f"i{k}.csv", [t, current[k] * 1e3]) for k in range(3)]
    rec = read_recording(vfiles, ifiles, current_unit="pA", ljp=10.0)
    np.testing.assert_allclose(rec.voltage, voltage - 10.0)
    assert rec.amplitudes == pytest.approx(AMPS)
    given = read_recording(vfiles, step=(START, END, (0.2, 0.3, 0.4), -0.02))
    assert given.current is None and given.amplitudes == (0.2, 0.3, 0.4)
    assert given.holding == (-0.02,) * 3
    assert read_recording(vfiles[:1], step=Step(10.0, 50.0, 0.1)).amplitudes == (0.1,)


def test_step_found_through_noise_spikes_and_zero_sweeps():
    from bbpes.fitting.recordings import _find_step

    _, _, current = synthetic(noise=0.004, seed=1)
    digitised = np.round(np.random.default_rng(2).standard_normal(T))  # mostly repeats
    current[1] = -0.01 + 0.003125 * digitised  # a 0 pA sweep, 3.125 pA per level as B6's
    current[0, [50, 400, 900]] += [0.3, -0.3, 0.3]  # spikes twice the step
    current[2] = -0.01 - (current[2] + 0.01)  # a hyperpolarising step
    start, end, amplitudes, holding = _find_step(current, DT)
    assert (start, end) == pytest.approx((START, END))
    assert amplitudes == pytest.approx((0.05, 0.0, -0.15), abs=2e-3)
    assert holding == pytest.approx((-0.01,) * 3, abs=2e-3)


def test_axon_file_with_voltage_and_current_channels():
    rec = read_recording(FIXTURES / "passive.abf")
    assert rec.n_sweeps == 3 and rec.voltage.shape == (3, 1000) and rec.dt == pytest.approx(0.1)
    assert (rec.start, rec.end) == pytest.approx((20.0, 80.0))
    assert rec.amplitudes == pytest.approx((0.05, 0.1, 0.15)) and rec.holding == pytest.approx(
        (-0.01,) * 3
    )
    # passive cell (R = 200 MΩ, τ = 10 ms): -72 mV on -10 pA, then 60 ms = 6 τ of charging
    np.testing.assert_allclose(rec.voltage[:, 0], -72.0, atol=0.01)
    target = -70.0 + 200.0 * (np.array(rec.amplitudes) - 0.01)
    v_end = target + (-72.0 - target) * np.exp(-6.0)
    np.testing.assert_allclose(rec.voltage[:, 799], v_end, atol=0.05)


def test_format_dispatch(tmp_path):
    renamed = tmp_path / "passive.bin"
    renamed.write_bytes((FIXTURES / "passive.abf").read_bytes())
    assert read_recording(renamed, format="abf").n_sweeps == 3
    with pytest.raises(ConfigError, match=r"unknown recording format '\.bin'.*format="):
        read_recording(renamed)
    with pytest.raises(ConfigError, match="unknown recording format 'xyz'"):
        read_recording(renamed, format="xyz")
    with pytest.raises(ConfigError, match=r"not a readable CSV file|not a table of numbers"):
        read_recording(renamed, format="csv")
    fake = tmp_path / "fake.abf"
    fake.write_text("time,voltage\n0,1\n")
    with pytest.raises(ConfigError, match="not a readable abf file"):
        read_recording(fake)
    fake_igor = tmp_path / "fake.ibw"
    fake_igor.write_bytes(b"\x05\x00" + bytes(200))
    with pytest.raises(ConfigError, match="not a readable igor file"):
        read_recording(fake_igor)


def test_nwb_needs_pynwb(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pynwb" else find_spec(name)
    )
    with pytest.raises(ConfigError, match="pip install pynwb"):
        read_recording(FIXTURES / "passive.nwb")


def test_nwb_file():
    pytest.importorskip("pynwb")
    rec = read_recording(FIXTURES / "passive.nwb")
    assert rec.n_sweeps == 3 and rec.dt == pytest.approx(0.1)
    assert (rec.start, rec.end) == pytest.approx((20.0, 80.0))
    assert rec.amplitudes == pytest.approx((0.05, 0.1, 0.15))


def bad_inputs(tmp: Path):
    """(name, voltage paths, current paths, settings, message) of bad recordings."""
    t, v, i = synthetic()
    good = write_table(tmp / "good.csv", [t, v[0], i[0]])
    flat = write_table(tmp / "flat.csv", [t, v[0], np.full(T, -0.01)])
    nan = v[0].copy()
    nan[7] = np.nan
    half = write_table(tmp / "half.csv", [t[:500], v[0, :500], i[0, :500]])
    return [
        ("missing", tmp / "nope.csv", None, {}, "recording file not found: .*nope.csv"),
        ("nan", write_table(tmp / "nan.csv", [t, nan, i[0]]), None, {}, "NaN .* sample 7"),
        ("volts as mV", write_table(tmp / "V.csv", [t, v[0] / 1e3, i[0]]), None, {}, "voltage_unit='V'"),
        ("mV as V", good, None, {"voltage_unit": "V"}, "mV read as volts"),
        ("pA as nA", write_table(tmp / "pA.csv", [t, v[0], i[0] * 1e3]), None, {}, "current_unit='pA'"),
        ("nA as pA", good, None, {"current_unit": "pA"}, "current_unit='nA'"),
        ("s as ms", write_table(tmp / "s.csv", [t / 1e3, v[0], i[0]]), None, {}, "seconds given as ms"),
        ("no step", flat, None, {}, "no current step found"),
        ("lengths", [good, half], None, {}, "different lengths"),
        ("dt", [good, write_table(tmp / "dt.csv", [2 * t, v[0], i[0]])], None, {}, "different steps"),
        ("count", [good, good], [good], {}, "2 voltage sweeps but 1 current sweeps"),
        ("current length", good, half, {}, "1000 samples but current sweeps 500"),
        ("no current", write_table(tmp / "v.csv", [t, v[0]]), None, {}, "no current trace .* step="),
        ("step range", good, None, {"step": (20.0, 500.0, 0.1)}, "step from 20 to 500 ms"),
        ("step count", good, None, {"step": (20.0, 50.0, (0.1, 0.2))}, "2 values for 1 sweeps"),
        ("sweeps", good, None, {"sweeps": [3]}, r"sweeps \[3\] out of range"),
        ("gaps", write_table(tmp / "gap.csv", [np.r_[t[:500], t[500:] + 5], v[0], i[0]]), None, {}, "not evenly spaced"),
        ("columns", write_table(tmp / "4.csv", [t, v[0], i[0], i[0]]), None, {}, "4 columns and no header"),
        ("name", write_table(tmp / "n.csv", [t, v[0]], "time,temperature"), None, {}, "'temperature' is neither"),
        ("unit", write_table(tmp / "u.csv", [t, v[0]], "time (min),voltage"), None, {}, "time unit 'min'"),
        ("setting", good, None, {"voltage_unit": "uV"}, "voltage_unit 'uV'"),
        ("swapped", good, [write_table(tmp / "vi.csv", [t, v[0]], "t,v")], {}, "holds no current trace"),
    ]  # fmt: skip


def test_bad_recordings_raise_one_line_config_errors(tmp_path):
    for name, voltage, current, settings, message in bad_inputs(tmp_path):
        try:
            read_recording(voltage, current, **settings)
        except ConfigError as error:
            text = str(error)
        else:
            pytest.fail(f"{name}: no ConfigError")
        assert re.search(message, text), f"{name}: {text}"
        assert "\n" not in text, name


def test_bad_igor_inputs():
    v, i = b6_files(3)[:1], b6_files(0)[:1]
    with pytest.raises(ConfigError, match="holds no voltage trace"):
        read_recording(i, v)
    with pytest.raises(ConfigError, match="declares its current in pA, but current_unit is 'nA'"):
        read_recording(v, i, current_unit="nA")
    with pytest.raises(ConfigError, match="time_unit is for CSV files"):
        read_recording(v, i, time_unit="s")


def test_sweeps_stepping_at_different_times(tmp_path):
    t, v, i = synthetic()
    late = np.roll(i[1], 30)  # the step 3 ms later
    files = [write_table(tmp_path / f"{k}.csv", [t, v[k], c]) for k, c in enumerate([i[0], late])]
    with pytest.raises(ConfigError, match=r"steps start at \[20.0, 23.0\] ms"):
        read_recording(files)
    assert read_recording(files[1:]).start == pytest.approx(23.0)
