"""`compare_runs` / `bbpes compare`: one plot of a history metric for every training of
every run, labelled by the settings that differ, and the final metrics side by side;
bad input is one line, exit code 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bbpes.cli import main
from bbpes.compare import compare_runs, plot_lines
from bbpes.errors import ConfigError

PNG = b"\x89PNG\r\n\x1a\n"


def make_run(path: Path, config: dict, history: list[dict], metrics: dict | None) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def history(scale: float) -> list[dict]:
    """Two trainings (es, bptt) of 3 steps, evaluated before the first step."""
    records = []
    for label, factor in (("es", 1.0), ("bptt", 0.5)):
        records.append({"label": label, "step": 0, "accuracy": 0.1})
        for step in (1, 2, 3):
            loss = scale * factor / step
            records.append(
                {
                    "label": label,
                    "step": step,
                    "loss": loss,
                    "seconds": 0.25 * step,
                    "nonfinite": False,
                }
            )
    return records


@pytest.fixture
def two_runs(tmp_path) -> list[Path]:
    base = {
        "experiment": "turn-off",
        "steps": 3,
        "sigma": 5.0,
        "methods": ["es", "bptt"],
        "seed": 0,
    }
    a = make_run(tmp_path / "a", base, history(1.0), {"final_loss_es": 0.25, "wall_seconds": 1.5})
    b = make_run(
        tmp_path / "b",
        {**base, "sigma": 2.0, "seed": 1},
        history(2.0),
        {"final_loss_es": 0.5, "wall_seconds": 2.5, "extra": 3},
    )
    return [a, b]


def test_lines_labels_and_tables(tmp_path, two_runs):
    out = tmp_path / "cmp"
    comparison = compare_runs(two_runs, out=out)
    assert comparison.experiment == "turn-off" and comparison.metric == "loss"
    assert comparison.differing == ["sigma", "seed"]
    assert [r.label for r in comparison.runs] == ["sigma=5, seed=0", "sigma=2, seed=1"]
    lines = {
        legend: (steps, seconds, values)
        for legend, steps, seconds, values in plot_lines(comparison)
    }
    assert sorted(lines) == sorted(
        f"{label} · {m}" for label in ("sigma=5, seed=0", "sigma=2, seed=1") for m in ("es", "bptt")
    )
    steps, seconds, values = lines["sigma=2, seed=1 · bptt"]
    assert steps == [1, 2, 3] and seconds == [0.25, 0.5, 0.75] and values == [1.0, 0.5, 1 / 3]

    assert comparison.files == {
        "figure": out / "compare.png",
        "markdown": out / "compare.md",
        "json": out / "compare.json",
    }
    assert (out / "compare.png").read_bytes()[:8] == PNG
    table = json.loads((out / "compare.json").read_text())
    assert table["table"] == {
        "final_loss_es": [0.25, 0.5],
        "wall_seconds": [1.5, 2.5],
        "extra": [None, 3],
    }
    assert table["runs"][1]["settings"] == {"sigma": 2.0, "seed": 1}
    assert table["runs"][1]["last_loss"] == {"es": 2.0 / 3, "bptt": 1.0 / 3}
    md = (out / "compare.md").read_text()
    assert "| final_loss_es | 0.25 | 0.5 |" in md
    assert "| sigma | 5 | 2 |" in md and "| extra |  | 3 |" in md


def test_another_metric_and_an_unfinished_run(tmp_path, two_runs):
    (two_runs[1] / "metrics.json").unlink()
    comparison = compare_runs(two_runs, metric="accuracy", out=tmp_path / "cmp")
    assert {legend: values for legend, _, _, values in plot_lines(comparison)} == {
        f"{label} · {m}": [0.1]
        for label in ("sigma=5, seed=0", "sigma=2, seed=1")
        for m in ("es", "bptt")
    }
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["finished"] for r in table["runs"]] == [True, False]
    assert table["table"]["final_loss_es"] == [0.25, None]


def test_identical_settings_are_told_apart_by_directory(tmp_path, two_runs):
    copy = tmp_path / "copy"
    shutil.copytree(two_runs[0], copy)
    comparison = compare_runs([two_runs[0], copy], out=tmp_path / "cmp")
    assert comparison.differing == []
    assert [r.label for r in comparison.runs] == ["a", "copy"]


@pytest.mark.parametrize(
    "edit, message",
    [
        ("other_experiment", "runs of different experiments cannot be compared: spiral, turn-off"),
        ("missing_metric", "has no history metric 'loss' (it has: accuracy)"),
        ("missing_dir", "no such run directory"),
        ("not_a_run", "holds no run (no config.json)"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, two_runs, capsys, edit, message):
    dirs = [str(d) for d in two_runs]
    b = two_runs[1]
    if edit == "other_experiment":
        (b / "config.json").write_text(json.dumps({"experiment": "spiral"}))
    elif edit == "missing_metric":
        records = [r for r in history(2.0) if "loss" not in r]
        (b / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    elif edit == "missing_dir":
        dirs.append(str(tmp_path / "nope"))
    elif edit == "not_a_run":
        (b / "config.json").unlink()
    out = tmp_path / "cmp"
    assert main(["compare", *dirs, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()
    with pytest.raises(ConfigError):
        compare_runs(dirs, out=out)
    assert not out.exists()


def test_the_command_prints_where_it_wrote_by_default(tmp_path, two_runs, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", *map(str, two_runs)]) == 0
    printed = capsys.readouterr().out
    (written,) = (tmp_path / "runs").iterdir()
    assert written.name.startswith("compare-")
    for name in ("compare.png", "compare.md", "compare.json"):
        assert str(Path("runs") / written.name / name) in printed


def test_two_real_runs(tmp_path, capsys):
    tiny = ["--quick", "--set", "t_end=200", "--set", "steps=2", "--set", "grid_points=5"]
    tiny += ["--set", "gradient_points=2", "--set", "samples=4", "--set", "methods=es"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "turn-off", *tiny, "--out", str(a)]) == 0
    assert main(["run", "turn-off", *tiny, "--set", "lr=0.5", "--out", str(b)]) == 0
    comparison = compare_runs([a, b], out=tmp_path / "cmp")
    assert comparison.differing == ["lr"]
    ours = {legend: values for legend, _, _, values in plot_lines(comparison)}
    expected = {}
    for run, label in ((a, "lr=1"), (b, "lr=0.5")):
        records = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        expected[label] = [r["loss"] for r in records if "loss" in r]
    assert ours == expected
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (a, b)]
    assert table["table"]["final_loss_es"] == [m["final_loss_es"] for m in metrics]
