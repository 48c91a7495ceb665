"""`bbpes run NAME --config FILE`: an earlier run's config.json (or TOML with the same
keys) gives the same settings; `--set` and `--seed` win over it; bad files are one
line and exit code 2."""

from __future__ import annotations

import json
import re

import pytest

from bbpes.cli import main
from bbpes.errors import ConfigError
from bbpes.experiments import registry
from bbpes.framework.runner import read_settings_file, resolve_config
from bbpes.runs import to_jsonable

# the keys of metrics.json that are wall-clock times, which no rerun reproduces
WALL_CLOCK = ("wall_seconds",)


def _without_wall_clock(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in WALL_CLOCK and not k.startswith("seconds")}


def test_rerunning_a_config_json_reproduces_its_metrics_exactly(tmp_path, tiny):
    first, again = tmp_path / "first", tmp_path / "again"
    settings = [*tiny, "--set", "methods=es"]  # the random one
    assert main(["run", "turn-off", "--quick", "--seed", "3", "--out", str(first), *settings]) == 0
    assert (
        main(["run", "turn-off", "--config", str(first / "config.json"), "--out", str(again)]) == 0
    )
    assert (again / "config.json").read_text() == (first / "config.json").read_text()
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (first, again))
    assert "wall_seconds" in a and a.keys() == b.keys()
    assert _without_wall_clock(a) == _without_wall_clock(b)
    assert (first / "history.jsonl").read_text().count("\n") == (
        again / "history.jsonl"
    ).read_text().count("\n")


def test_set_and_seed_override_the_file_and_toml_is_read(tmp_path):
    toml = tmp_path / "settings.toml"
    toml.write_text('experiment = "turn-off"\nsteps = 4\nmethods = ["es"]\nsigma = 2\n')
    config = resolve_config(
        registry()["turn-off"], {"steps": "7"}, quick=True, seed=5, config_file=toml
    )
    assert config["steps"] == 7  # --set wins over the file
    assert config["seed"] == 5  # --seed wins over the file
    assert config["methods"] == ["es"] and config["sigma"] == 2.0  # the file over --quick
    assert isinstance(config["sigma"], float)
    quick = registry()["turn-off"].quick
    untouched = next(k for k in quick if k not in ("steps", "methods", "sigma"))
    assert config[untouched] == quick[untouched]  # --quick under the file


def test_a_quick_config_json_stays_quick_without_the_flag(tmp_path):
    experiment = registry()["turn-off"]
    stored = to_jsonable({"experiment": "turn-off", **experiment.config(quick=True, seed=2)})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(stored))
    again = to_jsonable({"experiment": "turn-off", **resolve_config(experiment, config_file=path)})
    assert again == stored


@pytest.mark.parametrize("name", sorted(registry()))
def test_every_experiments_config_json_reads_back_to_the_same_settings(tmp_path, name):
    experiment = registry()[name]
    for quick in (False, True):
        try:
            config = experiment.config(quick=quick)
        except ConfigError as error:  # this machine lacks something (Brian2, say)
            path = tmp_path / "partial.json"
            path.write_text(json.dumps({"experiment": name, "quick": quick}))
            with pytest.raises(ConfigError, match=re.escape(str(error))):
                resolve_config(experiment, config_file=path)
            continue
        stored = to_jsonable({"experiment": name, **config})
        path = tmp_path / f"{quick}.json"
        path.write_text(json.dumps(stored))
        settings, file_quick = read_settings_file(path, name)
        assert "experiment" not in settings and "quick" not in settings
        assert file_quick is quick
        again = resolve_config(experiment, config_file=path)
        assert to_jsonable({"experiment": name, **again}) == stored


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ('{"experiment": "spiral", "steps": 3}', ".json", "holds settings of 'spiral'"),
        ('{"steps": 3, "frobs": 1}', ".json", "unknown setting 'frobs'"),
        ('{"steps": 2.5}', ".json", "bad value 2.5 for 'steps'"),
        ('{"steps": true}', ".json", "bad value True for 'steps'"),
        ('{"steps": "many"}', ".json", "bad value 'many' for 'steps'"),
        ('{"readout": "fuzzy"}', ".json", "bad value 'fuzzy' for 'readout'"),
        ('{"methods": "es,magic"}', ".json", "bad value 'magic'"),
        ('{"quick": "yes"}', ".json", "'quick' must be true or false"),
        ("[1, 2]", ".json", "one object of settings"),
        ("{steps: 3", ".json", "not valid JSON"),
        ("steps = = 3", ".toml", "not valid TOML"),
        ("samples = 7\nt_end = 200.0", ".toml", "samples must be even"),
    ],
)
def test_bad_config_files_are_one_line_exit_2_and_write_nothing(
    tmp_path, one_line_error, content, suffix, message
):
    path = tmp_path / f"settings{suffix}"
    path.write_text(content)
    out = tmp_path / "out"
    assert main(["run", "turn-off", "--config", str(path), "--out", str(out)]) == 2
    assert message in one_line_error()
    assert not out.exists()


def test_a_missing_config_file_is_one_line(tmp_path, one_line_error):
    out = tmp_path / "out"
    assert (
        main(["run", "turn-off", "--config", str(tmp_path / "nope.json"), "--out", str(out)]) == 2
    )
    assert "cannot read --config" in one_line_error()
    assert not out.exists()
