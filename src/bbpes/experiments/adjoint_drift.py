"""`adjoint-drift`: the pnde gradient of the turn-off loss over a long run (BBPES paper,
Fig. 6). The adjoint a_V(t) = dLoss/dV(t) is solved backwards over the cached forward
solution; the running gradient g(t) accumulates dLoss/dI_app from t1 back to t. Both
jump at every spike; the question is whether what they add up to still has the sign of
the loss trend, i.e. of the slope of the Gaussian-smoothed loss.

The pnde gradient is also computed at several solver tolerances: over 10 s the error of
the backward adjoint solve accumulates, so whether it drifts depends on the tolerance;
the leapfrog BPTT gradient is the exact gradient of the discretised loss, for comparison."""

from __future__ import annotations

from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .. import plotting
from ..estimators import bptt, pnde_solve
from ..framework import Experiment, Setting
from ..framework.checks import MAX_LOOP, require_fits, require_steps
from ..runs import RunDir
from ..tasks.turn_off import PRESET, PRESETS, READOUTS, TurnOff, gaussian_smooth

SOLVERS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "kvaerno5": diffrax.Kvaerno5}


def smoothed_slope(task: TurnOff, i_app: float, sigma: float, points: int) -> float:
    """d/dI of E[L(I + sigma eps)] at `i_app`: the loss on a grid of +-6 sigma,
    smoothed by a Gaussian, differentiated at the centre."""
    grid = np.linspace(i_app - 6 * sigma, i_app + 6 * sigma, points)
    losses = np.asarray(jax.jit(jax.vmap(lambda i: task.loss({"i_app": i})))(jnp.asarray(grid)))
    smooth = gaussian_smooth(grid, losses, sigma)
    centre = points // 2
    return float((smooth[centre + 1] - smooth[centre - 1]) / (grid[centre + 1] - grid[centre - 1]))


def run(config: dict[str, Any], run_dir: RunDir) -> dict[str, Any]:
    task = TurnOff(
        cell=PRESETS[config["preset"]],
        t_end=config["t_end"],
        dt=config["dt"],
        readout=READOUTS["soft"],
    )

    def ode_at(rtol):
        solver = SOLVERS[config["solver"]]()
        return task.ode_loss(solver=solver, rtol=rtol, atol=rtol, max_steps=config["max_steps"])

    ode = ode_at(config["rtol"])
    params = {"i_app": jnp.asarray(config["i_app"])}
    ts = jnp.linspace(0.0, config["t_end"], config["save_points"])
    sol = jax.jit(lambda p: pnde_solve(ode, p, ts=ts))(params)

    def pnde_gradient(rtol):
        return float(jax.jit(lambda p: pnde_solve(ode_at(rtol), p).grads["i_app"])(params))

    sweep = {rtol: pnde_gradient(rtol) for rtol in config["rtol_sweep"]}
    V = np.asarray(ode.solve(params, saveat=diffrax.SaveAt(ts=ts)).ys[0][0])  # forward V at ts
    grad_pnde = float(sol.grads["i_app"])
    grad_smoothed = smoothed_slope(
        task, config["i_app"], config["sigma"], config["smoothing_points"]
    )
    grad_bptt = float(jax.jit(bptt(task.loss))(params, None)[1]["i_app"])
    running = np.asarray(sol.running_grads["i_app"])
    adjoint_V = np.asarray(sol.adjoint[0][0])
    metrics = {
        "grad_pnde": grad_pnde,
        "grad_smoothed": grad_smoothed,
        "grad_bptt_leapfrog": grad_bptt,
        "sign_agrees": bool(np.sign(grad_pnde) == np.sign(grad_smoothed)),
        "pnde_over_smoothed": grad_pnde / grad_smoothed if grad_smoothed else None,
        "loss_ode": float(sol.loss),
        "loss_leapfrog": float(task.loss(params)),
        "max_abs_adjoint_v": float(np.nanmax(np.abs(adjoint_V))),
        "running_grad_sign_changes": int(np.sum(np.diff(np.sign(running[running != 0])) != 0)),
        **{f"grad_pnde_rtol{rtol:g}": grad for rtol, grad in sweep.items()},
    }
    plot(run_dir, np.asarray(ts), V, running, adjoint_V, metrics, config)
    return metrics


