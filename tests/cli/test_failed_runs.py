"""A run that fails leaves nothing that stops the same command from working again;
what existed before, a resumed run's files and saved progress are kept; the run
directory is named when the run starts and in the Ctrl-C hint."""

from __future__ import annotations

import json

import pytest

from bbpes.cli import main
from bbpes.errors import ConfigError
from bbpes.experiments import get as real_get
from bbpes.framework import Experiment, Setting, runner
from bbpes.runs import CHECKPOINTS


def _run(config, run_dir):
    """Writes a history line, then (for the `_late` failures) a checkpoint, then fails
    as `config["fail"]` says."""
    run_dir.append_history([{"label": "fake", "step": 1, "loss": 1.0}])
    fail = config["fail"]
    if fail.endswith("_late"):
        (run_dir.path / CHECKPOINTS).mkdir()
        (run_dir.path / CHECKPOINTS / "fake.eqx").write_bytes(b"state")
    if fail.startswith("config"):
        raise ConfigError("MNIST not found in /nowhere and downloading failed;\n  set BBPES_DATA")
    if fail.startswith("bug"):
        raise RuntimeError("a bug")
    if fail == "interrupt":
        raise KeyboardInterrupt
    return {"loss": 0.5}


FAKE = Experiment(
    name="fake",
    summary="a run that fails as told",
    run=_run,
    settings=(
        Setting(
            "fail",
            "none",
            "how the run fails",
            choices=("none", "config", "config_late", "bug", "bug_late", "interrupt"),
        ),
    ),
)


@pytest.fixture(autouse=True)
def fake_experiment(monkeypatch):
    monkeypatch.setattr(runner, "get", lambda name: FAKE if name == "fake" else real_get(name))


def test_a_config_error_inside_run_is_one_line_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "made" / "r3"
    assert main(["run", "fake", "--set", "fail=config", "--out", str(out)]) == 2
    started, error = capsys.readouterr().err.splitlines()  # no traceback
    assert started == f"bbpes: running fake in {out}/"
    assert (
        error == "bbpes: error: MNIST not found in /nowhere and downloading failed; set BBPES_DATA"
    )
    assert not (tmp_path / "made").exists()  # the parents this run made are gone too
    assert main(["run", "fake", "--out", str(out)]) == 0  # so the rerun works
    assert json.loads((out / "metrics.json").read_text())["loss"] == 0.5


def test_a_config_error_after_checkpoints_still_leaves_nothing(tmp_path):
    out = tmp_path / "r"
    assert main(["run", "fake", "--set", "fail=config_late", "--out", str(out)]) == 2
    assert not out.exists()


def test_a_directory_that_existed_is_kept_and_emptied(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    assert main(["run", "fake", "--set", "fail=config", "--out", str(out)]) == 2
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_shared_runs_folder_and_other_runs_in_it_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "other").mkdir(parents=True)
    (tmp_path / "runs" / "other" / "config.json").write_text("{}")
    assert main(["run", "fake", "--set", "fail=config"]) == 2  # default out: runs/fake-TIME
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["other"]


def test_an_error_before_any_checkpoint_leaves_nothing(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="a bug"):
        runner.run_experiment("fake", {"fail": "bug"}, out=out)
    assert not out.exists()


def test_an_error_after_checkpoints_keeps_them_for_resume(tmp_path, capsys):
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="a bug"):
        runner.run_experiment("fake", {"fail": "bug_late"}, out=out)
    assert (out / "config.json").exists() and (out / CHECKPOINTS / "fake.eqx").exists()
    assert f"--resume --out {out}" in capsys.readouterr().err


def test_a_resumed_runs_files_are_never_removed(tmp_path):
    out = tmp_path / "r"
    assert main(["run", "fake", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "fail": "config"}))
    (out / "metrics.json").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["run", "fake", "--resume", "--out", str(out)]) == 2
    assert set(before) <= {p.name for p in out.iterdir()}
    assert (out / "config.json").read_bytes() == before["config.json"]


def test_ctrl_c_keeps_the_run_and_its_hint_names_the_directory(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "fake", "--set", "fail=interrupt", "--out", str(out)]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"bbpes: running fake in {out}/"
    assert err[-1] == f"bbpes: interrupted; continue with: bbpes run fake --resume --out {out}"
    assert (out / "config.json").exists() and (out / "history.jsonl").exists()
