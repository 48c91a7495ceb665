"""The speed record: `bbpes bench all` (every benchmark, one JSON of ratios) and
`bbpes bench compare` (ratios only, with a tolerance). Fake benchmarks stand in for the
real ones, so nothing here is timed."""

from __future__ import annotations

import json

import pytest

from bbpes import bench
from bbpes.bench import Benchmark, compare, ratios, run_all, run_benchmark
from bbpes.errors import ConfigError


def record(**benchmarks):
    return {"benchmarks": {name: {"ratios": r} for name, r in benchmarks.items()}}


def test_ratios_are_the_marked_numbers_nested_ones_included():
    result = {
        "ours_over_brian2": 31.0,
        "speedup_blocked_vs_dense": 9.0,
        "fraction_of_peak": 0.4,
        "growth_es": 1.0,
        "es_step_seconds": 3.0,  # absolute: never compared
        "target_10x_brian2": True,  # a verdict, not a ratio
        "brian2_cython": {"neuron_steps_per_s": 1e6, "ours_over_this": 12.0},
        "note": "text",
    }
    assert ratios(result) == {
        "ours_over_brian2": 31.0,
        "speedup_blocked_vs_dense": 9.0,
        "fraction_of_peak": 0.4,
        "growth_es": 1.0,
        "brian2_cython.ours_over_this": 12.0,
    }


def test_compare_flags_only_moves_beyond_the_tolerance_in_the_wrong_direction():
    old = record(
        sim={"ours_over_brian2": 30.0, "fraction_of_peak": 0.5},
        memory={"growth_es": 1.0, "growth_bptt": 30.0},
        es={"evosax_over_ours": 1.0},
    )
    new = record(
        sim={"ours_over_brian2": 20.0, "fraction_of_peak": 0.45},  # -33%: regression; -10%
        memory={"growth_es": 1.5, "growth_bptt": 20.0},  # lower is better: +50% is worse
        nne={"speedup_blocked_vs_dense": 9.0},
    )
    out = compare(old, new, tolerance=0.2)
    assert [(r["benchmark"], r["ratio"]) for r in out["regressions"]] == [
        ("memory", "growth_es"),
        ("sim", "ours_over_brian2"),
    ]
    assert [(r["benchmark"], r["ratio"]) for r in out["improvements"]] == [
        ("memory", "growth_bptt")
    ]
    assert out["regressions"][1]["change"] == pytest.approx(20 / 30 - 1)
    assert out["only_old"] == ["es:evosax_over_ours"]
    assert out["only_new"] == ["nne:speedup_blocked_vs_dense"]
    assert out["compared"] == 4 and out["ok"] is False
    assert compare(old, old, tolerance=0.0)["ok"] is True
    assert compare(old, new, tolerance=0.6)["ok"] is True
    with pytest.raises(ConfigError):
        compare(old, new, tolerance=-1.0)


def fake_benchmarks(calls):
    def good(config):
        calls.append(config)
        return {"load_average": 0.5, "x_over_y": config["size"] / 2, "seconds": 1.0}

    def broken(config):
        raise RuntimeError("out of memory")

    found = {
        "good": Benchmark("good", "", good, defaults={"size": 8}, quick={"size": 4}),
        "broken": Benchmark("broken", "", broken),
    }
    return lambda: (found, {"needs-evosax": "No module named 'evosax'"})


def test_all_records_every_benchmark_and_compares_with_a_baseline(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "_import_all", fake_benchmarks(calls))
    first = run_benchmark("all", out=str(tmp_path / "quick"))
    assert [c["size"] for c in calls] == [4]  # quick sizes by default
    written = json.loads((tmp_path / "quick" / "all.json").read_text())
    assert written["benchmarks"]["good"]["ratios"] == {"x_over_y": 2.0}
    assert "out of memory" in written["benchmarks"]["broken"]["error"]
    assert "evosax" in written["benchmarks"]["needs-evosax"]["error"]
    assert json.loads((tmp_path / "quick" / "good.json").read_text())["x_over_y"] == 2.0
    assert {"date", "commit", "dirty", "load_average_start", "load_average_end"} <= set(written)
    assert first["command"] == "bbpes bench all"

    paper = run_benchmark(
        "all",
        {"scale": "paper", "only": "good", "baseline": str(tmp_path / "quick" / "all.json")},
    )
    assert calls[-1]["size"] == 8 and list(paper["benchmarks"]) == ["good"]
    assert paper["comparison"]["improvements"][0]["change"] == pytest.approx(1.0)
    assert paper["command"] == "bbpes bench all --set scale=paper --set only=good"

    out = run_benchmark(
        "compare",
        {"old": str(tmp_path / "quick" / "all.json"), "new": str(tmp_path / "quick" / "all.json")},
    )
    assert out["ok"] is True and out["compared"] == 1


def test_bad_record_settings_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "_import_all", fake_benchmarks([]))
    with pytest.raises(ConfigError, match="scale"):
        run_all({**bench.ALL_DEFAULTS, "scale": "huge"}, None)
    with pytest.raises(ConfigError, match="nope"):
        run_benchmark("all", {"only": "good,nope"})
    with pytest.raises(ConfigError, match="old="):
        run_benchmark("compare", {"old": "a.json"})
    with pytest.raises(ConfigError, match="cannot read"):
        run_benchmark("compare", {"old": str(tmp_path / "a.json"), "new": "b.json"})
    with pytest.raises(ConfigError, match=r"cannot run here.*evosax"):
        run_benchmark("needs-evosax")
