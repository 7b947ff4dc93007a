"""``simulator plan`` end to end: JSON contract, atomic output file, published marking, exit-2 errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from simulator.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", "plan", *args], capture_output=True, text=True,
                          timeout=120)


def test_plan_json_contract_and_output_file(tmp_path, capsys):
    out = tmp_path / "plan.json"
    rc = main(["plan", "--service-time-ms", "10", "--arrival-rate", "250", "--slo", "p99=50ms", "--json",
               "--output", str(out), "--price-per-hour", "0.2"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == doc
    rec = doc["recommendation"]
    assert rec["replicas"] == 5 and rec["cost_per_hour"] == pytest.approx(1.0)
    assert rec["simulate_args"][:2] == ["--arrival-rate", "250"]
    assert doc["slo"] == {"percentile": "p99", "limit_ms": 50.0,
                          "judged_on": "upper end of the 95% confidence interval"}
    assert doc["minimality"]["fewer_replicas"] == 4 and doc["minimality"]["meets_slo"] is False
    assert not list(tmp_path.glob(".*.tmp"))


def test_published_profiles_are_marked(capsys):
    rc = main(["plan", "--model", "resnet50", "--hardware", "g4dn.xlarge,a100-80gb", "--arrival-rate", "300",
               "--slo", "p99=50ms", "--engine", "analytic", "--batch-sizes", "1,4", "--batch-timeouts-ms", "0,2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "PUBLISHED" in text and "DeepLearningExamples" in text
    rc = main(["plan", "--model", "resnet50", "--hardware", "g4dn.xlarge", "--arrival-rate", "300", "--slo",
               "p99=50ms", "--engine", "analytic", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["recommendation"]["source"] == "published" and doc["recommendation"]["citation"]
    assert all(p["source"] in ("measured", "published") for p in doc["provenance"])


@pytest.mark.parametrize(("args", "pattern"), [
    (["--model", "nosuchmodel", "--arrival-rate", "10", "--slo", "p99=50ms"], "unknown model 'nosuchmodel'"),
    (["--model", "resnet50", "--hardware", "tpu-v9", "--arrival-rate", "10", "--slo", "p99=50ms"],
     "unknown hardware 'tpu-v9'; known hardware"),
    (["--model", "resnet50", "--arrival-rate", "10", "--slo", "p99<=50"], "slo must look like p99=50ms"),
    (["--model", "resnet50", "--arrival-rate", "10", "--slo", "p99=-5ms"], "slo latency"),
    (["--model", "resnet50", "--arrival-rate", "10", "--slo", "p99=50ms", "--catalog", "/nonexistent/c.toml"],
     "catalog file '/nonexistent/c.toml' does not exist"),
    (["--arrival-rate", "10", "--slo", "p99=50ms"], "plan needs --model"),
    (["--service-time-ms", "5", "--arrival-rate", "10", "--slo", "p99=50ms", "--replicas", "3"],
     "plan does not take --replicas"),
    (["--model", "resnet50", "--arrival-rate", "-1", "--slo", "p99=50ms"], "arrival_rate"),
])
def test_bad_input_exits_2_with_one_line(args, pattern, capsys):
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and pattern in lines[0], err


def test_bad_input_in_a_real_process_has_no_traceback():
    proc = run_cli("--model", "nosuchmodel", "--arrival-rate", "10", "--slo", "p99=50ms")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown model 'nosuchmodel'") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bundled_measured_profiles_plan_as_measured(capsys):
    from simulator.planner import load_catalog

    cat = load_catalog()
    measured = sorted({(m, h) for m, per_hw in cat.models.items() for h, per_v in per_hw.items()
                       for s in per_v.values() if s.source == "measured"})
    if not measured:
        pytest.skip("no measured profiles bundled yet")
    model, hw = measured[0]
    rc = main(["plan", "--model", model, "--hardware", hw, "--arrival-rate", "5", "--slo", "p99=2s",
               "--engine", "analytic", "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    prov = [p for p in doc["provenance"] if p["hardware"] == hw]
    assert prov and all(p["source"] == "measured" and p["date"] and p["method"] for p in prov)
    assert all(not p["profile"].endswith("-bare.json") for p in prov)


def test_plan_reads_a_profile_in_measured_order(tmp_path, capsys):
    """A profile whose samples carry slow stretches in measured order (under_load.service_order) is
    planned with them: at the same fleet its p99 is well above that of the same samples drawn
    independently (AR(1) service times, φ = 0.97: queues build in the slow stretches)."""
    from tests.conftest import make_profile_dict

    rng = np.random.default_rng(3)
    z = np.zeros(20_000)
    for i in range(1, z.size):
        z[i] = 0.97 * z[i - 1] + rng.normal() * 0.25
    series = 0.002 * np.exp(z - z.mean())
    p99 = {}
    for name, under in (("ordered", {"service_order": {"block": 2000}}), ("independent", {})):
        doc = make_profile_dict({1: series}) | {"schema_version": "1.1", "under_load": under}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        rc = main(["plan", "--profile", str(path), "--arrival-rate", "150", "--slo", "p99=10s", "--json",
                   "--price-per-hour", "0.1", "--hardware-name", "cpu", "--max-replicas", "2",
                   "--requests", "20000", "--replications", "4"])
        assert rc == 0
        rec = json.loads(capsys.readouterr().out)["recommendation"]
        assert rec["replicas"] == 1
        p99[name] = rec["p99_ms"]
    assert p99["ordered"] > 1.5 * p99["independent"], p99
