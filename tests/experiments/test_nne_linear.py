"""`nne-linear`: Theorem 2's existence claims and NNE on a small linear target."""

from __future__ import annotations

import numpy as np

from bbpes.experiments.nne_linear import best_frequencies, cap_genotype, cosine, theorem2_problem
from bbpes.framework.runner import run_experiment


def test_w_p_reaches_the_target_once_there_are_enough_genes():
    rng = np.random.default_rng(0)
    a, gene_map = theorem2_problem(rng, 6, 200, 2.0)
    W = np.asarray(gene_map.dense())
    assert set(np.unique(W)) == {-np.sqrt(3.0), 0.0, np.sqrt(3.0)}
    p = best_frequencies(W, a)
    assert np.all((p >= 0) & (p <= 1)) and np.linalg.norm(W @ p - a) < 1e-8
    x = cap_genotype(W, a)
    assert set(np.unique(x)) <= {0.0, 1.0} and cosine(W @ x, a) > 0.9


def test_tiny_run(tmp_path):
    settings = {
        "m": 4,
        "d": 2.0,
        "genes": [2, 32],
        "trials": 2,
        "nne_genes": [32],
        "population": 20,
        "generations": 60,
        "eval_every": 20,
    }
    run, metrics = run_experiment("nne-linear", settings, out=tmp_path / "run")
    assert metrics["cosine_best_p_n32"] > 0.999 > metrics["cosine_best_p_n2"]
    assert metrics["nne_population_loss_n32"] < 0.5 * metrics["nne_population_loss_start_n32"]
    assert metrics["nne_cosine_n32"] > metrics["nne_cosine_start_n32"] + 0.2
    assert (run.path / "theorem2.png").exists() and (run.path / "evolution.png").exists()
