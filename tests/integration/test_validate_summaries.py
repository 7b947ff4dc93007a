"""``simulator validate --loadgen-summary``: predict LoadGen runs measured elsewhere (no server, no TF)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from simulator.cli import main
from tests.unit.test_validate_summary import SUMMARY


def _summary(rate: float, mean_ms: float, scale: float = 1.0) -> str:
    """The fixture summary moved to another arrival rate and latency level."""
    text = SUMMARY.replace("296.86", f"{rate:.2f}").replace("296.69", f"{rate:.2f}")
    text = text.replace("target_qps : 300", f"target_qps : {rate:.0f}")
    text = text.replace("Mean latency (ns)               : 1460667",
                        f"Mean latency (ns)               : {int(mean_ms * 1e6)}")
    for ns in ("1224099", "2181488", "2667716", "2991921", "3530071", "4561556"):
        text = text.replace(f": {ns}", f": {int(int(ns) * 10 * scale)}")
    return text


def test_predicts_summaries_and_writes_the_report(tmp_path, synthetic_profile, capsys):
    files = []
    for i, scale in enumerate((1.0, 1.1)):  # two repeats of one load
        f = tmp_path / f"run{i}" / "mlperf_log_summary.txt"
        f.parent.mkdir()
        f.write_text(_summary(40.0, 14.0 * scale, scale))
        files.append(str(f))
    out = tmp_path / "report"
    rc = main(["validate", "--loadgen-summary", *files, "--profile", str(synthetic_profile), "--replicas", "1",
               "--output", str(out), "--sim-requests", "5000", "--sim-replications", "2"])
    assert rc == 0
    for name in ("validation.csv", "validation.md", "validation.png", "validation.json"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader((out / "validation.csv").open()))
    assert [r["metric"] for r in rows] == ["mean", "p50", "p90", "p99"]
    for r in rows:
        assert r["repeats"] == "2"
        assert math.isfinite(float(r["profile_error_pct"]))
        assert float(r["spread_pct"]) > 0
        assert 0 < float(r["profile_sim_ci_pct"]) < 100  # two short replications: wide, but stated
        assert float(r["profile_run_sd_pct"]) > 0 and 0 < float(r["profile_exact_chance"]) <= 1
    md = (out / "validation.md").read_text()
    assert "the simulation's own 95% CI within" in md and "What the real runs' own noise allows" in md
    doc = json.loads((out / "validation.json").read_text())
    assert "--loadgen-summary" in doc["command"]
    assert doc["scores"]["profile"]["cells"] == 4
    assert "measured" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    ([], "needs --profile"),
    (["--profile", "{profile}", "zoo:tiny_cnn"], "not both"),
    (["--profile", "{profile}", "--replicas", "1,2"], "one --replicas value"),
    (["--profile", "{profile}", "--overhead-ms", "-1"], "overhead_ms must be a finite number > 0"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, synthetic_profile, capsys, extra, message):
    f = tmp_path / "mlperf_log_summary.txt"
    f.write_text(_summary(40.0, 14.0))
    argv = ["validate", "--loadgen-summary", str(f), "--output", str(tmp_path / "o")]
    argv += [a.replace("{profile}", str(synthetic_profile)) for a in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_summary_file_exits_2(tmp_path, synthetic_profile, capsys):
    f = tmp_path / "mlperf_log_summary.txt"
    f.write_text("not a summary\n")
    assert main(["validate", "--loadgen-summary", str(f), "--profile", str(synthetic_profile),
                 "--output", str(tmp_path / "o")]) == 2
    assert "not an mlperf_log_summary" in capsys.readouterr().err


def test_live_mode_needs_a_model(tmp_path, capsys):
    assert main(["validate", "--output", str(tmp_path)]) == 2
    assert "give a MODEL" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent/model.keras"], "does not exist"),
    (["zoo:nope"], "unknown zoo model"),
    (["zoo:tiny_cnn", "--utilizations", "0.5,1.2"], "utilization"),
    (["zoo:tiny_cnn", "--replicas", "two"], "replicas must be a comma-separated list"),
    (["zoo:tiny_cnn", "--repeats", "0"], "repeats"),
    (["zoo:tiny_cnn", "--overhead-ms", "1"], "--overhead-ms applies to --loadgen-summary"),
])
def test_live_mode_refuses_bad_flags_before_starting(tmp_path, capsys, argv, message):
    assert main(["validate", *argv, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
