"""``simulator plan --json --output`` then ``simulator report``, end to end on a small test catalog.

The catalog has a parametric CPU, a hardware whose name is markup, and a measured profile whose model
section records its output difference vs fp32; the report simulates (little) for its own figures.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulator.cli import main
from simulator.report.view import fmt_number

from ..conftest import make_profile_dict
from .test_report import EVIL, parse, resolve

pytestmark = pytest.mark.slow

CATALOG = """
schema_version = "1.0"

[hardware.cpu-small]
kind = "cpu"
price_per_hour = 0.085
price_source = "test price"
price_seen = "2026-11-27"
priced_as = "test instance"

[hardware."{evil}"]
kind = "gpu"
price_per_hour = 0.526
price_source = "test price"

[models.toy.cpu-small]
fp32 = {{ service_time_ms = 8.0, cv = 0.5, dist = "gamma", batch_time_ms = [5.0, 3.0] }}
int8-dynamic = "int8.json"

[models.toy."{evil}"]
fp32 = {{ service_time_ms = 2.0, cv = 0.3, dist = "gamma", batch_time_ms = [1.5, 0.5] }}
"""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    rng = np.random.default_rng(11)
    prof = make_profile_dict({1: rng.gamma(16.0, 0.0003, 600), 4: rng.gamma(16.0, 0.0006, 600)}, name="toy")
    prof["model"].update(variant="int8-dynamic", output_difference={
        "reference": "fp32 (the unmodified model) on the same inputs", "examples": 64,
        "max_abs_diff": 0.0123, "mean_abs_diff": 0.0004, "max_rel_diff": 0.0041, "top1_agreement": 0.995})
    (d / "int8.json").write_text(json.dumps(prof))
    (d / "catalog.toml").write_text(CATALOG.format(evil=EVIL.replace('"', '\\"')))
    plan_path = d / "plan.json"
    assert main(["plan", "--model", "toy", "--catalog", str(d / "catalog.toml"), "--arrival-rate", "200",
                 "--slo", "p99=50ms", "--batch-sizes", "1,4", "--batch-timeouts-ms", "2",
                 "--cache", "none,lru:1000", "--requests", "3000", "--replications", "3", "--seed", "5",
                 "--output", str(plan_path)]) == 0
    out = d / "report"
    assert main(["report", "--plan", str(plan_path), "--output", str(out), "--requests", "2000",
                 "--replications", "2", "--load-points", "4", "--quiet"]) == 0
    return json.loads(plan_path.read_text()), out


def test_all_figures_and_documents_are_written(pipeline):
    _, out = pipeline
    for name in ("latency_vs_load", "pareto", "cost_per_million", "latency_cdf", "sensitivity"):
        assert (out / f"{name}.png").stat().st_size > 1000, name
        assert (out / f"{name}.svg").exists(), name
    html = (out / "index.html").read_text()
    assert "not available: " not in html  # every figure drawn
    sim = json.loads((out / "simulated.json").read_text())
    assert sim["recommendation_latencies_count"] > 1000
    assert set(sim["load_curves"]) == {r["hardware"] for r in json.loads((out / "plan.json").read_text())
                                       ["per_hardware"] if r.get("replicas")}


def test_recommendation_numbers_equal_the_real_plans(pipeline):
    plan, out = pipeline
    section = parse((out / "index.html").read_text())
    assert len(section.nums) >= 10
    for n in section.nums:
        value = resolve(plan, n["data-src"])
        assert float(n["data-value"]) == value, n
        assert n["text"] == fmt_number(value, n["data-kind"])


def test_report_resimulation_reproduces_the_plans_p99(pipeline):
    # The report re-runs the recommendation's own simulate_args: same engine, effort and seed, so the
    # same p99 as the planner's, to rounding.
    plan, out = pipeline
    rec = plan["recommendation"]
    sim = json.loads((out / "simulated.json").read_text())["recommendation"]
    if rec["judge"].startswith(("closed", "analytic")):
        pytest.skip("the recommendation was judged by a closed form")
    assert math.isclose(sim["p99_ms"], rec["p99_ms"], rel_tol=1e-9)
    assert sim["p99_ms_ci95"] == pytest.approx(rec["p99_ms_ci95"], rel=1e-9)


def test_provenance_shows_the_profiles_output_difference(pipeline):
    _, out = pipeline
    html = (out / "index.html").read_text()
    assert "max |diff| 0.0123" in html and "top-1 agreement 0.995" in html
    assert "no profile: parametric service time" in html


def test_markup_in_a_catalog_name_stays_text(pipeline):
    _, out = pipeline
    html = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert parse(html).scripts == 0
    assert "<script" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
