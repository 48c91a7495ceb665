"""The fitting problems bbpes ships: a ground-truth suite (targets simulated from known
parameters, with recording noise as an option) and a real cell.

- `hh`: Neuroptimus test case 1. NEURON's `hh` soma (diam 10 µm, L 100 µm), 0.3 nA
  from 200 to 700 ms, 1,000 ms at dt 0.025 ms, rest -65 mV; fitted: gnabar, gkbar, gl
  in 0.001-1, 0.001-1, 1e-5-1e-3 S/cm² (log-scaled). Truth: NEURON's default `hh`
  values (0.12, 0.036, 0.0003), which reproduce Neuroptimus's target trace (the
  values printed in its help PDF, 0.1, 0.03, 0.0001, do not: 36 spikes, not 34).
- `simplecell`: BluePyOpt's simplecell example: an `hh` soma, steps of 0.01 and 0.05 nA
  from 100 to 150 ms in 200 ms; fitted: gnabar in 0.05-0.125 and gkbar in 0.01-0.075
  S/cm² (BluePyOpt's bounds). Truth: 0.12, 0.036. The soma is a 10 x 10 µm cylinder
  here (BluePyOpt's `simple.swc` soma, as NEURON turns it into a cylinder).
- `pospischil`: the Pospischil et al. 2008 cortical model with 7 free parameters
  (g_Na, g_K, g_M, g_leak, E_leak, tau_max, V_T: `POSPISCHIL_SPACE`) under 4
  step amplitudes, truth at the cell's defaults.
- `recording`: the Pospischil model fitted to the recordings named by the user (e.g.
  cell B6 of BluePyEfe's test data).

The targets are simulated with bbpes's own stepper at the precision of the fit, so a
fit can reach a loss of exactly 0; the simulator floor against NEURON is measured apart
(tests/neurons/test_neuron_hh.py, `bbpes bench peers`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError
from ..features import FEATURES, FeatureSettings, extract
from ..neurons.neuron_hh import NeuronHH
from ..neurons.pospischil import Pospischil
from .loss import FeatureLoss, TraceMSE, WeightedLoss, feature_targets
from .parameters import FitParameter, ParameterSpace
from .problem import Fit
from .protocol import CurrentClamp, simulate

PROBLEMS = ("hh", "simplecell", "pospischil", "recording")
LOSSES = ("features", "mse", "features+mse")

DEFAULT_FEATURES = (
    "Spikecount",
    "mean_frequency",
    "time_to_first_spike",
    "AP_amplitude",
    "AP_duration_half_width",
    "AHP_depth_abs",
    "ISI_CV",
    "inv_first_ISI",
    "voltage_base",
    "steady_state_voltage_stimend",
)
"""The features a fit scores unless told otherwise (eFEL's names)."""

MSE_SCALE = 10.0
"""mV: the trace MSE is read in units of (10 mV)², so that a trace off by a few mV
weighs about as much as a feature off by a few standard deviations."""


def check_features(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise ConfigError(
            f"unknown features {', '.join(unknown) or '(none given)'} (known: {', '.join(FEATURES)})"
        )


HH_SPACE = ParameterSpace(
    (
        FitParameter("gnabar", 0.001, 1.0, "S/cm2", "loglogit"),
        FitParameter("gkbar", 0.001, 1.0, "S/cm2", "loglogit"),
        FitParameter("gl", 1e-5, 1e-3, "S/cm2", "loglogit"),
    )
)
SIMPLECELL_SPACE = ParameterSpace(
    (
        FitParameter("gnabar", 0.05, 0.125, "S/cm2", "logit"),
        FitParameter("gkbar", 0.01, 0.075, "S/cm2", "logit"),
    )
)
POSPISCHIL_SPACE = ParameterSpace(
    (
        FitParameter("g_Na", 0.5, 80.0, "mS/cm2", "loglogit"),
        FitParameter("g_K", 0.01, 15.0, "mS/cm2", "loglogit"),
        FitParameter("g_M", 1e-3, 0.6, "mS/cm2", "loglogit"),
        FitParameter("g_leak", 1e-3, 0.6, "mS/cm2", "loglogit"),
        FitParameter("E_leak", -100.0, -50.0, "mV", "logit"),
        FitParameter("tau_max", 50.0, 3000.0, "ms", "loglogit"),
        FitParameter("V_T", -90.0, -40.0, "mV", "logit"),
    )
)
"""Goncalves et al. 2020's prior ranges (their fit of Allen cells), narrowed where a
bound reached a value no cell takes: g_K, g_M and g_leak from 0.01 or 0.001 instead of
1e-4 mS/cm², E_leak from -100 instead of -130 mV."""


def build(
    problem: str,
    *,
    loss: str = "features",
    features: Sequence[str] = DEFAULT_FEATURES,
    noise: float = 0.0,
    seed: int = 0,
    relative_std: float = 0.05,
    temperature: float = 2.0,
    recording: str = "",
    recording_current: str = "",
    ljp: float = 14.0,
) -> Fit:
    """The fit named `problem` (one of `PROBLEMS`) with the loss `loss` on `features`."""
    if problem == "recording":
        return recording_fit(
            recording,
            recording_current,
            ljp=ljp,
            loss=loss,
            features=features,
            relative_std=relative_std,
            temperature=temperature,
        )
    cell, space, protocol, truth, notes = GROUND_TRUTH[problem]()
    target = np.asarray(simulate(space.cell(cell, jnp.asarray(truth)), protocol))
    if noise > 0:
        rng = np.random.default_rng(seed)
        target = target + noise * rng.standard_normal(target.shape)
    fit_loss, floss = make_loss(target, protocol, loss, features, relative_std, temperature)
    return Fit(
        name=problem,
        cell=cell,
        space=space,
        protocol=protocol,
        loss=fit_loss,
        target=target,
        truth=tuple(float(x) for x in truth),
        notes=notes + (f"; recording noise {noise:g} mV" if noise else ""),
        extra={"feature_loss": floss},
    )


def make_loss(target, protocol: CurrentClamp, loss: str, features, relative_std, temperature):
    """`(loss, feature_loss)` on the target traces `(n_sweeps, T)`."""
    dt = protocol.dt * protocol.record_every
    settings = _settings_for(target, dt, protocol)
    values = extract(
        jnp.asarray(target), dt, protocol.start, protocol.end, tuple(features), settings=settings
    )
    targets = feature_targets(
        {k: np.asarray(v) for k, v in values.items()}, relative_std=relative_std
    )
    if not targets and loss != "mse":
        raise ConfigError("the target produces none of the features asked for (all undefined)")
    floss = (
        FeatureLoss(
            targets, protocol.start, protocol.end, dt, settings, temperature=temperature
        ).with_soft_targets(target)
        if targets
        else None
    )
    mse = TraceMSE(np.asarray(target, dtype=np.float32), scale=MSE_SCALE)
    if loss == "features":
        return floss, floss
    if loss == "mse":
        return mse, floss
    return WeightedLoss((floss, mse), (1.0, 1.0)), floss


def _settings_for(target, dt: float, protocol: CurrentClamp) -> FeatureSettings:
    """eFEL's settings, with room for every spike of the target and a margin: per-spike
    features are undefined for a trace with more spikes than `max_spikes` (64 by
    default; cell B6 fires up to 89 in 2 s), and a model may fire more than the target."""
    count = extract(jnp.asarray(target), dt, protocol.start, protocol.end, ("Spikecount",))
    most = int(np.nanmax(np.asarray(count["Spikecount"]))) if np.size(target) else 0
    room = 64
    while room < 1.5 * most + 8:
        room *= 2
    return FeatureSettings(max_spikes=room)


def _hh():
    cell = NeuronHH(diam=10.0, L=100.0)
    protocol = CurrentClamp(
        amplitudes=(0.3,), start=200.0, end=700.0, duration=1000.0, dt=0.025, record_every=4
    )
    truth = (0.12, 0.036, 0.0003)
    return cell, HH_SPACE, protocol, truth, "Neuroptimus test case 1 (hh soma, 0.3 nA, 1 s)"


def _simplecell():
    cell = NeuronHH(diam=10.0, L=10.0)
    protocol = CurrentClamp(
        amplitudes=(0.01, 0.05), start=100.0, end=150.0, duration=200.0, dt=0.025, record_every=4
    )
    truth = (0.12, 0.036)
    return (
        cell,
        SIMPLECELL_SPACE,
        protocol,
        truth,
        "BluePyOpt simplecell (hh soma, 0.01 and 0.05 nA)",
    )


def _pospischil():
    cell = Pospischil()
    protocol = CurrentClamp(
        amplitudes=POSPISCHIL_AMPLITUDES,
        start=100.0,
        end=700.0,
        duration=800.0,
        dt=0.025,
        record_every=4,
    )
    truth = tuple(float(getattr(cell, p.name)) for p in POSPISCHIL_SPACE.parameters)
    return cell, POSPISCHIL_SPACE, protocol, truth, "Pospischil 2008, 7 parameters, 4 steps"


POSPISCHIL_AMPLITUDES = (0.1, 0.2, 0.3, 0.4)
"""nA: steps from near threshold to strong tonic firing of the default cell."""

GROUND_TRUTH = {"hh": _hh, "simplecell": _simplecell, "pospischil": _pospischil}
"""The ground-truth problems by name: each a function of no argument giving `(cell,
space, protocol, truth, notes)`, the pieces `build` assembles (for a simulator other
than bbpes's own, e.g. the NEURON black box or Jaxley, to rebuild the same problem)."""


def recording_fit(
    voltage: str,
    current: str = "",
    *,
    ljp: float = 14.0,
    loss: str = "features",
    features: Sequence[str] = DEFAULT_FEATURES,
    relative_std: float = 0.05,
    temperature: float = 2.0,
) -> Fit:
    """The Pospischil model fitted to recordings: `voltage` and `current` are
    comma-separated file lists (`bbpes.fitting.recordings.read_recording`)."""
    rec = read(voltage, current, ljp=ljp)
    record_every = max(1, round(rec.dt / 0.025))
    protocol = rec.protocol(dt=rec.dt / record_every, record_every=record_every)
    target = np.asarray(rec.voltage)
    # the recording's T samples start at 0: the simulation records T (0 to (T - 1) dt)
    protocol = dataclasses.replace(protocol, duration=(target.shape[1] - 1) * rec.dt)
    fit_loss, floss = make_loss(target, protocol, loss, features, relative_std, temperature)
    return Fit(
        name="recording",
        cell=Pospischil(v_init=float(np.median(target[:, : max(1, int(protocol.start / rec.dt))]))),
        space=POSPISCHIL_SPACE,
        protocol=protocol,
        loss=fit_loss,
        target=target,
        truth=None,
        notes=f"{rec.n_sweeps} sweeps of {', '.join(rec.source)}; ljp {ljp:g} mV",
        extra={"feature_loss": floss, "recording": rec},
    )


def read(voltage: str, current: str = "", *, ljp: float = 14.0):
    """The recording of the comma-separated file lists `voltage` and `current`
    (`bbpes.fitting.recordings.read_recording`; a bad one is a one-line `ConfigError`)."""
    from .recordings import read_recording

    split = lambda s: [p.strip() for p in s.split(",") if p.strip()]
    return read_recording(split(voltage), split(current) or None, ljp=ljp)
