"""The command-line contract of DESIGN.md: files, one-line errors with exit code 2,
nothing written on bad input, no overwriting, resume."""

from __future__ import annotations

import json

import jax
import pytest

from bbpes.cli import main


def test_list_names_every_experiment(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "turn-off" in out
    signals = out.split("learning signals", 1)[1]  # and every signal, with what it needs
    assert "bptt_checkpointed    backprop  needs checkpointed_loss" in signals
    assert "evosax:CMA_ES" in signals


def test_show_a_signal_gives_its_needs_cost_and_knobs(capsys):
    assert main(["show", "guided_es"]) == 0
    out = capsys.readouterr().out
    assert "needs the task's loss, and one of truncated_loss, surrogate_loss" in out
    assert "step size: lr_es; gradient clip: no; tuned on: lr_es" in out
    assert "sigma = 0.02  # perturbation std per weight (the whole perturbation's scale" in out
    assert main(["show", "evosax:SNES"]) == 0
    assert "step size: its own" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no-such-experiment"], "unknown experiment"),
        (["run", "turn-off", "--set", "nope=1"], "unknown setting 'nope'"),
        (["run", "turn-off", "--set", "steps=many"], "bad value 'many' for 'steps'"),
        (["run", "turn-off", "--set", "readout=fuzzy"], "bad value 'fuzzy' for 'readout'"),
        (["run", "turn-off", "--set", "methods=es,magic"], "bad value 'magic'"),
        (["run", "turn-off", "--set", "samples=7"], "samples must be even"),
        (["run", "turn-off", "--set", "steps"], "KEY=VALUE"),
        (["run", "turn-off", "--resume"], "--resume needs --out"),
        (["run"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, monkeypatch, one_line_error, argv, message
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        code = main(
            [*argv, "--out", str(tmp_path / "out")]
            if argv[:1] == ["run"] and len(argv) > 1 and "--resume" not in argv
            else argv
        )
        raise SystemExit(code)
    assert exit_info.value.code == 2
    assert message in one_line_error()
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_run_writes_the_contract_files_and_refuses_to_overwrite(
    tmp_path, capsys, tiny, one_line_error
):
    out = tmp_path / "run"
    assert main(["run", "turn-off", "--quick", "--out", str(out), *tiny]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == "turn-off" and config["steps"] == 3 and config["quick"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "initial_loss",
        "final_loss_es",
        "final_loss_bptt",
        "final_i_app_es",
        "final_i_app_bptt",
    ):
        assert isinstance(metrics[key], float)
    assert metrics["device_count"] == jax.device_count() >= 1
    assert metrics["device_kind"] == jax.devices()[0].device_kind
    assert metrics["backend"] == jax.default_backend()
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {r["label"] for r in history} == {"es", "bptt"}
    assert {p.name for p in out.glob("*.png")} == {"landscape.png", "gradients.png", "training.png"}
    printed = capsys.readouterr()
    assert str(out) in printed.out
    # the run directory is named on stderr when the run starts, before any progress
    assert printed.err.splitlines()[0] == f"bbpes: running turn-off in {out}/"

    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(["run", "turn-off", "--quick", "--out", str(out), *tiny]) == 2
    assert "already holds results" in one_line_error()
    assert (out / "metrics.json").read_bytes() == before


def test_resume_finishes_a_run_with_the_same_numbers(tmp_path, capsys, tiny, one_line_error):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "turn-off", "--quick", "--out", str(a), *tiny]) == 0
    assert main(["run", "turn-off", "--quick", "--out", str(b), *tiny]) == 0
    (b / "metrics.json").unlink()  # as if killed before the end
    assert main(["run", "turn-off", "--resume", "--out", str(b)]) == 0
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for key in ("final_loss_es", "final_i_app_es", "final_i_app_bptt"):
        assert ma[key] == mb[key]
    capsys.readouterr()
    assert main(["run", "turn-off", "--resume", "--out", str(b), "--set", "steps=9"]) == 2
    assert "settings differ" in one_line_error()
