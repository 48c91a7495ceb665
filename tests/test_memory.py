"""`bbpes.memory`: XLA's buffer sizes of small programs whose bytes are counted by hand,
and the memory budget from a given limit or the (faked) free memory."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import psutil

from bbpes import memory


def test_peak_bytes_are_the_arguments_and_outputs_a_program_holds():
    x = jnp.ones(1000, jnp.float32)  # 4000 bytes
    assert memory.compiled_peak_bytes(lambda a: 2 * a, x) == 4000 + 4000
    y = jnp.ones((1000, 3), jnp.float32)  # an output three times larger
    assert memory.compiled_peak_bytes(lambda a, b: a[:, None] * b, x, y) == 4000 + 2 * 12000


def test_a_learning_signal_is_its_estimator_when_the_learner_has_one():
    params, key = jnp.ones(250, jnp.float32), jax.random.key(0)

    def estimator(p, k):  # (loss, grads): 4 + 1000 bytes out, 1000 + key in
        return jnp.sum(p), 2 * p

    with_estimator = SimpleNamespace(estimator=estimator)
    expected = memory.compiled_peak_bytes(estimator, params, key)
    assert memory.learning_signal_peak_bytes(with_estimator, params, key) == expected
    assert expected >= 1000 + 1000 + 4
    # no estimator: the whole step from `init(params)` (here a state twice the params)
    stepper = SimpleNamespace(
        init=lambda p: jnp.concatenate([p, p]), step=lambda s, k: (s + 1, jnp.sum(s))
    )
    whole_step = memory.learning_signal_peak_bytes(stepper, params, key)
    assert whole_step == memory.compiled_peak_bytes(stepper.step, jnp.ones(500, jnp.float32), key)
    assert whole_step > expected


def test_the_budget_is_the_limit_given_else_a_fraction_of_what_is_free(monkeypatch):
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=10e9))
    assert memory.memory_limit_bytes(2.5) == 2.5e9
    assert memory.memory_limit_bytes() == 8e9  # 80% of the CPU host's free memory
    assert memory.memory_limit_bytes(0.0, fraction=0.5) == 5e9


def test_a_learning_signal_runs_once_as_it_is_measured():
    """`run_learning_signal` evaluates the program `learning_signal_peak_bytes` compiles:
    the estimator where there is one, else one step from `init(params)`."""
    calls = []
    params, key = jnp.ones(4, jnp.float32), jax.random.key(0)

    def estimator(p, k):
        calls.append("estimator")
        return jnp.sum(p), p

    memory.run_learning_signal(SimpleNamespace(estimator=estimator), params, key)
    stepper = SimpleNamespace(
        init=lambda p: 2 * p, step=lambda s, k: (calls.append("step"), (s, jnp.sum(s)))[1]
    )
    memory.run_learning_signal(stepper, params, key)
    assert calls == ["estimator", "step"]


def test_a_fresh_process_reports_its_own_peak_memory():
    """Filling 400 MB more in the child raises its peak by about 400 MB (both fills
    exceed the transient peak of importing JAX, which depends on the environment)."""
    small = memory.subprocess_peak_rss("numpy:ones", 50_000_000)  # 400 MB of float64
    large = memory.subprocess_peak_rss("numpy:ones", 100_000_000)  # 800 MB
    assert 350e6 < large - small < 450e6
    assert memory.peak_rss_bytes() > 10e6  # this process, for comparison
