"""Service under load in the profile: client overhead and load factors, used by simulate and plan.

Everything here is exact (same seed, same variates), so tolerances are floating-point ones: 1e-9 relative.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from simulator import des
from simulator.errors import ProfileError
from simulator.planner.screening import Screen
from simulator.profiles import Profile
from simulator.scenario import Arrivals, Run, Scenario, Service, Stage
from simulator.service import ServiceModel
from simulator.simulate import make_service_model, simulate, split_constant_delays
from simulator.under_load import UnderLoad, parse_under_load
from simulator.validate.calibration import LoadPoint, under_load_profile
from simulator.variates import draw_variates, replication_seeds, streams
from tests.conftest import make_profile_dict

OVERHEAD = 0.0004


def _doc(under: dict | None = None, scale: float = 1.0) -> dict:
    rng = np.random.default_rng(11)
    doc = make_profile_dict({1: rng.gamma(4.0, 0.0025, 600) * scale, 4: rng.gamma(4.0, 0.005, 600) * scale})
    if under is not None:
        doc["schema_version"] = "1.1"
        doc["under_load"] = under
    return doc


def _write(tmp_path, name: str, doc: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def _scenario(profile: str, rate: float = 150.0, replicas: int = 2, **kw) -> Scenario:
    return Scenario(arrivals=Arrivals(rate=rate), service=Service(profile=profile), replicas=replicas,
                    run=Run(requests=4000, replications=3, seed=5), **kw)


@pytest.mark.parametrize(("block", "field"), [
    ([], "under_load must be an object"),
    ({"client_overhead_s": -1e-3}, "client_overhead_s"),
    ({"client_overhead_s": math.inf}, "client_overhead_s"),
    ({"load_factors": {"a": 1}}, "load_factors must be a list"),
    ({"load_factors": [{"per_replica_rate": 10.0}]}, r"load_factors\[0\]"),
    ({"load_factors": [{"per_replica_rate": 10.0, "factor": 0.0}]}, r"load_factors\[0\].factor"),
    ({"load_factors": [{"per_replica_rate": 20.0, "factor": 1.0}, {"per_replica_rate": 10.0, "factor": 1.0}]},
     "increasing per_replica_rate"),
    ({"overhead": 1.0}, "unknown field"),
])
def test_bad_under_load_block_is_refused_naming_the_field(block, field):
    with pytest.raises(ProfileError, match=field):
        Profile.from_dict(_doc(block))


def test_factor_interpolates_linearly_and_is_flat_beyond():
    u = parse_under_load({"load_factors": [{"per_replica_rate": 100.0, "factor": 1.0},
                                           {"per_replica_rate": 200.0, "factor": 1.5}]}, "t")
    assert u.factor(150.0) == pytest.approx(1.25)
    assert u.factor(10.0) == 1.0 and u.factor(1e6) == 1.5
    assert u.factor(None) == 1.0 and u.min_factor == 1.0
    assert UnderLoad().factor(123.0) == 1.0


@pytest.mark.parametrize("engine", ["fast", "simpy"])
def test_client_overhead_shifts_every_latency_exactly(tmp_path, engine):
    plain = _write(tmp_path, "plain.json", _doc())
    loaded = _write(tmp_path, "loaded.json", _doc({"client_overhead_s": OVERHEAD}))
    a = simulate(_scenario(plain), engine=engine)
    b = simulate(_scenario(loaded), engine=engine)
    assert b.engine == engine
    for key, value in a.latency_ms.items():
        assert b.latency_ms[key] == pytest.approx(value + OVERHEAD * 1e3, rel=1e-9), key
    assert b.breakdown_ms["stages"] == pytest.approx(a.breakdown_ms["stages"] + OVERHEAD * 1e3, rel=1e-9)
    assert any("client-side overhead" in n for n in b.notes)


def test_load_factor_scales_service_times_at_the_per_replica_rate(tmp_path):
    # 150 req/s on 2 replicas = 75 req/s per replica: halfway between 50 (x1.0) and 100 (x1.4) -> x1.2
    table = [{"per_replica_rate": 50.0, "factor": 1.0}, {"per_replica_rate": 100.0, "factor": 1.4}]
    loaded = _write(tmp_path, "loaded.json", _doc({"load_factors": table}))
    scaled = _write(tmp_path, "scaled.json", _doc(scale=1.2))
    model = make_service_model(_scenario(loaded))
    assert model.mean(1) == pytest.approx(ServiceModel.from_profile(Profile.load(scaled)).mean(1), rel=1e-9)
    a, b = simulate(_scenario(loaded)), simulate(_scenario(scaled))
    for key, value in b.latency_ms.items():
        assert a.latency_ms[key] == pytest.approx(value, rel=1e-9), key
    # the same profile at another load gets another factor (flat at 1.4 beyond 100 req/s per replica)
    assert make_service_model(_scenario(loaded, rate=400.0)).mean(1) == pytest.approx(model.mean(1) / 1.2 * 1.4)


def test_a_pure_delay_stage_equals_a_shift_of_the_simulated_queue():
    """The claim behind running constant stages as a shift: same variates, same queue, latency + d."""
    base = Scenario(arrivals=Arrivals(rate=300.0), service=Service(mean_s=0.005, cv=1.2, dist="lognormal"),
                    replicas=2, run=Run(requests=3000))
    full = replace(base, pre_stages=(Stage("parse", 0.002),), post_stages=(Stage("encode", 0.001),))
    core, shift, notes = split_constant_delays(full)
    assert core == base and shift == pytest.approx(0.003) and "'parse' 2 ms" in notes[0]
    model = make_service_model(base)
    rngs = streams(replication_seeds(3, 1)[0])
    variates = draw_variates(base, model, 3000, rngs)
    with_stages = des.run_replication(full, model, variates, streams(replication_seeds(3, 1)[0]))
    without = des.run_replication(base, model, variates, streams(replication_seeds(3, 1)[0]))
    np.testing.assert_allclose(with_stages.latency, without.latency + 0.003, rtol=0, atol=1e-12)
    # so the scenario with stages now runs on the compiled engine, with the stages in every latency
    r = simulate(full, engine="auto")
    assert r.engine == "fast" and r.breakdown_ms["stages"] == pytest.approx(3.0, rel=1e-9)


def test_stages_with_workers_or_random_times_are_still_simulated():
    st = (Stage("tok", 0.001, 1.0, "exponential"), Stage("q", 0.001, servers=1))
    sc = Scenario(arrivals=Arrivals(rate=50.0), service=Service(mean_s=0.005), post_stages=st)
    core, shift, _ = split_constant_delays(sc)
    assert core == sc and shift == 0.0


def test_screen_applies_factor_overhead_and_keeps_the_lower_bound_a_proof():
    model = ServiceModel.parametric(0.01, 1.0, "gamma")
    under = UnderLoad(0.002, (10.0, 50.0), (0.8, 1.5))
    plain, loaded = Screen(model, 200.0, 0.99), Screen(model, 200.0, 0.99, under=under)
    # 200 req/s on 4 replicas = 50 per replica: factor 1.5, so p99 = the plain p99 with 15 ms service + 2 ms
    ref = Screen(ServiceModel.parametric(0.015, 1.0, "gamma"), 200.0, 0.99)
    assert loaded.p99(4) == pytest.approx(ref.p99(4) + 0.002, rel=1e-12)
    # capacity bound with the smallest factor (0.8): a replica serves at most 125 req/s
    assert loaded.per_replica_capacity == pytest.approx(125.0) and plain.per_replica_capacity == pytest.approx(100.0)


def _live_point(rate: float, mean: float, overhead: float) -> LoadPoint:
    rng = np.random.default_rng(int(rate))
    return LoadPoint(rate, 1, rate * mean, {(1, 1): rng.gamma(4.0, mean / 4, 600)}, overhead)


def test_under_load_profile_from_live_runs_is_what_simulate_reads(tmp_path):
    base = Profile.from_dict(_doc())
    points = [_live_point(r, m, o) for r, m, o in
              [(100.0, 0.0030, 0.0003), (150.0, 0.0032, 0.0004), (200.0, 0.0036, 0.0005)]]
    prof = under_load_profile(base, points)
    under = prof.under_load
    assert under.client_overhead_s == pytest.approx(0.0004)
    assert under.rates == (100.0, 200.0)
    means = np.array([p.mean() for p in points])
    slope, icpt = np.polyfit([100.0, 150.0, 200.0], means, 1)
    ref = points[1].mean()  # the median-rate run gives the samples
    assert prof.mean(1, 1) == pytest.approx(ref, rel=1e-6)
    assert under.factors[0] == pytest.approx((icpt + slope * 100) / ref, rel=1e-5)
    assert under.factors[1] == pytest.approx((icpt + slope * 200) / ref, rel=1e-5)
    path = prof.save(tmp_path / "under.json")
    sc = Scenario(arrivals=Arrivals(rate=200.0), service=Service(profile=str(path)), replicas=1,
                  run=Run(requests=3000, replications=2))
    assert make_service_model(sc).mean(1) == pytest.approx((icpt + slope * 200), rel=1e-5)
    assert simulate(sc).breakdown_ms["stages"] == pytest.approx(0.4, rel=1e-9)


def test_plan_reads_the_under_load_block(tmp_path):
    """The same samples plan to more replicas when the profile says service is 1.5x slower under load, and
    every simulated latency of the plan carries the client-side overhead."""
    from simulator.planner import plan

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "fp32.json").write_text(json.dumps(_doc()))
    (tmp_path / "p" / "slow.json").write_text(json.dumps(_doc(
        {"client_overhead_s": 0.002, "load_factors": [{"per_replica_rate": 1.0, "factor": 1.5}]})))
    cat = tmp_path / "c.toml"
    cat.write_text('[hardware.box]\nkind="cpu"\nprice_per_hour=0.1\n'
                   '[models.m.box]\nfp32="p/fp32.json"\nslow="p/slow.json"\n', encoding="utf-8")
    kw = dict(catalog=str(cat), capacity=False, growth=False, requests=4000, replications=3)
    plain = plan("m", 600.0, "p99=60ms", variants=["fp32"], **kw).recommendation
    slow = plan("m", 600.0, "p99=60ms", variants=["slow"], **kw).recommendation
    # mean service 10 ms: 600 req/s needs > 6 replicas, > 9 at 15 ms
    assert plain["replicas"] >= 7 and slow["replicas"] >= 10
    assert slow["p99_ms"] > 2.0
