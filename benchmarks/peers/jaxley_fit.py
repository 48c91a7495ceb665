"""One Jaxley gradient-descent fit for `bbpes bench peers --part fit`, by Jaxley's
documented recipe: `make_trainable`, bounds in `jx.ParamTransform` with
`SigmoidTransform`, `jax.value_and_grad` of a loss of `jx.integrate`, `optax.adam`,
several starts one after another.

Runs in `.venv-peers` (made by `make peers`, where bbpes is installed too):

    .venv-peers/bin/python benchmarks/peers/jaxley_fit.py CONFIG_JSON

CONFIG_JSON: `problem` (`hh`, `simplecell`: bbpes's suite, `bbpes.fitting.suite`),
`seed`, `starts`, `steps` (Adam steps per start), `lr`, `tolerance` (stop at the first
start whose best point is within it of the truth), `loss` (`features`, the default;
`mse`: the traces' mean squared error; `both`: their sum).

The loss is (by default) bbpes's soft feature loss (`bbpes.fitting.suite.make_loss`: the same
features and stds as every other tool, relaxed to be differentiable) on Jaxley's own
trace (V every 0.1 ms), its target made by Jaxley at the truth. Jaxley's `HH` computes
NEURON's `hh` rates exactly (no table), at 6.3 °C.

Prints one JSON object with `cost_per_step` (a gradient step's seconds over a forward
loss's) and per step `[seconds since the fit started, loss, evaluations so far,
*parameters]` (evaluations: steps x cost_per_step).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main() -> None:
    import jax

    jax.config.update("jax_platform_name", "cpu")
    import jax.numpy as jnp
    import jaxley as jx
    import optax
    from jaxley.channels import HH
    from jaxley.optimize.transforms import SigmoidTransform

    from bbpes.fitting import suite

    cfg = json.loads(sys.argv[1])
    cell, space, protocol, truth, _ = suite.GROUND_TRUTH[cfg["problem"]]()
    names = {"gnabar": "HH_gNa", "gkbar": "HH_gK", "gl": "HH_gLeak"}
    comp = jx.Compartment()
    comp.set("radius", float(cell.diam) / 2.0)
    comp.set("length", float(cell.L))
    comp.set("capacitance", 1.0)
    comp.insert(HH())
    comp.set("v", -65.0)
    comp.init_states()
    comp.record("v", verbose=False)
    dt, duration, every = protocol.dt, protocol.duration, protocol.record_every
    currents = [
        jx.step_current(protocol.start, protocol.end - protocol.start, a, dt, duration)
        for a in protocol.amplitudes
    ]
    for p in space.parameters:
        comp.make_trainable(names[p.name], verbose=False)
    transform = jx.ParamTransform(
        [{names[p.name]: SigmoidTransform(p.low, p.high)} for p in space.parameters]
    )

    def voltage(params):
        sweeps = []
        for current in currents:
            stimuli = comp.data_stimulate(current, None)
            v = jx.integrate(comp, params=params, data_stimuli=stimuli, delta_t=dt, t_max=duration)
            sweeps.append(v[0, : protocol.n_steps + 1 : every])
        return jnp.stack(sweeps)

    truth_params = [{names[p.name]: jnp.asarray([t])} for p, t in zip(space.parameters, truth)]
    target = np.asarray(voltage(truth_params))
    kind = cfg.get("loss", "features")
    floss, _ = suite.make_loss(target, protocol, kind, suite.DEFAULT_FEATURES, 0.05, 2.0)

    def loss(opt_params):
        return floss(voltage(transform.forward(opt_params)), soft=True)

    forward = jax.jit(loss)
    step_fn = jax.jit(jax.value_and_grad(loss))
    optimizer = optax.adam(cfg["lr"])
    rng = np.random.default_rng(cfg["seed"])

    def start_point():
        values = [rng.uniform(p.low, p.high) for p in space.parameters]
        params = [{names[p.name]: jnp.asarray([v])} for p, v in zip(space.parameters, values)]
        return transform.inverse(params)

    z = start_point()
    t0 = time.perf_counter()
    jax.block_until_ready(step_fn(z))
    jax.block_until_ready(forward(z))
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(3):
        jax.block_until_ready(forward(z))
    t_fwd = (time.perf_counter() - t0) / 3
    t0 = time.perf_counter()
    for _ in range(3):
        jax.block_until_ready(step_fn(z))
    cost = (time.perf_counter() - t0) / 3 / t_fwd

    truth_arr = np.asarray(truth)
    log, evaluations, reached = [], 0.0, False
    t0 = time.perf_counter()
    for _start in range(cfg["starts"]):
        opt_params = start_point()
        state = optimizer.init(opt_params)
        best = np.inf
        for _ in range(cfg["steps"]):
            value, grad = step_fn(opt_params)
            evaluations += cost
            params = transform.forward(opt_params)
            values = [float(params[k][names[p.name]][0]) for k, p in enumerate(space.parameters)]
            value = float(value)
            log.append([time.perf_counter() - t0, value, evaluations, *values])
            if value < best:
                best = value
                if np.max(np.abs(np.asarray(values) / truth_arr - 1.0)) <= cfg["tolerance"]:
                    reached = True
                    break
            updates, state = optimizer.update(grad, state)
            opt_params = optax.apply_updates(opt_params, updates)
        if reached:
            break
    print(
        json.dumps(
            {
                "jaxley": jx.__version__ if hasattr(jx, "__version__") else "",
                "compile_seconds": compile_seconds,
                "forward_seconds": t_fwd,
                "cost_per_step": cost,
                "stopped": "tolerance" if reached else "budget",
                "log": log,
            }
        )
    )


if __name__ == "__main__":
    main()
