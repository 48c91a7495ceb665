"""eFEL held open for `bbpes bench peers --part features`: feature extraction over a
batch of traces, timed on request so that the orchestrator can interleave it with
`bbpes.features.extract`.

Runs in `.venv-peers` (made by `make peers`):

    .venv-peers/bin/python benchmarks/peers/efel_worker.py CONFIG_JSON

CONFIG_JSON holds `traces` (an .npy file of V in mV, shape `(n_traces, T)`), `dt` (ms
between samples), `stim_start`, `stim_end` (ms), `names` (eFEL feature names) and
`processes` (the pool of the parallel route). Every trace is one dict of eFEL's
`get_feature_values`, all in one call (eFEL's batched interface). Prints `{"ready"}`
after a warm-up call, then answers each command line on stdin with one JSON line:

- `time serial`: one `efel.get_feature_values(traces, names)` call (the serial map);
- `time pool`: the same with `parallel_map=multiprocessing.Pool(processes).map` (eFEL's
  documented way to parallelise over traces; the pool is made once);
- `values`: per feature, each trace's value (the mean of eFEL's per-trace array, as
  BluePyOpt scores it; None when eFEL returns None or an empty array);
- `quit`.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import time

import numpy as np


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    import efel

    cfg = json.loads(sys.argv[1])
    voltage = np.load(cfg["traces"]).astype(np.float64)
    t = np.arange(voltage.shape[1]) * cfg["dt"]
    traces = [
        {"T": t, "V": v, "stim_start": [cfg["stim_start"]], "stim_end": [cfg["stim_end"]]}
        for v in voltage
    ]
    names = list(cfg["names"])
    pool = multiprocessing.get_context("fork").Pool(cfg["processes"])
    maps = {"serial": None, "pool": pool.map}

    def call(route: str):
        return efel.get_feature_values(
            traces, names, parallel_map=maps[route], raise_warnings=False
        )

    t0 = time.perf_counter()
    results = call("serial")
    first = time.perf_counter() - t0
    call("pool")
    print(
        json.dumps({"ready": True, "first_seconds": first, "version": efel.__version__}),
        flush=True,
    )
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "time":
            c0, t0 = cpu_seconds(), time.perf_counter()
            call(words[1])
            out = {"seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - c0}
        elif words[0] == "values":
            out = {
                name: [
                    float(np.mean(r[name])) if r[name] is not None and len(r[name]) else None
                    for r in results
                ]
                for name in names
            }
        else:
            out = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(out), flush=True)
    pool.close()


if __name__ == "__main__":
    main()
