"""``simulator validate`` end to end on a real server: one load, one repeat, a few seconds.

This proves the plumbing (profile → server in a fresh process → LoadGen → calibration → simulate →
report). The accuracy claim lives in reports/validation/ and its reproducible command, not here: a
few seconds of a shared CI machine measure nothing worth asserting about.
"""

from __future__ import annotations

import csv
import json
import math

import pytest

pytest.importorskip("mlperf_loadgen")
pytest.importorskip("tensorflow")

from simulator.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.tensorflow]


def test_live_validation_end_to_end(tmp_path, capsys):
    out = tmp_path / "validation"
    rc = main(["validate", "zoo:tiny_cnn", "--replicas", "1", "--utilizations", "0.5", "--repeats", "1",
               "--duration-s", "4", "--calibration-s", "2", "--profile-seconds", "1", "--min-queries", "50",
               "--sim-requests", "5000", "--sim-replications", "2", "--keep-records", "--output", str(out)])
    assert rc == 0
    for name in ("validation.csv", "validation.md", "validation.png", "validation.json", "profile.json",
                 "raw/C1_b1/rho0.5/repeat1/mlperf_log_summary.txt",
                 "raw/C1_b1/rho0.5/targeting1/mlperf_log_summary.txt",
                 "raw/C1_b1/rho0.5/targeting2/mlperf_log_summary.txt",
                 "raw/C1_b1/rho0.5/repeat1-calibration/mlperf_log_summary.txt",
                 "profiles/calibrated_C1_b1_rho0.5.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "validation.csv").open()))
    assert [r["metric"] for r in rows] == ["mean", "p50", "p90", "p99"]
    for r in rows:
        for col in ("measured_ms", "calibrated_ms", "calibrated_error_pct", "isolated_ms", "isolated_error_pct"):
            assert math.isfinite(float(r[col])), (col, r)
    doc = json.loads((out / "validation.json").read_text())
    assert doc["command"].startswith("simulator validate zoo:tiny_cnn --replicas 1")
    assert doc["context"]["calibration_points"]["1"][0]["mean_ms"] > 0
    cal = json.loads((out / "profiles/calibrated_C1_b1_rho0.5.json").read_text())
    assert cal["method"]["path"] == "serving-under-load"
    assert "calibrated under load" in capsys.readouterr().out
    scales = doc["context"]["drift_by_scale"]["1"]
    assert set(scales) == {"calibration", "measured"} and set(scales["measured"]) == {"0.25", "1.0", "4.0", "16.0"}
    assert "## Host drift by time scale" in (out / "validation.md").read_text()
    # the kept campaign predicts again without a server: the same predictions (same seeds and code)
    assert (out / "raw/runs.json").is_file() and (out / "raw/C1_b1/rho0.5/repeat1/server_records.npz").is_file()
    again = tmp_path / "again"
    assert main(["validate", "--reevaluate", str(out), "--output", str(again)]) == 0
    rows_again = list(csv.DictReader((again / "validation.csv").open()))
    assert [r["calibrated_ms"] for r in rows_again] == [r["calibrated_ms"] for r in rows]
    doc_again = json.loads((again / "validation.json").read_text())
    assert doc_again["command"].startswith("simulator validate --reevaluate")
    # ... and says where, when and how the runs themselves were measured
    assert doc_again["context"]["measured"]["command"] == doc["command"]
    assert doc_again["context"]["measured"]["started_at"] == doc["context"]["started_at"]
