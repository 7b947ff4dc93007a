"""Planner: catalog, search space, seeds, analytic screening and the closed-form optimum.

The closed-form checks compare the plan with a brute-force Erlang C search (mmc sojourn quantile,
exact): for M/M/c the planner's answer must be *equal*, no tolerance, because both use the exact
closed form; what is tested is the search (bracketing, bisection, stability bound, minimality).
"""

from __future__ import annotations

import json
import math

import pytest

from simulator.analytic.mmc import mmc
from simulator.errors import InputError, UnstableSystemError
from simulator.planner import ServiceSpec, load_catalog, plan
from simulator.planner.catalog import default_catalog_path
from simulator.planner.screening import Screen, service_model
from simulator.planner.space import Config, config_seed, parse_cache_list, parse_int_list


def exponential(mean_ms: float, hardware: str = "custom") -> ServiceSpec:
    return ServiceSpec(model="custom", hardware=hardware, variant="default", source="parametric",
                       mean_s=mean_ms * 1e-3, cv=1.0, dist="exponential")


def erlang_c_min_servers(rate: float, mean_s: float, q: float, slo_s: float) -> int:
    """Brute force: fewest servers whose exact M/M/c sojourn q-quantile is <= slo."""
    c = 1
    while True:
        try:
            if mmc(rate, 1.0 / mean_s, c).sojourn_quantile(q) <= slo_s:
                return c
        except UnstableSystemError:
            pass
        c += 1


# -- catalog -----------------------------------------------------------------------------------------
def test_bundled_catalog_loads_with_sourced_prices():
    cat = load_catalog()
    assert "resnet50" in cat.model_names()
    for hw in cat.hardware.values():
        assert hw.kind in ("cpu", "gpu", "tpu")
        assert hw.price_per_hour > 0 and hw.price_source and hw.price_seen
    published = [s for per_hw in cat.models.values() for per_v in per_hw.values() for s in per_v.values()
                 if s.source == "published"]
    assert published and all(s.citation for s in published)


def test_unknown_model_and_hardware_list_known_names():
    cat = load_catalog()
    with pytest.raises(InputError, match=r"unknown model 'nope'.*resnet50"):
        cat.specs("nope")
    with pytest.raises(InputError, match=r"unknown hardware 'tpu-v9'.*g4dn\.xlarge"):
        cat.specs("resnet50", hardware=["tpu-v9"])
    with pytest.raises(InputError, match="unknown variant 'int4'"):
        cat.specs("resnet50", variants=["int4"])


