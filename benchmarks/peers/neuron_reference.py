"""Reference traces of NEURON's `hh` soma under current clamp, for bbpes's tests.

Runs NEURON (the `.venv-peers` made by `make peers`) on the cases in `CASES` with its
default fixed-step scheme (`secondorder = 0`, dt = 0.025 ms, `cvode.active(0)`) and
writes to `--out` (default tests/fixtures/neuron/):

- `hh_reference.json`: the cases, NEURON's version, dt and the sampling of the stored V;
- `hh_reference.npz`: per case, V (mV, float32) every `RECORD_EVERY`-th step, shape
  `(n_sweeps, n_steps // RECORD_EVERY + 1)` as `<case>_v`, and the upward 0 mV crossings
  of the full-resolution trace (ms, float64, linearly interpolated) as
  `<case>_spikes_<sweep>`.

With `--full` the npz holds every step in float64 instead (the live test in
tests/neurons/test_neuron_hh.py uses that; the committed fixture does not, to stay small).

    .venv-peers/bin/python benchmarks/peers/neuron_reference.py [--out DIR] [--full]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

DT = 0.025  # ms
RECORD_EVERY = 4  # stored V every 0.1 ms: 4 bytes x 10,001 samples a second of trace

# Every case is one soma (nseg = 1) with `hh`; amplitudes in nA, one sweep each,
# `holding` nA on throughout (a second IClamp with del = 0).
TC1 = dict(
    diam=10.0,
    L=100.0,
    celsius=6.3,
    amplitudes=[0.3],
    start=200.0,
    end=700.0,
    duration=1000.0,
    holding=0.0,
    usetable=1,
)
"""Neuroptimus test case 1 (the `hh` soma fitted from a NEURON trace): tonic firing. The
other cases change what their comment says."""

CASES: dict[str, dict] = {
    "tc1": TC1,
    # The same with the rates computed exactly (`usetable_hh = 0`), for `use_table=False`.
    "tc1_notable": {**TC1, "usetable": 0},
    # Below threshold, depolarising and hyperpolarising: the passive response and sag.
    "subthreshold": {**TC1, "amplitudes": [0.05, -0.1], "start": 100.0, "end": 400.0,
                     "duration": 500.0},
    # Rates at 20 °C: q10 = 3^((20 - 6.3) / 10) = 4.50.
    "celsius20": {**TC1, "celsius": 20.0, "start": 100.0, "end": 400.0, "duration": 500.0},
    # A smaller soma (1,257 µm²) with a holding current, and a step that starts between
    # grid points (50.01 ms): NEURON switches it on in the step whose midpoint passes it.
    "geometry2": {**TC1, "diam": 20.0, "L": 20.0, "amplitudes": [0.1, 0.2], "start": 50.01,
                  "end": 250.01, "duration": 300.0, "holding": -0.01},
}  # fmt: skip


def run_case(case: dict) -> list[np.ndarray]:
    """NEURON's V (mV, float64) at every step of each sweep of `case`, t = 0 included."""
    from neuron import h

    h.load_file("stdrun.hoc")
    h.cvode.active(0)
    h.secondorder = 0
    traces = []
    for amp in case["amplitudes"]:
        soma = h.Section(name="soma")
        soma.nseg = 1
        soma.diam = case["diam"]
        soma.L = case["L"]
        soma.cm = 1.0
        soma.insert("hh")
        h.usetable_hh = case["usetable"]
        h.celsius = case["celsius"]
        stim = h.IClamp(soma(0.5))
        stim.delay = case["start"]
        stim.dur = case["end"] - case["start"]
        stim.amp = amp
        hold = h.IClamp(soma(0.5))
        hold.delay = 0.0
        hold.dur = 1e9
        hold.amp = case["holding"]
        v = h.Vector().record(soma(0.5)._ref_v)
        h.dt = DT
        h.steps_per_ms = 1.0 / DT
        h.tstop = case["duration"]
        h.finitialize(-65.0)
        h.continuerun(case["duration"])
        traces.append(np.array(v, dtype=np.float64))
        del stim, hold, v, soma  # a fresh section per sweep: nothing carries over
    return traces


def upward_crossings(v: np.ndarray, dt: float, threshold: float = 0.0) -> np.ndarray:
    """Times (ms) where `v` crosses `threshold` upward, linearly interpolated."""
    i = np.flatnonzero((v[:-1] < threshold) & (v[1:] >= threshold))
    return (i + (threshold - v[i]) / (v[i + 1] - v[i])) * dt


def main() -> None:
    import neuron

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=root / "tests" / "fixtures" / "neuron")
    parser.add_argument("--full", action="store_true", help="every step, float64")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    every = 1 if args.full else RECORD_EVERY
    arrays = {}
    for name, case in CASES.items():
        traces = run_case(case)
        n = round(case["duration"] / DT)
        for k, v in enumerate(traces):
            if v.shape != (n + 1,):
                raise RuntimeError(f"{name}: NEURON returned {v.shape[0]} samples, not {n + 1}")
            arrays[f"{name}_spikes_{k}"] = upward_crossings(v, DT)
        stacked = np.stack(traces)[:, ::every]
        arrays[f"{name}_v"] = stacked if args.full else stacked.astype(np.float32)
    np.savez_compressed(args.out / "hh_reference.npz", **arrays)
    meta = {
        "neuron_version": neuron.__version__,
        "dt": DT,
        "record_every": every,
        "v_init": -65.0,
        "scheme": "fixed step, secondorder=0, cvode off; one soma, nseg=1, cm=1, hh",
        "cases": CASES,
    }
    (args.out / "hh_reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out}/hh_reference.{{json,npz}} (NEURON {neuron.__version__})")


if __name__ == "__main__":
    main()
