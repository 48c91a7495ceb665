"""Neuroptimus test case 1 over 10 seeds: `bbpes run fit` (the hh soma, 1,000
evaluations) with one method, each seed's outcome printed as a JSON line.

    python benchmarks/fit_test_case_1.py evosax:CMA_ES 10 1.0 0    # seeds 0-9
    python benchmarks/fit_test_case_1.py evosax:CMA_ES 10 1.0 10   # seeds 10-19 (held out)

Arguments: method, population (`samples`), initial `sigma`, first seed. Runs go to
runs/tc1/<method>_<seed>/. docs/fitting.md reports the lines (docs/data/fit/).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from bbpes.experiments.fit import EXPERIMENT, run
from bbpes.runs import RunDir

KEYS = (
    "max_relative_error",
    "best_hard_loss",
    "evaluations_to_tolerance",
    "seconds_to_tolerance",
    "seconds",
    "recovered",
)


def main(method: str, samples: int, sigma: float, first: int) -> None:
    for seed in range(first, first + 10):
        overrides = {"method": method, "samples": samples, "sigma": sigma, "evaluations": 1000}
        config = EXPERIMENT.config(overrides, seed=seed)
        config["resume"] = False
        out = Path("runs/tc1") / f"{method.replace(':', '_')}_{seed}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        metrics = run(config, RunDir(out))
        print(json.dumps({**{k: metrics.get(k) for k in KEYS}, "seed": seed}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
