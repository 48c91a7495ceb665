"""A peer simulator held open for `bbpes bench peers --part sim`: NEURON (one process,
or a pool of one process per core) or Jaxley (vmapped), timed on request so that the
orchestrator can interleave it round by round with bbpes and the other peers.

Runs in `.venv-peers` (made by `make peers`):

    .venv-peers/bin/python benchmarks/peers/sim_worker.py TOOL CONFIG_JSON

TOOL is `neuron`, `neuron_pool` or `jaxley`. CONFIG_JSON holds the soma (`diam`, `L`
µm), the clamp (`amp` nA, `start`, `end`, `duration` ms, `dt` ms), `params` (a list of
`[gnabar, gkbar, gl]` S/cm²), `n` (how many of them one timed call simulates),
`usetable` (NEURON's `usetable_hh`) and `float64` (Jaxley). After building (and for
Jaxley compiling) the model it prints one JSON line `{"ready": ...}`, then answers
each command line on stdin with one JSON line:

- `time`: simulate `n` parameter sets once; `{"seconds", "cpu_seconds", "n"}` (CPU
  seconds of this process and, for the pool, of its worker processes);
- `trace K`: V (mV) every step of parameter set K, and its upward 0 mV crossings;
- `quit`.

Every tool records V at every step (NEURON in a `Vector`, Jaxley with `record("v")`).
NEURON runs its default fixed step (`secondorder = 0`, `cvode.active(0)`) with
`finitialize(-65)`; Jaxley its default `bwd_euler` (voltage by backward Euler, gates
exponentially) from v = -65 mV with the gates at steady state (`init_states`).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def crossings(v: np.ndarray, dt: float) -> list[float]:
    """Upward 0 mV crossings (ms), linearly interpolated."""
    i = np.flatnonzero((v[:-1] < 0.0) & (v[1:] >= 0.0))
    return ((i + (0.0 - v[i]) / (v[i + 1] - v[i])) * dt).tolist()


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# --- NEURON ------------------------------------------------------------------------

_MODEL: dict = {}


def neuron_model(cfg: dict) -> dict:
    """One `hh` soma with an IClamp, built once per process."""
    if _MODEL:
        return _MODEL
    from neuron import h

    h.load_file("stdrun.hoc")
    h.cvode.active(0)
    h.secondorder = 0
    soma = h.Section(name="soma")
    soma.nseg = 1
    soma.diam, soma.L, soma.cm = cfg["diam"], cfg["L"], 1.0
    soma.insert("hh")
    h.usetable_hh = cfg["usetable"]
    h.celsius = 6.3
    stim = h.IClamp(soma(0.5))
    stim.delay, stim.dur, stim.amp = cfg["start"], cfg["end"] - cfg["start"], cfg["amp"]
    v = h.Vector().record(soma(0.5)._ref_v)
    h.dt = cfg["dt"]
    h.steps_per_ms = 1.0 / cfg["dt"]
    h.tstop = cfg["duration"]
    _MODEL.update(h=h, soma=soma, stim=stim, v=v, cfg=cfg)
    return _MODEL


def neuron_run(params) -> np.ndarray:
    """V (mV) at every step for one `[gnabar, gkbar, gl]`."""
    m = _MODEL
    h, seg = m["h"], m["soma"](0.5)
    seg.gnabar_hh, seg.gkbar_hh, seg.gl_hh = params
    h.finitialize(-65.0)
    h.continuerun(m["cfg"]["duration"])
    return np.array(m["v"])


def _pool_chunk(chunk) -> float:
    """Simulate each parameter set of `chunk` in this pool process; its CPU seconds."""
    c0 = time.process_time()
    for p in chunk:
        neuron_run(p)
    return time.process_time() - c0


def _pool_init(cfg) -> None:
    neuron_model(cfg)


class Neuron:
    def __init__(self, cfg: dict, processes: int = 1):
        self.cfg, self.params = cfg, [tuple(p) for p in cfg["params"]]
        neuron_model(cfg)
        self.pool = None
        if processes > 1:
            import multiprocessing

            context = multiprocessing.get_context("fork")
            self.pool = context.Pool(processes, initializer=_pool_init, initargs=(cfg,))
            self.processes = processes

    def time(self) -> float:
        """Simulate `n` parameter sets; the CPU seconds of the pool's processes (which
        `RUSAGE_CHILDREN` misses while they live), 0 without a pool."""
        batch = self.params[: self.cfg["n"]]
        if self.pool is None:
            for p in batch:
                neuron_run(p)
            return 0.0
        k = self.processes
        return sum(self.pool.map(_pool_chunk, [batch[i::k] for i in range(k)]))

    def trace(self, k: int) -> np.ndarray:
        return neuron_run(self.params[k])


# --- Jaxley ------------------------------------------------------------------------


class Jaxley:
    def __init__(self, cfg: dict):
        import jax

        jax.config.update("jax_enable_x64", bool(cfg["float64"]))
        jax.config.update("jax_platform_name", "cpu")
        import jax.numpy as jnp
        import jaxley as jx
        from jaxley.channels import HH

        self.cfg, self.jax = cfg, jax
        comp = jx.Compartment()
        comp.set("radius", cfg["diam"] / 2.0)
        comp.set("length", cfg["L"])
        comp.set("capacitance", 1.0)
        comp.insert(HH())
        comp.set("v", -65.0)
        comp.init_states()
        current = jx.step_current(
            cfg["start"], cfg["end"] - cfg["start"], cfg["amp"], cfg["dt"], cfg["duration"]
        )
        comp.stimulate(current, verbose=False)
        comp.record("v", verbose=False)
        duration, dt = cfg["duration"], cfg["dt"]

        def simulate(p):
            state = comp.data_set("HH_gNa", p[0], None)
            state = comp.data_set("HH_gK", p[1], state)
            state = comp.data_set("HH_gLeak", p[2], state)
            return jx.integrate(comp, param_state=state, delta_t=dt, t_max=duration)[0]

        dtype = jnp.float64 if cfg["float64"] else jnp.float32
        self.params = jnp.asarray(np.asarray(cfg["params"]), dtype)
        self.batch = self.params[: cfg["n"]]
        self.many = jax.jit(jax.vmap(simulate))
        self.one = jax.jit(simulate)

    def time(self) -> float:
        self.jax.block_until_ready(self.many(self.batch))
        return 0.0

    def trace(self, k: int) -> np.ndarray:
        return np.asarray(self.one(self.params[k]), np.float64)


def main() -> None:
    tool, text = sys.argv[1], sys.argv[2]
    # a long configuration (a large population's parameters) comes as @FILE: one argument
    # of the command line may not exceed 128 KiB on Linux
    cfg = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    t0 = time.perf_counter()
    if tool == "neuron":
        sim = Neuron(cfg)
    elif tool == "neuron_pool":
        import os

        sim = Neuron(cfg, processes=cfg.get("processes") or os.cpu_count())
    elif tool == "jaxley":
        sim = Jaxley(cfg)
    else:
        raise SystemExit(f"unknown tool {tool!r} (neuron, neuron_pool, jaxley)")
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.time()  # warm-up: Jaxley compiles here, the pool forks its workers
    first = time.perf_counter() - t0
    info = {"ready": True, "setup_seconds": setup, "first_seconds": first, "n": cfg["n"]}
    if tool == "jaxley":
        import jaxley

        info["version"] = jaxley.__version__
    else:
        import neuron

        info["version"] = neuron.__version__
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "time":
            c0, t0 = cpu_seconds(), time.perf_counter()
            pool_cpu = sim.time()
            out = {"seconds": time.perf_counter() - t0}
            out["cpu_seconds"] = cpu_seconds() - c0 + pool_cpu
            out["n"] = cfg["n"]
        elif words[0] == "trace":
            v = sim.trace(int(words[1]))
            out = {"v": v.tolist(), "spikes": crossings(v, cfg["dt"])}
        else:
            out = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
