"""The single-neuron turn-off task (BBPES paper, section 3.1.2, Eq. 9) simulated by
Brian2: a black-box loss for ES through Ray (`bbpes.ray_evaluator`).

Same cell and loss as `bbpes.tasks.turn_off.TurnOff`: one Morris-Lecar cell (Eq. 8,
the constants of a `MorrisLecar`) from rest (V = V_L, w = 0) under a constant current
I_app, and L(I_app) = (1/T) integral_0^T T(V(t)) dt with the soft spike output
T(V) = 1 / (1 + exp(-(V - 10 mV) / 3 mV)) (Eq. 11).

What differs is the integrator. Ours is the paper's leapfrog-trapezoidal stepper and
the loss the mean of T(V) over its steps; Brian2 integrates the same ODEs with its own
explicit method (`method`, "rk4" by default) at the same dt (0.1 ms), and the integral
of T(V) is a third state variable integrated alongside (`dtotal/dt = T(V)`). Measured
at dt = 0.1 ms (tests/tasks/test_turn_off_brian2.py, `turn-off-brian2`): at I = 100 both
fire the same 12 spikes in 1 s, Brian2's rk4 within 0.2 ms of scipy's tight LSODA
solution, ours with a period 0.8% longer (86.0 ms against 85.3); on a grid of currents
from 40 to 160 the two losses differ by at most 0.003 (10 s window) to 0.006 (2 s).

`Brian2TurnOff` is a plain callable `loss({"i_app": array}) -> float` that builds its
network once (`setup()`, called by each Ray worker before its first sample) and then
only changes the current:

- `target="cpp_standalone"` (default, fastest): the network is compiled to a C++
  program once; each loss runs it with the new current as a run argument
  (`device.run(run_args=...)`), about 0.2 s per 10 s of simulated time here.
  Brian2's standalone device is global to a process: one such loss per process
  (one per Ray worker).
- `target="cython"` or `"numpy"`: Brian2's runtime mode; the network is stored after
  the build and restored before each run. Slower (Python runs every time step).

Brian2 is an optional dependency: `pip install 'bbpes[brian2]'` (it needs numpy < 2.4).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..neurons.morris_lecar import NON_EXPLOSIVE, MorrisLecar
from ..neurons.readout import K_P, V_T

TARGETS = ("cpp_standalone", "cython", "numpy")
METHODS = ("rk4", "rk2", "exponential_euler", "euler")

# Units of the MorrisLecar constants (ms, mV, µA/cm², mS/cm², µF/cm²) in Brian2's names.
UNITS = {
    "C": "uF/cm**2",
    "g_L": "msiemens/cm**2",
    "g_Ca": "msiemens/cm**2",
    "g_K": "msiemens/cm**2",
    "V_L": "mV",
    "V_Ca": "mV",
    "V_K": "mV",
    "V1": "mV",
    "V2": "mV",
    "V3": "mV",
    "V4": "mV",
    "phi": "1/ms",
}

EQUATIONS = """
dv/dt = (g_L*(V_L - v) + g_Ca*m_inf*(V_Ca - v) + g_K*w*(V_K - v) + I_app)/C : volt
dw/dt = phi*cosh((v - V3)/(2*V4))*(w_inf - w) : 1
dtotal/dt = 1/(1 + exp(-(v - V_T)/k_p))/second : 1
m_inf = 0.5*(1 + tanh((v - V1)/V2)) : 1
w_inf = 0.5*(1 + tanh((v - V3)/V4)) : 1
I_app : amp/meter**2 (constant)
"""
"""Eq. 8 in Brian2's notation; `total` is the integral of T(V) in seconds (so
`total / t_end` is the loss)."""


def constants(cell: MorrisLecar) -> dict[str, tuple[float, str]]:
    """The cell's constants and the readout's as `name -> (value, Brian2 unit text)`."""
    values = {f.name: (float(getattr(cell, f.name)), UNITS[f.name]) for f in fields(cell)}
    return {**values, "V_T": (V_T, "mV"), "k_p": (K_P, "mV")}


@dataclass
class Brian2TurnOff:
    """`loss({"i_app": I}) -> float`: the turn-off loss of a Brian2 simulation.

    **Fields:** `cell` (its constants are used); `t_end`, `dt` in ms; `method`, Brian2's
    integrator; `target`, Brian2's code generation; `record`, keep V for `trace`;
    `build_dir`, where the standalone program is built (a fresh temporary folder when
    None).
    """

    cell: MorrisLecar = NON_EXPLOSIVE
    t_end: float = 10_000.0
    dt: float = 0.1
    method: str = "rk4"
    target: str = "cpp_standalone"
    record: bool = False
    build_dir: str | None = None
    _sim: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    _temporary: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not (self.t_end > 0 and self.dt > 0):
            raise ValueError(f"t_end and dt must be positive, got {self.t_end}, {self.dt}")

    def __getstate__(self) -> dict[str, Any]:
        # a built network (and its build folder) stays in its process
        return {**self.__dict__, "_sim": None, "_temporary": None}

    def setup(self) -> None:
        """Build the network (and, for cpp_standalone, compile it). Idempotent."""
        if self._sim is not None:
            return
        import brian2 as b2

        standalone = self.target == "cpp_standalone"
        if standalone:
            directory = self.build_dir
            if directory is None:
                directory = tempfile.mkdtemp(prefix="bbpes-brian2-")
                atexit.register(shutil.rmtree, directory, ignore_errors=True)
                self._temporary = directory
            b2.device.reinit()
            b2.set_device("cpp_standalone", build_on_run=False)
        else:
            b2.device.reinit()
            b2.set_device("runtime")
            b2.prefs.codegen.target = self.target
        namespace = {
            name: value * eval(unit, vars(b2))
            for name, (value, unit) in constants(self.cell).items()
        }
        group = b2.NeuronGroup(
            1, EQUATIONS, method=self.method, namespace=namespace, dt=self.dt * b2.ms
        )
        group.v = self.cell.V_L * b2.mV
        group.w = 0.0
        group.I_app = 0.0 * b2.uA / b2.cm**2
        objects = [group]
        if self.record:
            objects.append(b2.StateMonitor(group, "v", record=0, dt=self.dt * b2.ms))
        network = b2.Network(*objects)
        sim = {"b2": b2, "group": group, "network": network, "monitor": objects[1:]}
        if standalone:
            network.run(self.t_end * b2.ms, namespace={})
            b2.device.build(directory=directory, run=False)
        else:
            network.store()
        self._sim = sim

    def close(self) -> None:
        """Forget the network and delete the temporary build folder, if any."""
        self._sim = None
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def _run(self, i_app: float) -> None:
        self.setup()
        b2, group, network = self._sim["b2"], self._sim["group"], self._sim["network"]
        current = float(i_app) * b2.uA / b2.cm**2
        if self.target == "cpp_standalone":
            b2.device.run(run_args={group.I_app: current})
        else:
            network.restore()
            group.I_app = current
            network.run(self.t_end * b2.ms, namespace={})

    def __call__(self, params: dict[str, Any]) -> float:
        """The loss at `params["i_app"]` (µA/cm², a scalar)."""
        self._run(float(np.asarray(params["i_app"])))
        total = float(self._sim["group"].total[0])  # integral of T(V) in seconds
        return total / (self.t_end * 1e-3)

    def trace(self, i_app: float) -> tuple[np.ndarray, np.ndarray]:
        """`(times, V)` in ms and mV, one point per dt (needs `record=True`)."""
        if not self.record:
            raise ValueError("trace needs Brian2TurnOff(record=True)")
        self._run(i_app)
        monitor = self._sim["monitor"][0]
        b2 = self._sim["b2"]
        return np.asarray(monitor.t / b2.ms), np.asarray(monitor.v[0] / b2.mV)
