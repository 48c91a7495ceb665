"""`bbpes bench ensemble`: the study's runs vmapped as one ensemble compute the same
step as the study's own step run once per run, and the speedup is separate / ensemble."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from bbpes.bench import ensemble, run_benchmark
from bbpes.errors import ConfigError

TINY = {"regime": "case_a", "scale": "tiny", "members": 3, "repeat": 1}


def test_the_ensemble_step_is_the_separate_steps_and_the_ratio_is_theirs(fake_timer):
    timer = fake_timer({"separate": 0.3, "ensemble": 0.2}, {"separate": 0.1, "ensemble": 0.4})
    with jax.enable_x64(False):  # as in production (the suite enables x64 globally)
        out = ensemble.run({**TINY, "signals": ["bptt", "es"]}, timer=timer)
    assert out["separate_over_ensemble_bptt"] == pytest.approx(1.5)
    assert out["separate_over_ensemble_es"] == pytest.approx(0.25)
    # the same update (float32 reassociation only), from three different networks
    assert out["max_state_gap_bptt"] < 1e-5 and out["max_state_gap_es"] < 1e-5
    assert [names for names, _ in timer.asked] == [["separate", "ensemble"]] * 2


def test_evosax_strategies_vmap_through_the_guarded_step(fake_timer):
    pytest.importorskip("evosax")
    timer = fake_timer({"separate": 0.3, "ensemble": 0.3})
    with jax.enable_x64(False):
        out = ensemble.run({**TINY, "signals": ["evosax:Open_ES"]}, timer=timer)
    assert out["max_state_gap_evosax:Open_ES"] < 1e-5
    assert out["separate_over_ensemble_evosax:Open_ES"] == pytest.approx(1.0)


def test_a_step_that_cannot_be_vmapped_is_reported_not_raised(fake_timer, monkeypatch):
    def branching(learner):  # Python control flow on a traced value: fails under vmap
        return lambda state, key, *batch: (state, {"loss": float(jnp.sum(batch[0]) > 0)})

    monkeypatch.setattr(ensemble, "guarded_step", branching)
    with jax.enable_x64(False):
        out = ensemble.run({**TINY, "signals": ["bptt"]}, timer=fake_timer())
    assert out["unvmappable_bptt"].startswith("ConcretizationTypeError")
    assert "separate_over_ensemble_bptt" not in out


@pytest.mark.parametrize(
    "bad", [{"members": "1"}, {"regime": "case_z"}, {"scale": "huge"}, {"signals": "nope"}]
)
def test_bad_settings_are_one_line_errors(bad):
    with pytest.raises(ConfigError):
        run_benchmark("ensemble", {"scale": "tiny", **bad})
