"""One BluePyOpt fit for `bbpes bench peers --part fit`: a NEURON `hh` soma scored on
eFEL features, optimised by BluePyOpt's IBEA or CMA-ES, every evaluation logged.

Runs in `.venv-peers` (made by `make peers`):

    .venv-peers/bin/python benchmarks/peers/bluepyopt_fit.py CONFIG_JSON

CONFIG_JSON: `problem` (`hh`: Neuroptimus test case 1; `simplecell`: BluePyOpt's
example, a 10 x 10 µm soma as NEURON builds it from `simple.swc`), `method` (`ibea`,
`cma`), `seed`, `evaluations` (the budget), `offspring` (BluePyOpt's `offspring_size`),
`features` (eFEL names), `tolerance` (the run stops once the best point so far has
every parameter within it of the truth).

The target: eFEL's features of NEURON's own trace at the truth (NEURON's default
`usetable_hh = 1`), each with bbpes's std (`bbpes.fitting.loss.feature_targets`: 5% of
the value, with floors, 1 mV for absolute voltages), so both sides score the same
z-scores. An objective is BluePyOpt's `eFELFeature` score, |mean of eFEL's values -
target| / std, or 250 (its `max_score`) where the feature is undefined. The
evaluator is a plain `bluepyopt.evaluators.Evaluator` that runs NEURON in this process
(no process per protocol, BluePyOpt's `isolate_protocols=False`) and calls eFEL once
per evaluation for all sweeps; parameters are searched within the linear bounds as
BluePyOpt takes them.

Prints one JSON object: the setup, and per evaluation `[seconds since the
optimisation started, sum of objectives, *parameters]`.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

PROBLEMS = {
    "hh": {
        "diam": 10.0,
        "L": 100.0,
        "amplitudes": [0.3],
        "start": 200.0,
        "end": 700.0,
        "duration": 1000.0,
        "names": ["gnabar", "gkbar", "gl"],
        "bounds": [(0.001, 1.0), (0.001, 1.0), (1e-5, 1e-3)],
        "truth": [0.12, 0.036, 0.0003],
    },
    "simplecell": {
        "diam": 10.0,
        "L": 10.0,
        "amplitudes": [0.01, 0.05],
        "start": 100.0,
        "end": 150.0,
        "duration": 200.0,
        "names": ["gnabar", "gkbar"],
        "bounds": [(0.05, 0.125), (0.01, 0.075)],
        "truth": [0.12, 0.036],
    },
}
DT = 0.025
MAX_SCORE = 250.0


class Reached(Exception):
    """The best point so far is within the tolerance: the run is over."""


class Cell:
    """The soma in NEURON, one IClamp, V recorded every 0.1 ms."""

    def __init__(self, problem: dict):
        from neuron import h

        h.load_file("stdrun.hoc")
        h.cvode.active(0)
        h.secondorder = 0
        self.h, self.problem = h, problem
        self.soma = h.Section(name="soma")
        self.soma.nseg = 1
        self.soma.diam, self.soma.L, self.soma.cm = problem["diam"], problem["L"], 1.0
        self.soma.insert("hh")
        h.celsius = 6.3
        self.stim = h.IClamp(self.soma(0.5))
        self.stim.delay = problem["start"]
        self.stim.dur = problem["end"] - problem["start"]
        self.v = h.Vector().record(self.soma(0.5)._ref_v, 0.1)
        h.dt = DT
        h.steps_per_ms = 1.0 / DT

    def traces(self, params) -> list[dict]:
        seg, p = self.soma(0.5), self.problem
        for name, value in zip(p["names"], params):
            setattr(seg, f"{name}_hh", float(value))
        out = []
        for amp in p["amplitudes"]:
            self.stim.amp = amp
            self.h.finitialize(-65.0)
            self.h.continuerun(p["duration"])
            v = np.array(self.v)
            t = np.arange(v.size) * 0.1
            out.append({"T": t, "V": v, "stim_start": [p["start"]], "stim_end": [p["end"]]})
        return out


def main() -> None:
    import bluepyopt as bpopt
    import bluepyopt.deapext.optimisations as deap_opt
    import bluepyopt.deapext.optimisationsCMA as cma_opt
    import efel

    from bbpes.fitting.loss import feature_targets

    cfg = json.loads(sys.argv[1])
    problem = PROBLEMS[cfg["problem"]]
    names, tol = list(cfg["features"]), cfg["tolerance"]
    truth = np.asarray(problem["truth"])
    cell = Cell(problem)

    def features(params) -> list[dict[str, float]]:
        found = efel.get_feature_values(cell.traces(params), names, raise_warnings=False)
        return [
            {n: float(np.mean(r[n])) if r[n] is not None and len(r[n]) else np.nan for n in names}
            for r in found
        ]

    target = features(truth)
    values = {n: np.array([sweep[n] for sweep in target]) for n in names}
    targets = feature_targets(values)  # bbpes's stds, the same on both sides
    log: list[list[float]] = []
    best = [np.inf]
    clock = {"t0": time.perf_counter()}

    class Evaluator(bpopt.evaluators.Evaluator):
        def __init__(self):
            params = [
                bpopt.parameters.Parameter(n, bounds=b)
                for n, b in zip(problem["names"], problem["bounds"])
            ]
            objectives = [bpopt.objectives.Objective(f"{t.feature}_{t.sweep}") for t in targets]
            super().__init__(objectives, params)

        def evaluate_with_lists(self, param_list):
            found = features(param_list)
            scores = []
            for t in targets:
                x = found[t.sweep][t.feature]
                scores.append(abs(x - t.mean) / t.std if np.isfinite(x) else MAX_SCORE)
            total = float(np.sum(scores))
            log.append([time.perf_counter() - clock["t0"], total, *map(float, param_list)])
            if total < best[0]:
                best[0] = total
                if np.max(np.abs(np.asarray(param_list) / truth - 1.0)) <= tol:
                    raise Reached
            if len(log) >= cfg["evaluations"]:
                raise Reached  # the budget is spent
            return scores

        def init_simulator_and_evaluate_with_lists(self, param_list, target="scores"):
            return self.evaluate_with_lists(param_list)

        def evaluate_with_dicts(self, param_dict):
            return self.evaluate_with_lists([param_dict[n] for n in problem["names"]])

    evaluator = Evaluator()
    offspring = cfg["offspring"]
    generations = int(np.ceil(cfg["evaluations"] / offspring)) + 1
    if cfg["method"] == "ibea":
        optimisation = deap_opt.IBEADEAPOptimisation(
            evaluator=evaluator, offspring_size=offspring, seed=cfg["seed"] + 1
        )
    elif cfg["method"] == "cma":
        optimisation = cma_opt.DEAPOptimisationCMA(
            evaluator=evaluator,
            offspring_size=offspring,
            seed=cfg["seed"] + 1,
            selector_name="single_objective",
        )
    else:
        raise SystemExit(f"unknown method {cfg['method']!r} (ibea, cma)")
    clock["t0"] = time.perf_counter()
    stopped = "generations"
    try:
        optimisation.run(max_ngen=generations)
    except Reached:
        stopped = "tolerance or budget"
    print(
        json.dumps(
            {
                "bluepyopt": bpopt.__version__ if hasattr(bpopt, "__version__") else "",
                "efel": efel.__version__,
                "objectives": len(targets),
                "stopped": stopped,
                "log": log,
            }
        )
    )


if __name__ == "__main__":
    main()
