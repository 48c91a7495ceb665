"""The registry says what a signal cannot take, and experiments derive their refusals
from it."""

from bbpes import signals
from bbpes.experiments import rober, spiral


def test_what_a_task_cannot_train_with_comes_from_the_registry():
    observed = signals.unsupported({"loss", "ode_loss"}, observed=True)
    assert set(observed) == {"pnde", "guided_es"}
    assert "observed at many times" in observed["pnde"]
    # a loss observed once: pnde takes it; a truncated loss: guided ES has its guide
    assert "pnde" not in signals.unsupported({"loss", "ode_loss"})
    assert "guided_es" not in signals.unsupported({"loss", "truncated_loss"})
    assert observed == spiral.UNSUPPORTED
    assert observed == rober.UNSUPPORTED
    assert "pnde" not in spiral.METHODS and "guided_es" not in spiral.METHODS
    assert "fnde" in spiral.METHODS
    for reason in observed.values():  # `bbpes show` states why
        assert reason in spiral.EXPERIMENT.help["method"]
        assert reason in rober.EXPERIMENT.help["methods"]


def test_available_needs_a_guide_form_for_guided_es():
    assert "guided_es" not in signals.available(signals.LossForms(loss=len))
    assert "guided_es" in signals.available(signals.LossForms(loss=len, surrogate_loss=len))
