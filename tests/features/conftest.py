"""Traces for the feature tests, made without other bbpes modules, and eFEL's values on
them (computed once per session).

- `testdata`: eFEL's own test trace (`shared/data/ephys/efel/testdata.txt`) and the
  expected values eFEL's test suite checks (`expectedresults.json`).
- `synthetic`: per sampling step (0.025, 0.1, 0.25 ms), a batch of traces of equal
  length: Hodgkin-Huxley cells (silent, one spike, regular, adapting, depolarisation
  block; with and without current noise), Izhikevich bursting and chattering cells,
  and drawn spike trains with the awkward cases (spikes before and after the stimulus,
  a trace starting above or ending above threshold).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

EPHYS = Path(__file__).resolve().parents[3] / "shared" / "data" / "ephys" / "efel"
STIM_START, STIM_END, DURATION = 50.0, 250.0, 300.0  # ms
STEPS = (0.025, 0.1, 0.25)  # ms, the sampling steps of the synthetic traces
EFEL_NAMES = {"Spikecount": "spike_count", "Spikecount_stimint": "spike_count_stimint"}


def efel_values(traces: list[dict], names, settings: dict | None = None) -> list[dict]:
    """eFEL's mean value of each feature per trace (None where eFEL has none), with
    eFEL's defaults plus `settings`; bbpes's names (eFEL 5's new ones for the counts,
    which have no deprecation warning)."""
    import efel

    efel.reset()
    for key, value in (settings or {}).items():
        efel.set_setting(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = efel.get_feature_values(
            traces, [EFEL_NAMES.get(n, n) for n in names], raise_warnings=False
        )
    efel.reset()
    out = []
    for values in raw:
        row = {}
        for n in names:
            x = values[EFEL_NAMES.get(n, n)]
            row[n] = None if x is None or len(x) == 0 else float(np.mean(x))
        out.append(row)
    return out


def efel_arrays(traces: list[dict], names) -> list[dict]:
    """eFEL's raw arrays (None where eFEL has none)."""
    import efel

    efel.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return efel.get_feature_values(traces, list(names), raise_warnings=False)