def plot(run_dir, ts, V, running, adjoint_V, metrics, config) -> None:
    zoom = ts <= config["zoom_ms"]
    fig, axes = plotting.figure(ncols=2, nrows=2, width=6.0, height=3.0)
    for col, mask in enumerate((slice(None), zoom)):
        ax_g, ax_a = axes[0][col], axes[1][col]
        ax_g.plot(ts[mask], running[mask], color="tab:green", label="running gradient g(t)")
        ax_g.axhline(
            metrics["grad_smoothed"],
            color="tab:red",
            ls="--",
            lw=0.8,
            label="slope of smoothed loss",
        )
        ax_g.axhline(0.0, color="gray", lw=0.5)
        ax_a.plot(ts[mask], adjoint_V[mask], color="tab:purple", lw=0.8, label="adjoint dL/dV(t)")
        twin = ax_a.twinx()
        twin.plot(ts[mask], V[mask], color="tab:orange", lw=0.5, alpha=0.6)
        if col == 1:
            twin.set_ylabel("V (mV)", color="tab:orange")
        ax_a.set(xlabel="time (ms)")
        ax_g.set(title="whole run" if col == 0 else f"first {config['zoom_ms']:g} ms")
        if col == 0:
            ax_g.set_ylabel("dL/dI_app accumulated from t1 to t")
            ax_a.set_ylabel("adjoint a_V(t)")
            ax_g.legend(fontsize=7)
            ax_a.legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"pnde over {config['t_end'] / 1000:g} s at I_app = {config['i_app']:g}: "
        f"gradient {metrics['grad_pnde']:.3g} vs smoothed slope {metrics['grad_smoothed']:.3g}"
    )
    run_dir.save_figure(fig, "adjoint_drift.png")


def check(config: dict[str, Any]) -> None:
    require_steps(config["t_end"], config["dt"])
    # pnde keeps the dense forward solution of max_steps steps (Tsit5: about 7 stages of
    # the 3-variable augmented state), the adjoint at every save point, and the smoothed
    # landscape evaluates smoothing_points runs of the stepper at once
    require_fits(
        8.0 * (config["max_steps"] * 7 * 3 + config["save_points"] * 8)
        + 8.0 * config["smoothing_points"] * 3,
        "pnde's dense forward solution, the saved adjoint and the landscape",
    )


SETTINGS = (
    PRESET,
    Setting("i_app", 100.0, "the constant applied current", "µA/cm²", any_value=True),
    Setting("t_end", 10_000.0, "length of the run", "ms", positive=True),
    Setting(
        "dt",
        0.1,
        "step of the leapfrog stepper used for the smoothed landscape and BPTT",
        "ms",
        positive=True,
    ),
    Setting(
        "solver",
        "tsit5",
        "diffrax solver of the forward and adjoint solves",
        choices=tuple(SOLVERS),
    ),
    Setting(
        "rtol",
        1e-6,
        "diffrax tolerance (rtol = atol) of the forward and the adjoint solves",
        positive=True,
    ),
    Setting(
        "rtol_sweep",
        [1e-4, 1e-6, 1e-8, 1e-10],
        "tolerances at which the pnde gradient is also computed",
        positive=True,
        quick=[1e-4, 1e-8],
    ),
    Setting("max_steps", 2_000_000, "diffrax step budget of each solve", low=1, high=MAX_LOOP),
    Setting(
        "sigma",
        5.0,
        "width of the Gaussian smoothing whose slope is the reference",
        "µA/cm²",
        positive=True,
    ),
    Setting(
        "smoothing_points",
        241,
        "currents (over +-6 sigma) of the smoothed landscape",
        low=11,
    ),
    Setting(
        "save_points",
        20_001,
        "times at which the adjoint and the running gradient are saved",
        low=10,
        quick=4001,
    ),
    Setting("zoom_ms", 500.0, "length of the zoomed panels", "ms", positive=True),
    Setting("x64", True, "simulate in float64"),
)

EXPERIMENT = Experiment(
    name="adjoint-drift",
    summary="the pnde adjoint and running gradient over a long single-cell run drift and explode at spikes (Fig. 6)",
    run=run,
    settings=SETTINGS,
    check=check,
)