def test_missing_and_malformed_catalogs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_catalog(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[hardware.x\nkind=", encoding="utf-8")
    with pytest.raises(InputError, match="not valid TOML"):
        load_catalog(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text('[hardware.x]\nkind="cpu"\nprice_per_hour=1\nprise="2"\n', encoding="utf-8")
    with pytest.raises(InputError, match="unknown key"):
        load_catalog(typo)
    missing = tmp_path / "missing.toml"
    missing.write_text('[hardware.x]\nkind="cpu"\nprice_per_hour=1\n[models.m.x]\nfp32="nope.json"\n',
                       encoding="utf-8")
    with pytest.raises(InputError, match=r"nope\.json.*does not exist"):
        load_catalog(missing)
    neg = tmp_path / "neg.toml"
    neg.write_text('[hardware.x]\nkind="cpu"\nprice_per_hour=-1\n', encoding="utf-8")
    with pytest.raises(InputError, match="price_per_hour"):
        load_catalog(neg)


def test_parametric_catalog_entries(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[hardware.tpu-x]\nkind="tpu"\nprice_per_hour=2.0\n'
                 '[models.m.tpu-x]\nbf16={service_time_ms=3.0, cv=0.2, dist="gamma", batch_time_ms=[1.0, 0.5]}\n',
                 encoding="utf-8")
    spec = load_catalog(p).specs("m")[0]
    assert spec.source == "parametric" and spec.batch_time_s == pytest.approx((1e-3, 5e-4))
    assert "--batch-time-ms" in spec.service_flags()


# -- space and seeds ---------------------------------------------------------------------------------
def test_seed_depends_on_service_not_on_order_or_replicas():
    a = config_seed(7, "cpu", "fp32")
    assert a == config_seed(7, "cpu", "fp32")
    assert a != config_seed(7, "cpu", "int8-dynamic") and a != config_seed(8, "cpu", "fp32")
    assert 0 <= a < 2**63


def test_list_parsing():
    assert parse_int_list("batch_sizes", "8,1,4,4") == [1, 4, 8]
    with pytest.raises(InputError, match="batch_sizes"):
        parse_int_list("batch_sizes", "1,x")
    assert parse_cache_list("none,lru:10,lru:10,fifo:5", keys=100) == [None, "lru:10", "fifo:5"]
    with pytest.raises(InputError, match="cache policy"):
        parse_cache_list("mru:10", keys=100)
    with pytest.raises(InputError, match="keys"):
        parse_cache_list("lru:1000", keys=100)


# -- screening ---------------------------------------------------------------------------------------
def test_stability_bound_is_proved_and_exact_for_mmc():
    spec = exponential(10.0)
    scr = Screen(service_model(spec, 1), rate=250.0, quantile=0.99, exact_mmc=True)
    assert scr.min_replicas == 3  # a = 2.5 Erlang
    assert math.isinf(scr.p99(2))
    assert scr.p99(5) == pytest.approx(mmc(250.0, 100.0, 5).sojourn_quantile(0.99), rel=1e-12)


def test_cache_thins_load_and_hits_reach_the_quantile():
    spec = exponential(10.0)
    model = service_model(spec, 1)
    no_cache = Screen(model, 250.0, 0.99)
    cached = Screen(model, 250.0, 0.99, hit=0.5)
    assert cached.min_replicas < no_cache.min_replicas
    assert cached.p99(3) < no_cache.p99(3)
    assert Screen(model, 250.0, 0.5, hit=0.6).p99(1) == 0.0  # 60% hits answer the median


# -- the closed-form optimum -------------------------------------------------------------------------
@pytest.mark.parametrize(("rate", "mean_ms", "slo"), [
    (250.0, 10.0, "p99=50ms"), (900.0, 4.0, "p99=20ms"), (40.0, 20.0, "p95=60ms"), (3000.0, 2.0, "p999=15ms"),
    (10.0, 30.0, "p99=200ms"),
])
def test_plan_equals_erlang_c_optimum(rate, mean_ms, slo):
    from simulator.commands.common import parse_slo

    q, slo_s = parse_slo(slo)
    res = plan(arrival_rate=rate, slo=slo, service=exponential(mean_ms), engine="auto", max_replicas=200,
               capacity=False, growth=False)
    expected = erlang_c_min_servers(rate, mean_ms * 1e-3, q, slo_s)
    rec = res.recommendation
    assert rec["replicas"] == expected
    assert rec["judge"] == "closed form (Erlang C)"
    m = res.report["minimality"]
    if expected > 1:
        assert m["meets_slo"] is False  # one replica fewer misses (or is unstable)


def test_plan_result_shapes_and_json():
    res = plan(arrival_rate=250, slo="p99=50ms", service=exponential(10.0), custom_price_per_hour=0.5)
    table, rec = res  # unpacks as (DataFrame, recommendation)
    assert len(table) == 1 and rec["cost_per_hour"] == pytest.approx(2.5)
    doc = res.to_dict()
    json.dumps(doc, allow_nan=False)
    for key in ("recommendation", "candidates", "per_hardware", "pareto", "growth", "minimality",
                "configurations_evaluated", "wall_seconds", "slo", "arrival_rate", "catalog", "provenance",
                "seed", "command", "versions"):
        assert key in doc
    for key in ("hardware", "variant", "replicas", "batch_size", "batch_timeout_ms", "cache", "cost_per_hour",
                "p99_ms", "p99_ms_ci95", "simulate_args"):
        assert key in doc["recommendation"]
    hw = doc["per_hardware"][0]
    assert hw["monthly_cost"] == pytest.approx(2.5 * 730)
    assert hw["cost_per_million_requests"] == pytest.approx(2.5 / (250 * 3600) * 1e6)
    assert hw["capacity_rps"] > 250 and hw["headroom"] == pytest.approx(hw["capacity_rps"] / 250 - 1)
    g = doc["growth"]
    assert g["2x"]["arrival_rate"] == 500 and g["diurnal_peak"]["arrival_rate"] == pytest.approx(375)
    assert g["2x"]["recommended_configuration"]["replicas"] >= rec["replicas"]


def test_capacity_is_the_highest_passing_rate():
    res = plan(arrival_rate=250, slo="p99=50ms", service=exponential(10.0), growth=False)
    hw = res.report["per_hardware"][0]
    c = hw["replicas"]
    lo, hi = hw["capacity_bracket_rps"]
    assert mmc(lo, 100.0, c).sojourn_quantile(0.99) <= 0.05
    assert hi / lo <= 1.02 + 1e-9
    try:
        assert mmc(hi, 100.0, c).sojourn_quantile(0.99) > 0.05
    except UnstableSystemError:
        pass


def test_pareto_and_pruning_on_two_hardware(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[hardware.slow]\nkind="cpu"\nprice_per_hour=0.1\n'
                 '[hardware.fast]\nkind="gpu"\nprice_per_hour=1.0\n'
                 '[models.m.slow]\nfp32={service_time_ms=20.0}\n'
                 '[models.m.fast]\nfp16={service_time_ms=2.0}\n', encoding="utf-8")
    res = plan("m", 200.0, "p99=100ms", catalog=str(p), capacity=False, growth=False)
    front = res.report["pareto"]
    costs = [f["cost_per_hour"] for f in front]
    uppers = [f["p99_ms_ci95"][1] for f in front]
    assert costs == sorted(costs) and uppers == sorted(uppers, reverse=True)
    assert front[0]["hardware"] == res.recommendation["hardware"]
    assert {h["hardware"] for h in res.report["per_hardware"]} == {"slow", "fast"}
    rec = res.recommendation
    expected = min(erlang_c_min_servers(200.0, 0.020, 0.99, 0.1) * 0.1, erlang_c_min_servers(200.0, 0.002, 0.99, 0.1))
    assert rec["cost_per_hour"] == pytest.approx(expected)


def test_bad_inputs_raise_input_errors():
    with pytest.raises(InputError, match="slo"):
        plan(arrival_rate=10, slo="p99<50", service=exponential(1.0))
    with pytest.raises(InputError, match="arrival_rate"):
        plan(arrival_rate=float("nan"), slo="p99=50ms", service=exponential(1.0))
    with pytest.raises(InputError, match="model"):
        plan(arrival_rate=10, slo="p99=50ms")
    with pytest.raises(InputError, match="percentile"):
        plan(arrival_rate=10, slo="p97=50ms", service=exponential(1.0))


def test_unreachable_slo_reports_no_recommendation():
    res = plan(arrival_rate=10, slo="p99=5ms", service=exponential(10.0), max_replicas=8)
    assert res.recommendation is None
    assert res.report["per_hardware"][0]["meets_slo"] is False


def test_config_label():
    assert "batch 4/2ms" in Config("h", "v", 4, 2.0, "lru:10").label()


def test_default_catalog_path_is_bundled():
    assert default_catalog_path().name == "catalog.toml" and default_catalog_path().exists()


def test_profiles_dir_discovers_measured_profiles(tmp_path):
    import shutil

    src = default_catalog_path().parent / "published" / "resnet50" / "t4-fp16-onnxrt-trt.json"
    (tmp_path / "cpu-box" / "resnet50").mkdir(parents=True)
    shutil.copy(src, tmp_path / "cpu-box" / "resnet50" / "fp16.json")
    shutil.copy(src, tmp_path / "cpu-box" / "resnet50" / "fp16-bare.json")  # bare-call timing: skipped
    cat = tmp_path / "c.toml"
    cat.write_text('[hardware.box]\nkind="cpu"\nprice_per_hour=0.1\nprofiles_dir="cpu-*"\n', encoding="utf-8")
    specs = load_catalog(cat).specs("resnet50")
    assert [(s.hardware, s.variant, s.source) for s in specs] == [("box", "fp16", "published")]


def test_replicas_never_decrease_with_load():
    last = 0
    for rate in (50.0, 120.0, 250.0, 400.0, 800.0, 1600.0):
        res = plan(arrival_rate=rate, slo="p99=60ms", service=exponential(10.0), max_replicas=100, capacity=False,
                   growth=False)
        assert res.recommendation["replicas"] >= last
        last = res.recommendation["replicas"]


def test_min_top1_agreement_leaves_out_inaccurate_variants(tmp_path):
    (tmp_path / "p").mkdir()
    for variant, mean, top1 in (("fp32", 0.010, 1.0), ("int8-full", 0.002, 0.6)):
        doc = {"schema_version": "1.0", "source": "measured",
               "model": {"name": "m", "variant": variant, "output_difference": {"top1_agreement": top1,
                                                                                 "max_rel_diff": 1 - top1}},
               "device": {"kind": "cpu", "name": "fixture"}, "measured_at": "2026-11-27T00:00:00Z",
               "method": {"path": "serving"},
               "points": [{"batch_size": 1, "concurrency": 1, "samples_s": [mean * (1 + 0.01 * i) for i in range(20)]}]}
        (tmp_path / "p" / f"{variant}.json").write_text(json.dumps(doc), encoding="utf-8")
    cat = tmp_path / "c.toml"
    cat.write_text('[hardware.box]\nkind="cpu"\nprice_per_hour=0.1\n'
                   '[models.m.box]\nfp32="p/fp32.json"\nint8-full="p/int8-full.json"\n', encoding="utf-8")
    kw = dict(catalog=str(cat), engine="analytic", capacity=False, growth=False)
    assert plan("m", 150.0, "p99=50ms", **kw).recommendation["variant"] == "int8-full"
    res = plan("m", 150.0, "p99=50ms", min_top1_agreement=0.99, **kw)
    assert res.recommendation["variant"] == "fp32"
    assert res.report["search"]["excluded_variants"] == ["box/int8-full (top-1 agreement 0.6)"]
    with pytest.raises(InputError, match="top-1"):
        plan("m", 150.0, "p99=50ms", min_top1_agreement=1.0, variants=["int8-full"], **kw)