def hodgkin_huxley(amps, dt, noise, adapt, seed, duration=DURATION):
    """Hodgkin-Huxley (1952) membrane (mV, ms, uA/cm^2), forward Euler at 0.025 ms (then
    every `dt / 0.025`-th sample), a current step of `amps` (n,) from STIM_START to
    STIM_END, an Ornstein-Uhlenbeck current of std `noise` (tau 2 ms) and a slow
    K+ adaptation current of conductance `adapt` (n,) mS/cm^2 (tau 100 ms)."""
    rng = np.random.default_rng(seed)
    h_dt = 0.025
    steps = round(duration / h_dt)
    every = round(dt / h_dt)
    amps, adapt = np.asarray(amps, float), np.asarray(adapt, float)
    v = np.full(amps.shape, -65.0) + rng.normal(0, 0.5, amps.shape)
    m, h, n, w, xi = 0.05, 0.6, 0.32, 0.0, np.zeros(amps.shape)
    out = np.empty((steps // every + 1, amps.size))
    for i in range(steps + 1):
        if i % every == 0:
            out[i // every] = v
        t = i * h_dt
        a_m = 0.1 * (v + 40) / (1 - np.exp(-(v + 40) / 10))
        b_m = 4 * np.exp(-(v + 65) / 18)
        a_h = 0.07 * np.exp(-(v + 65) / 20)
        b_h = 1 / (1 + np.exp(-(v + 35) / 10))
        a_n = 0.01 * (v + 55) / (1 - np.exp(-(v + 55) / 10))
        b_n = 0.125 * np.exp(-(v + 65) / 80)
        w_inf = 1 / (1 + np.exp(-(v + 35) / 10))
        stim = np.where((t >= STIM_START) & (t < STIM_END), amps, 0.0)
        xi += -xi * h_dt / 2 + noise * np.sqrt(h_dt) * rng.normal(size=amps.shape)
        ionic = 120 * m**3 * h * (v - 50) + 36 * n**4 * (v + 77) + 0.3 * (v + 54.387)
        ionic = ionic + adapt * w * (v + 77)
        v = v + h_dt * (stim + xi - ionic)
        m, h, n = (
            m + h_dt * (a_m * (1 - m) - b_m * m),
            h + h_dt * (a_h * (1 - h) - b_h * h),
            n + h_dt * (a_n * (1 - n) - b_n * n),
        )
        w = w + h_dt * (w_inf - w) / 100.0
    return out.T


def izhikevich(params, amps, dt, seed, duration=DURATION):
    """Izhikevich (2003) cells, params (n, 4) = (a, b, c, d), step current `amps`,
    Euler at 0.025 ms sampled every `dt`; the spike sample is clipped at 30 mV."""
    rng = np.random.default_rng(seed)
    a, b, c, d = np.asarray(params, float).T
    h_dt = 0.025
    steps = round(duration / h_dt)
    every = round(dt / h_dt)
    v = np.full(a.shape, -65.0)
    u = b * v
    out = np.empty((steps // every + 1, a.size))
    for i in range(steps + 1):
        fired = v >= 30
        if i % every == 0:
            out[i // every] = np.minimum(v, 30.0)
        v, u = np.where(fired, c, v), np.where(fired, u + d, u)
        t = i * h_dt
        stim = np.where((t >= STIM_START) & (t < STIM_END), amps, 0.0) + rng.normal(0, 0.5, a.shape)
        v = v + h_dt * (0.04 * v**2 + 5 * v + 140 - u + stim)
        u = u + h_dt * a * (b * v - u)
    return out.T


def spike_trains(n, dt, seed, duration=DURATION):
    """Drawn traces: a resting level, a depolarising step, spikes of random shape at
    random times (some before STIM_START or after STIM_END), noise; some start above
    threshold, some end mid-spike, some sit above threshold (a plateau)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration / dt) + 1) * dt
    out = np.empty((n, t.size))
    for i in range(n):
        rest = rng.uniform(-80, -60)
        v = rest + rng.uniform(0, 15) * ((t >= STIM_START) & (t < STIM_END))
        lo, hi = (0, duration) if i % 4 == 0 else (STIM_START, STIM_END)
        times = np.sort(rng.uniform(lo, hi, rng.integers(0, 25)))
        if i % 7 == 3:
            times = np.append(times, duration - rng.uniform(0.1, 1.0))  # ends mid-spike
        if i % 9 == 4:
            times = np.insert(times, 0, -rng.uniform(0.1, 0.8))  # starts mid-spike
        height, width = rng.uniform(60, 120), rng.uniform(0.3, 1.5)
        for s in times:
            x = np.maximum(t - s, 0.0)
            shape = np.exp(-x / width) * (1 - np.exp(-x / 0.15))
            ahp = np.exp(-x / rng.uniform(3, 30)) * (1 - np.exp(-x / 1.0))
            v = v + height * 2.2 * shape - rng.uniform(0, 15) * ahp
        if i % 11 == 5:
            v = v + 60 * ((t >= 120) & (t < 160))  # a plateau above threshold
        out[i] = v + rng.normal(0, rng.choice([0.0, 0.05, 0.5]), t.size)
    return out


def synthetic_batches(seed: int = 0) -> dict[float, np.ndarray]:
    """{dt: voltage (n, T) mV} for each of STEPS: the same 133 cells sampled every dt ms
    over DURATION ms (the model cells integrated once; the drawn trains per step)."""
    cells = model_cells(seed)
    out = {}
    for dt in STEPS:
        every = round(dt / 0.025)
        sampled = cells[:, ::every]
        drawn = spike_trains(60, dt, seed)
        length = min(sampled.shape[1], drawn.shape[1])
        out[dt] = np.concatenate([sampled[:, :length], drawn[:, :length]])
    return out


def model_cells(seed: int, dt: float = 0.025) -> np.ndarray:
    """73 model cells (HH, adapting HH, Izhikevich) sampled every 0.025 ms."""
    rng = np.random.default_rng(seed)
    amps = np.concatenate(
        [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], rng.uniform(6, 60, 24), [150.0, 200.0, 300.0]]
    )
    n = amps.size
    hh = hodgkin_huxley(
        amps, dt, noise=np.where(np.arange(n) % 2, 0.0, 1.5), adapt=np.zeros(n), seed=seed
    )
    adapting = hodgkin_huxley(
        rng.uniform(8, 40, 16), dt, noise=0.5, adapt=rng.uniform(0.5, 3, 16), seed=seed + 1
    )
    cells = np.array(
        [(0.02, 0.2, -65, 8), (0.02, 0.2, -55, 4), (0.02, 0.2, -50, 2), (0.1, 0.2, -65, 2)]
    )
    iz = izhikevich(np.repeat(cells, 6, axis=0), np.tile(np.linspace(5, 25, 6), 4), dt, seed)
    return np.concatenate([hh, adapting, iz])


@pytest.fixture(scope="session")
def testdata():
    """(time (T,) ms, voltage (T,) mV, eFEL's expected values {name: list})."""
    data = np.loadtxt(EPHYS / "testdata.txt")
    expected = json.loads((EPHYS / "expectedresults.json").read_text())
    return data[:, 0], data[:, 1], expected


@pytest.fixture(scope="session")
def synthetic():
    """{dt: voltage (n, T)} for each of STEPS."""
    return synthetic_batches()


def as_efel(voltage: np.ndarray, dt: float) -> list[dict]:
    """eFEL's trace dicts of a batch sampled every dt from t = 0 (times k * dt)."""
    t = np.arange(voltage.shape[-1]) * dt
    return [dict(T=t, V=v, stim_start=[STIM_START], stim_end=[STIM_END]) for v in voltage]


@pytest.fixture(scope="session")
def stimulus():
    """(stim_start, stim_end) of the synthetic traces, ms."""
    return STIM_START, STIM_END


ARRAY_NAMES = ["peak_indices", "min_AHP_indices", "AP_begin_indices", "AP_end_indices",
               "AP_rise_indices", "AP_fall_indices"]  # fmt: skip


class Reference:
    """eFEL's and bbpes's hard values on the synthetic traces sampled every `dt`, computed
    on first use: `efel` ([{feature: mean or None}] per trace), `efel_arrays` ([{name:
    array or None}]), `arrays` (bbpes's `SpikeArrays`) and `hard` ({feature: (n,)}),
    both from one compiled program."""

    def __init__(self, voltage: np.ndarray, dt: float):
        self.voltage, self.dt = voltage, dt
        self._efel = self._arrays = self._ours = None

    @property
    def efel(self) -> list[dict]:
        from bbpes.features import FEATURES

        if self._efel is None:
            self._efel = efel_values(as_efel(self.voltage, self.dt), FEATURES)
        return self._efel

    @property
    def efel_arrays(self) -> list[dict]:
        if self._arrays is None:
            self._arrays = efel_arrays(as_efel(self.voltage, self.dt), ARRAY_NAMES)
        return self._arrays

    @property
    def arrays(self):
        from bbpes.features import FEATURES, extract_arrays

        if self._ours is None:
            self._ours = extract_arrays(self.voltage, self.dt, STIM_START, STIM_END, FEATURES)
        return self._ours

    @property
    def hard(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(x) for k, x in self.arrays.features.items()}


@pytest.fixture(scope="session")
def reference(synthetic):
    """{dt: Reference}: eFEL's and bbpes's values on the synthetic traces, computed once
    per session, lazily (the slow tests use the 0.025 and 0.25 ms sets)."""
    return {dt: Reference(v, dt) for dt, v in synthetic.items()}


@pytest.fixture(scope="session")
def efel_of():
    """`efel_of(voltage (n, T), dt, names, settings=None)`: eFEL's mean values per
    trace (stimulus STIM_START to STIM_END, eFEL's settings updated by `settings`)."""
    return lambda voltage, dt, names, settings=None: efel_values(
        as_efel(voltage, dt), names, settings
    )
