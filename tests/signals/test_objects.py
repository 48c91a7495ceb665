"""A signal is one object that owns what it knows: its loss form, its step size and
clip, its knobs, its cost, and the learner it builds (checked here against what each
of those must be, so that a signal that lies about itself fails)."""

import jax
import jax.numpy as jnp
import optax
import pytest

from bbpes import signals
from bbpes.errors import ConfigError
from bbpes.signals import BPTT, ES, Knob, LossForms


def quadratic(w):
    return jnp.sum((w - 1.0) ** 2)


def test_each_signal_takes_the_step_size_of_its_kind_and_the_clip_it_says():
    settings = {"lr": 0.1, "lr_es": 0.01, "clip": 1.0}
    rates = []

    def record(rate):
        rates.append(rate)
        return optax.sgd(rate)

    for name, rate in (("es", 0.01), ("bptt", 0.1), ("forward_gradient", 0.1)):
        signals.signal(name).optimizer(settings, record)
        assert rates[-1] == rate, name
    # a clipped signal's update is clipped to the global norm `clip`; the unclipped is not
    big = {"w": jnp.full(4, 100.0)}
    for name, clipped in (("bptt", True), ("bptt_noclip", False), ("es", False)):
        opt = signals.signal(name).optimizer(settings, optax.sgd)
        update, _ = opt.update(big, opt.init(big))
        norm = float(optax.tree.norm(update))
        expected = settings["lr" if signals.signal(name).lr == "bp" else "lr_es"] * (
            1.0 if clipped else 200.0
        )
        assert norm == pytest.approx(expected, rel=1e-5), name


def test_what_the_study_tunes_follows_the_step_size():
    assert signals.signal("es").tuned == "lr_es"
    assert signals.signal("bptt_checkpointed").tuned == "lr"
    assert signals.signal("evosax:CMA_ES").tuned == "sigma"  # sets its own step
    assert signals.signal("evosax:CMA_ES").step_setting is None


def test_forward_passes_per_iteration_are_the_signals_own():
    s = {"samples": 10, "tangents": 0}
    assert signals.signal("es").forward_passes(s) == 11  # the centre is scored too
    assert signals.signal("weight_perturbation").forward_passes(s) == 11
    assert signals.signal("forward_gradient").forward_passes(s) == 20  # 0: as many as samples
    assert signals.signal("forward_gradient").forward_passes({**s, "tangents": 3}) == 6
    assert signals.signal("finite_difference").forward_passes(s, n_params=7) == 15
    assert signals.signal("evosax:SNES").forward_passes(s) == 10
    assert signals.signal("bptt").forward_passes(s) is None  # measured, not assumed


def test_bptt_trains_on_the_form_it_names_and_refuses_a_task_without_it():
    checkpointed = signals.signal("bptt_checkpointed")
    assert isinstance(checkpointed, BPTT) and checkpointed.needs == "checkpointed_loss"
    learner = checkpointed.learner(LossForms(checkpointed_loss=quadratic), optax.sgd(0.1), {})
    state, _ = learner.step(learner.init(jnp.zeros(3)), jax.random.key(1))
    assert jnp.allclose(learner.params(state), 0.2)  # one SGD step on the exact gradient -2
    with pytest.raises(ConfigError, match="not available"):
        checkpointed.learner(LossForms(loss=quadratic), optax.sgd(0.1), {})


def test_a_new_variant_is_one_object():
    mine = BPTT(name="bptt_mine", clip=False, needs="surrogate_loss")
    assert mine.family == "backprop" and mine.tuned == "lr"
    learner = mine.learner(LossForms(surrogate_loss=quadratic), optax.sgd(0.5), {})
    state, _ = learner.step(learner.init(jnp.zeros(2)), jax.random.key(0))
    assert jnp.allclose(learner.params(state), 1.0)


def test_knobs_shared_by_name_share_their_default_and_check_their_range():
    seen = {}
    for name in signals.names():
        for knob in signals.signal(name).knobs:
            assert seen.setdefault(knob.name, knob.default) == knob.default, (name, knob.name)
    assert signals.knob_defaults() == seen
    with pytest.raises(ConfigError, match="samples must be even"):
        signals.signal("es").check({"samples": 7})
    with pytest.raises(ConfigError, match=r"guided_alpha must be <= 1"):
        signals.signal("guided_es").check({"guided_alpha": 1.5})
    with pytest.raises(ConfigError, match=r"es_chunk must be >= 0 \(0: all at once\)"):
        signals.signal("es").check({"es_chunk": -1})
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        signals.signal("evosax:CMA_ES").check({"sigma": 0.0})
    assert Knob("x", 1.0, "a rate", "1/ms").describe() == "a rate [1/ms]"


def test_sigma_means_one_thing_per_signal_and_says_which():
    helps = {
        n: dict((k.name, k.help) for k in signals.signal(n).knobs)["sigma"]
        for n in ("es", "guided_es", "evosax:CMA_ES")
    }
    assert "per weight" in helps["es"]
    assert "sqrt(n_params)" in helps["guided_es"]
    assert "std_init" in helps["evosax:CMA_ES"]


def test_a_signal_by_reference_and_bad_references(tmp_path, monkeypatch):
    (tmp_path / "my_signals.py").write_text(
        "from bbpes.signals import ES\n"
        "WIDE = ES(name='es_wide', reference='mine', color='black')\n"
        "NOT_A_SIGNAL = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    wide = signals.signal("my_signals:WIDE")
    assert isinstance(wide, ES) and wide.name == "es_wide" and wide.color == "black"
    with pytest.raises(ConfigError, match="not a bbpes Signal"):
        signals.signal("my_signals:NOT_A_SIGNAL")
    with pytest.raises(ConfigError, match="has no 'MISSING'"):
        signals.signal("my_signals:MISSING")
    with pytest.raises(ConfigError, match="cannot import 'no_such_module_xyz'"):
        signals.signal("no_such_module_xyz:X")
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        signals.signal("nope")


def test_colours_come_from_the_signals():
    assert signals.color("es") == "tab:red" and signals.color("bptt") == "tab:blue"
    assert signals.color("bptt_scaled") is None  # not a signal: matplotlib's cycle
    colours = [signals.signal(n).color for n in signals.SIGNALS]
    assert all(colours)
