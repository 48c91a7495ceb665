"""`reversibility`: run a spiking Morris-Lecar cell forward, then backwards in time from
its final state with the same scheme, and measure how long the backward run stays on
the forward trajectory (BBPES paper, Fig. 4; Propositions 1-2). This is what breaks
the fnde adjoint, which must reconstruct the state by running the ODE backwards."""

from __future__ import annotations

from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .. import plotting
from ..framework import Experiment, Setting
from ..framework.checks import require_fits, require_steps
from ..neurons import n_steps
from ..neurons.base import simulate
from ..runs import RunDir
from ..tasks.turn_off import PRESET, PRESETS


def reversible_time(
    times: np.ndarray, forward: np.ndarray, backward: np.ndarray, tol: float
) -> float:
    """How long (ms) a backward run, started at times[-1], stays within `tol` mV of the
    forward one: `forward` and `backward` are V at `times` (ascending)."""
    off = np.abs(backward - forward) > tol
    if not off.any():
        return float(times[-1] - times[0])
    last_off = np.nonzero(off)[0].max()  # the backward run is on track after this
    return float(times[-1] - times[last_off])


def diffrax_roundtrip(cell, i_app: float, t_end: float, ts: np.ndarray, rtol: float) -> np.ndarray:
    """V at `ts` of a backward Dopri5 solve (tolerance `rtol`) started from the end of a
    forward one, in float64."""
    with jax.enable_x64(True):
        term = diffrax.ODETerm(lambda t, y, args: cell.vector_field(y, i_app))
        controller = diffrax.PIDController(rtol=rtol, atol=rtol)
        y0 = cell.initial_state()
        kwargs = dict(stepsize_controller=controller, max_steps=10_000_000, dt0=None)
        fwd = diffrax.diffeqsolve(term, diffrax.Dopri5(), 0.0, t_end, y0=y0, **kwargs)
        y_end = jax.tree.map(lambda x: x[-1], fwd.ys)
        saveat = diffrax.SaveAt(ts=jnp.clip(jnp.asarray(ts[::-1], jnp.float64), 0.0, t_end))
        back = diffrax.diffeqsolve(
            term, diffrax.Dopri5(), t_end, 0.0, y0=y_end, saveat=saveat, **kwargs
        )
        return np.asarray(back.ys[0])[::-1]


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    cell = PRESETS[config["preset"]]
    t_end, dt, i_app = config["t_end"], config["dt"], config["i_app"]
    n = n_steps(t_end, dt)
    times, V, w = jax.jit(simulate, static_argnums=(2, 3))(cell, i_app, t_end, dt)
    _, V_back, _ = jax.jit(simulate, static_argnums=(2, 3))(cell, i_app, t_end, -dt, (V[-1], w[-1]))
    times, V = np.asarray(times), np.asarray(V)
    V_back = np.asarray(V_back)[::-1]  # V_back[k] is the backward run at time times[k]
    tol = config["tolerance_mv"]
    metrics = {
        "reversible_ms": reversible_time(times, V, V_back, tol),
        "steps": n,
        "max_deviation_mv": float(np.nanmax(np.abs(V_back - V)))
        if np.isfinite(V_back).any()
        else None,
        "backward_blew_up": bool(not np.all(np.isfinite(V_back))),
    }
    every = max(1, n // 4000)  # plotted and compared on a coarser grid
    ts = np.arange(0, n + 1, every) * dt
    dopri = {
        rtol: diffrax_roundtrip(cell, i_app, t_end, ts, rtol) for rtol in config["dopri5_rtols"]
    }
    for rtol, V_dopri in dopri.items():
        metrics[f"reversible_ms_dopri5_rtol{rtol:g}"] = reversible_time(
            ts, V[::every], V_dopri, tol
        )
    plot(run_dir, ts, V[::every], V_back[::every], dopri, metrics, config)
    return metrics


def plot(run_dir, ts, forward, backward, dopri, metrics, config) -> None:
    fig, ((ax,),) = plotting.figure(width=7.0)
    ax.plot(ts, forward, color="black", lw=1.6, label="forward")
    ax.plot(
        ts,
        np.clip(backward, -100, 150),
        color="tab:red",
        lw=1.0,
        label=f"backward, same scheme (on track {metrics['reversible_ms']:.2f} ms)",
    )
    for rtol, V_dopri in dopri.items():
        on_track = metrics[f"reversible_ms_dopri5_rtol{rtol:g}"]
        ax.plot(
            ts,
            np.clip(V_dopri, -100, 150),
            lw=0.8,
            ls="--",
            label=f"backward, Dopri5 rtol {rtol:g} (on track {on_track:.2f} ms)",
        )
    precision = "float64" if config["x64"] else "float32"
    ax.set(
        xlabel="time (ms)",
        ylabel="V (mV)",
        ylim=(-100, 150),
        title=f"Morris-Lecar run backwards from {config['t_end']:g} ms "
        f"(dt = {config['dt']:g} ms, I = {config['i_app']:g}, {precision})",
    )
    ax.legend(fontsize=7, loc="lower left")
    run_dir.save_figure(fig, "reversibility.png")


def check(config: dict[str, Any]) -> None:
    steps = require_steps(config["t_end"], config["dt"])
    # the forward and backward trajectories (V, w of every step, float64) are kept
    require_fits(2 * 3 * 8.0 * (steps + 1), f"the trajectories of {steps} steps")


SETTINGS = (
    PRESET,
    Setting("i_app", 100.0, "the constant applied current", "µA/cm²", any_value=True),
    Setting("t_end", 100.0, "length of the forward run", "ms", positive=True),
    Setting(
        "dt",
        0.001,
        "step of the leapfrog scheme, forwards and backwards",
        "ms",
        positive=True,
        quick=0.01,
    ),
    Setting(
        "tolerance_mv",
        1.0,
        "the backward run is 'on track' while within this of the forward one",
        "mV",
        positive=True,
    ),
    Setting(
        "dopri5_rtols",
        [1e-4, 1e-6, 1e-8, 1e-10],
        "tolerances of diffrax backward runs (float64): how fast errors grow",
        positive=True,
    ),
    Setting("x64", True, "simulate the leapfrog runs in float64"),
)

EXPERIMENT = Experiment(
    name="reversibility",
    summary="a Morris-Lecar cell run backwards in time leaves its forward trajectory within ms (Fig. 4)",
    run=run,
    settings=SETTINGS,
    check=check,
)
