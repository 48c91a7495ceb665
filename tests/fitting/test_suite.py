"""The ground-truth suite: each target is the truth's own traces, so the hard and the
soft loss vanish at the truth and not far from it; a recording-based fit reads B6."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bbpes.fitting import suite

EPHYS = Path(__file__).resolve().parents[3] / "shared" / "data" / "ephys" / "bluepyefe"


@pytest.mark.slow  # 17 s of compiling: make test-slow, and .ci/run
def test_the_simplecell_target_is_recovered_exactly_at_the_truth():
    fit = suite.build("simplecell")
    z = fit.space.to_unconstrained(jnp.asarray(fit.truth))
    hard, soft = jax.jit(fit.hard_loss), jax.jit(fit.soft_loss)
    assert float(hard(z)) < 1e-4 and float(soft(z)) < 1e-4
    off = fit.space.to_unconstrained(jnp.asarray(fit.truth) * jnp.array([0.8, 1.25]))
    assert float(hard(off)) > 0.5 and float(soft(off)) > 0.5
    assert fit.recovered(np.asarray(fit.truth) * 1.009) and not fit.recovered(
        np.asarray(fit.truth) * 1.02
    )


def test_recording_noise_moves_the_target_by_its_seed():
    a, b = (
        suite.build("simplecell", noise=0.5, seed=1),
        suite.build("simplecell", noise=0.5, seed=2),
    )
    assert np.std(a.target - b.target) == pytest.approx(0.5 * np.sqrt(2), rel=0.05)


@pytest.mark.slow  # 11 s of compiling 3-s traces: make test-slow
@pytest.mark.skipif(not EPHYS.exists(), reason="the shared ephys data is not beside this checkout")
def test_a_fit_to_cell_b6_reads_its_five_sweeps():
    files = lambda ch: ",".join(str(EPHYS / f"B6_Ch{ch}_IDRest_{k}.ibw") for k in range(181, 186))
    fit = suite.build("recording", recording=files(3), recording_current=files(0))
    assert fit.truth is None and fit.target.shape == (5, 12000)
    assert fit.protocol.dt * fit.protocol.record_every == pytest.approx(0.25)
    assert np.allclose(fit.protocol.amplitudes, (0.1187, 0.175, 0.2375, 0.2969, 0.3531), atol=2e-3)
    spikes = [t.mean for t in fit.loss.targets if t.feature == "Spikecount"]
    assert len(spikes) == 5 and all(s >= 1 for s in spikes) and spikes == sorted(spikes)
