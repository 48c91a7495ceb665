"""The outputs of `bbpes run fit` and `bbpes run fit-neuron`: the fitted parameters
(`fitted.json`), the feature table (target, fitted value, z-score: `features.json` and
`.md`), the fitted model against the target per sweep (`sweeps.png`), the loss against
evaluations and seconds (`loss.png`), and the metrics; `fit_and_report` trains a fit
(`bbpes.fitting.training`) and writes them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import plotting, signals
from ..features import extract
from ..fitting.problem import Fit, jitted
from ..fitting.training import FitRun, train_fit
from ..runs import RunDir


def fit_and_report(config: Mapping[str, Any], fit: Fit, out: RunDir) -> dict[str, Any]:
    """Train `fit` as `config` says (`bbpes.fitting.training.train_fit`, in float64
    when `x64`), write its outputs into `out` (`report`) and return the metrics."""
    with jax.enable_x64(bool(config["x64"])):
        return report(config, fit, train_fit(config, fit, out), out)


def report(config: Mapping[str, Any], fit: Fit, run: FitRun, out: RunDir) -> dict[str, Any]:
    """The best point of `run` (lowest hard loss among the scored centres), written as
    `fitted.json`, `features.json`/`.md`, `sweeps.png`, `loss.png`; returns the metrics."""
    records, per_step = run.records, run.per_step
    best = min(
        records, key=lambda r: r["hard_loss"] if r["hard_loss"] == r["hard_loss"] else math.inf
    )
    values = np.array([best[f"value_{n}"] for n in fit.space.names])
    fitted = {
        p.name: {"value": float(v), "unit": p.unit, "low": p.low, "high": p.high}
        for p, v in zip(fit.space.parameters, values)
    }
    errors = fit.relative_errors(values)
    if errors is not None:
        for p, t, e in zip(fit.space.parameters, fit.truth, errors):
            fitted[p.name].update(truth=float(t), relative_error=float(e))
    out.write_json(
        "fitted.json", {"problem": fit.name, "method": config["method"], "parameters": fitted}
    )
    rows = feature_table(fit, values, out)
    plot_sweeps(fit, values, out)
    plot_loss(records, per_step, config["method"], out)

    tol = config["tolerance"]
    reached = [r for r in records if r.get("max_relative_error", math.inf) <= tol]
    first = reached[0] if reached else None
    metrics = {
        "problem": fit.name,
        "method": config["method"],
        "best_hard_loss": float(best["hard_loss"]),
        "evaluations": float(len(records) - 1) * per_step,
        "cost_per_step": run.cost,
        "seconds": float(records[-1].get("seconds", 0.0)) if records else 0.0,
        "stopped": run.stopped,
        **{f"fitted_{k}": v["value"] for k, v in fitted.items()},
        "max_abs_z": float(
            max((abs(r["z"]) for r in rows if r["z"] is not None), default=math.nan)
        ),
        "features_missing": sum(r["z"] is None for r in rows),  # scored the penalty
        **{f"timing_{k}": v for k, v in run.timings.items()},
    }
    if errors is not None:
        metrics["max_relative_error"] = float(np.max(errors))
        metrics["recovered"] = bool(np.max(errors) <= tol)
        metrics["evaluations_to_tolerance"] = (
            float(first["step"] * per_step) if first is not None else None
        )
        metrics["seconds_to_tolerance"] = float(first.get("seconds", 0.0)) if first else None
    return metrics


def fitted_voltage(fit: Fit, values: np.ndarray) -> np.ndarray:
    """The traces `(n_sweeps, T)` (mV) of the model at parameter `values`."""
    z = fit.space.to_unconstrained(jnp.asarray(values, dtype=jnp.result_type(float)))
    return np.asarray(jitted(fit, "voltage")(z))


def feature_table(fit: Fit, values: np.ndarray, out: RunDir) -> list[dict[str, Any]]:
    """Every feature target of `fit` with the fitted model's value and its z-score
    (`(fitted - mean) / std`; None where the model does not produce the feature), as
    `features.json` and `features.md`; returns the rows."""
    targets = _feature_targets(fit)
    rows: list[dict[str, Any]] = []
    if targets:
        v = fitted_voltage(fit, values)
        floss = _feature_loss(fit)
        names = tuple(dict.fromkeys(t.feature for t in targets))
        got = extract(
            jnp.asarray(v),
            fit.dt_recorded,
            floss.stim_start,
            floss.stim_end,
            names,
            settings=floss.settings,
        )
        for t in targets:
            x = float(np.asarray(got[t.feature])[t.sweep])
            z = (x - t.mean) / t.std if x == x else None
            rows.append(
                {
                    "sweep": t.sweep,
                    "feature": t.feature,
                    "target": t.mean,
                    "std": t.std,
                    "fitted": x if x == x else None,
                    "z": z,
                }
            )
    out.write_json("features.json", rows)
    lines = [
        f"# Features of the fit ({fit.name})",
        "",
        "| sweep | feature | target | std | fitted | z |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        fitted = "none" if r["fitted"] is None else f"{r['fitted']:.4g}"
        z = "penalty" if r["z"] is None else f"{r['z']:+.2f}"
        lines.append(
            f"| {r['sweep']} | {r['feature']} | {r['target']:.4g} | {r['std']:.3g} | {fitted} | {z} |"
        )
    out.file("features.md").write_text("\n".join(lines) + "\n")
    return rows


def _feature_loss(fit: Fit):
    from ..fitting.loss import FeatureLoss, WeightedLoss

    if isinstance(fit.loss, FeatureLoss):
        return fit.loss
    if isinstance(fit.loss, WeightedLoss):
        for term in fit.loss.terms:
            if isinstance(term, FeatureLoss):
                return term
    return fit.extra.get("feature_loss")


def _feature_targets(fit: Fit):
    floss = _feature_loss(fit)
    return () if floss is None else floss.targets


def plot_sweeps(fit: Fit, values: np.ndarray, out: RunDir) -> None:
    """`sweeps.png`: the fitted model's voltage over the target's, one panel a sweep."""
    v = fitted_voltage(fit, values)
    n = v.shape[0]
    fig, axes = plotting.figure(ncols=1, nrows=n, width=7.0, height=1.9, layout="constrained")
    t = np.arange(v.shape[1]) * fit.dt_recorded
    amps = fit.protocol.amplitudes
    for k in range(n):
        ax = axes[k][0]
        if fit.target is not None:
            ax.plot(t, np.asarray(fit.target)[k], color="0.6", lw=1.0, label="target")
        ax.plot(t, v[k], color="C3", lw=0.8, label="fitted")
        ax.set_ylabel("mV")
        ax.set_title(f"sweep {k}: {1000 * amps[k]:.0f} pA step", fontsize=8, loc="left")
        if k == 0:
            ax.legend(fontsize=7, loc="upper right")
    axes[-1][0].set_xlabel("time (ms)")
    out.save_figure(fig, "sweeps.png")


def plot_loss(records: list[dict], per_step: float, method: str, out: RunDir) -> None:
    """`loss.png`: the best hard loss so far against evaluations and against seconds."""
    steps = np.array([r["step"] for r in records], dtype=float)
    loss = np.minimum.accumulate(np.array([r["hard_loss"] for r in records], dtype=float))
    seconds = np.array([r.get("seconds", 0.0) for r in records], dtype=float)
    fig, grid = plotting.figure(ncols=2, width=4.5, height=3.4)
    axes = grid[0]
    for ax, x, label in ((axes[0], steps * per_step, "evaluations"), (axes[1], seconds, "seconds")):
        ax.plot(x, loss, color=signals.color(method) or "C0", label=method)
        ax.set_xlabel(label)
        ax.set_yscale("log" if np.all(loss > 0) and math.isfinite(loss.max()) else "linear")
    axes[0].set_ylabel("best hard loss so far")
    axes[0].legend(fontsize=7)
    out.save_figure(fig, "loss.png")
