"""simulate(): engine choice, stability verdicts before any run, the analytic engine, service models."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from simulator import analytic
from simulator.errors import InputError
from simulator.result import LATENCY_KEYS
from simulator.scenario import Arrivals, Batching, Cache, Run, Scenario, Service, Stage
from simulator.simulate import analytic_reference, make_service_model, simulate, stability
from tests.conftest import make_profile_dict

RUN = Run(requests=2000, replications=2)


def _sc(rate=8.0, **kw) -> Scenario:
    kw.setdefault("service", Service(mean_s=0.1))
    kw.setdefault("run", RUN)
    kw.setdefault("arrivals", Arrivals(rate=rate))
    return Scenario(**kw)


def test_unstable_is_reported_not_simulated():
    r = simulate(_sc(rate=25.0, replicas=2), engine="simpy")
    assert not r.stable and r.requests_simulated == 0
    assert r.utilization == pytest.approx(1.25)
    assert r.offered_load == pytest.approx(2.5)
    assert "rho = 1.25" in r.verdict and "at least 3" in r.verdict and "2.5 Erlang" in r.verdict
    assert all(v is None for v in r.latency_ms.values())
    json.dumps(r.to_dict(), allow_nan=False)


def test_rho_exactly_one_is_unstable():
    assert not simulate(_sc(rate=10.0), engine="simpy").stable


def test_batching_capacity_counts_full_batches():
    svc = Service(batch_time=(0.02, 0.01))
    # full batch of 8 takes 0.1 s: capacity 80 req/s per replica
    sc = _sc(rate=79.0, service=svc, batching=Batching(8, 0.0))
    assert stability(sc).utilization == pytest.approx(79 / 80)
    r = simulate(_sc(rate=81.0, service=svc, batching=Batching(8, 0.0)), engine="simpy")
    assert not r.stable and "at least 2" in r.verdict


def test_cache_thins_the_load_before_the_stability_check():
    cache = Cache("lfu", 100, zipf_alpha=1.0, keys=1000)
    st = stability(_sc(rate=12.0, cache=cache))
    h = analytic.cache_hit_ratio("lfu", 100, analytic.cache.zipf(1.0, 1000))
    assert st.hit_ratio == pytest.approx(h)
    assert st.utilization == pytest.approx(12.0 * (1 - h) * 0.1)
    assert st.stable


def test_queue_limit_makes_overload_finite_so_it_is_simulated():
    r = simulate(_sc(rate=20.0, queue_limit=5), engine="simpy")
    assert r.stable and r.drop_rate > 0.3
    assert any("queue limit" in n for n in r.notes)


def test_stage_with_workers_can_be_the_bottleneck():
    r = simulate(_sc(rate=5.0, pre_stages=(Stage("tok", 0.3, servers=1),)), engine="simpy")
    assert not r.stable and "stage 'tok'" in r.verdict


def test_analytic_overload_with_queue_limit_is_mmck():
    r = simulate(_sc(rate=20.0, queue_limit=3), engine="analytic")
    m = analytic.mmck(20.0, 10.0, 1, 4)
    assert r.stable and r.drop_rate == pytest.approx(m.blocking_probability)
    assert r.latency_ms["mean"] == pytest.approx(m.sojourn_mean * 1e3)


def test_analytic_engine_mmc():
    r = simulate(_sc(rate=25.0, replicas=3), engine="analytic")
    m = analytic.mmc(25.0, 10.0, 3)
    assert r.engine == "analytic" and r.latency_ms["mean"] == pytest.approx(m.sojourn_mean * 1e3)
    assert r.latency_ms["p99"] == pytest.approx(m.sojourn_quantile(0.99) * 1e3)
    assert r.utilization == pytest.approx(25 / 30)


def test_analytic_with_cache_mixes_hits_and_thinned_queue():
    cache = Cache("lru", 50, zipf_alpha=0.8, keys=1000, hit_latency_s=0.002)
    r = simulate(_sc(rate=9.0, cache=cache), engine="analytic")
    h = analytic.cache_hit_ratio("lru", 50, analytic.cache.zipf(0.8, 1000))
    w = analytic.mm1(9.0 * (1 - h), 10.0)
    assert r.cache_hit_ratio == pytest.approx(h)
    assert r.latency_ms["mean"] == pytest.approx((h * 0.002 + (1 - h) * w.sojourn_mean) * 1e3)
    # p99 lies in the queue part: (q - h)/(1 - h) quantile of the sojourn
    assert r.latency_ms["p99"] == pytest.approx(w.sojourn_quantile((0.99 - h) / (1 - h)) * 1e3)
    assert not r.analytic["exact"]  # Che's approximation


@pytest.mark.parametrize("kw,model", [
    ({"service": Service(mean_s=0.1, dist="deterministic", cv=0.0), "replicas": 2}, "M/D/2"),
    ({"service": Service(mean_s=0.1, dist="lognormal", cv=1.5)}, "M/G/1"),
    ({"queue_limit": 4}, "M/M/1/5"),
    ({"fork_branches": 2}, "fork"),
    ({"service": Service(batch_time=(0.02, 0.01), dist="deterministic", cv=0.0),
      "batching": Batching(4, 0.0)}, "batch"),
    ({"service": Service(batch_time=(0.02, 0.01), dist="deterministic", cv=0.0),
      "batching": Batching(4, 0.03)}, "batch"),
    ({"arrivals": Arrivals(process="gamma", rate=8.0, cv=2.0)}, "G/"),
])
def test_analytic_reference_covers(kw, model):
    sc = _sc(**kw)
    ref = analytic_reference(sc)
    assert ref is not None and model.lower() in (ref["model"] + ref["method"]).lower()
    assert ref["latency_ms"]["mean"] > 0


def test_analytic_refuses_with_reasons():
    sc = _sc(arrivals=Arrivals(process="mmpp", rate=8.0), pre_stages=(Stage("tok", 0.001, 1.0, "exponential"),))
    with pytest.raises(InputError, match=r"no closed form.*pipeline stages.*mmpp arrivals"):
        simulate(sc, engine="analytic")
    assert analytic_reference(sc) is None


def test_auto_engine_says_why():
    r = simulate(_sc(pre_stages=(Stage("tok", 0.001, 1.0, "exponential"),)), engine="auto")
    assert r.engine == "simpy" and "stages" in r.notes[0]
    r = simulate(_sc(), engine="auto")
    assert r.engine in ("fast", "simpy") and r.notes[0].startswith(f"engine {r.engine}")


def test_fast_engine_refuses_what_it_lacks():
    with pytest.raises(InputError, match="fast engine"):
        simulate(_sc(fork_branches=2), engine="fast")


def test_bad_engine_and_too_many_requests():
    with pytest.raises(InputError, match="engine must be one of"):
        simulate(_sc(), engine="ciw")
    with pytest.raises(InputError, match="SimPy engine"):
        simulate(_sc(run=Run(requests=3_000_000, replications=1)), engine="simpy")


def test_simulated_result_carries_analytic_reference():
    r = simulate(_sc(rate=5.0), engine="simpy")
    assert r.analytic["model"] == "M/M/1"
    assert set(r.analytic["latency_ms"]) == set(LATENCY_KEYS)


def test_contention_modes(tmp_path):
    rng = np.random.default_rng(1)
    doc = make_profile_dict({1: rng.gamma(4.0, 0.0025, 400)}, concurrency={2: rng.gamma(4.0, 0.004, 400)})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    shared = make_service_model(_sc(service=Service(profile=str(path), contention="shared")))
    auto = make_service_model(_sc(service=Service(profile=str(path), contention="auto")))
    default = make_service_model(_sc(service=Service(profile=str(path))))
    none = make_service_model(_sc(service=Service(profile=str(path), contention="none")))
    assert shared.slowdown[2] == pytest.approx(1.6, rel=0.1)
    np.testing.assert_array_equal(auto.slowdown, shared.slowdown)
    assert np.all(none.slowdown == 1.0)
    assert np.all(default.slowdown == 1.0)  # default: replicas are separate instances
    doc1 = make_profile_dict({1: rng.gamma(4.0, 0.0025, 400)})
    path1 = tmp_path / "p1.json"
    path1.write_text(json.dumps(doc1))
    with pytest.raises(InputError, match="concurrency sweep"):
        make_service_model(_sc(service=Service(profile=str(path1), contention="shared")))
    # contention raises rho: both replicas busy run 1.6x slower
    sc = _sc(rate=450.0, replicas=2, service=Service(profile=str(path), contention="shared"))
    assert stability(sc).utilization == pytest.approx(450 * shared.mean(1) * shared.slowdown[2] / 2)


def test_simulate_with_profile_and_every_feature_runs():
    sc = _sc(rate=20.0, replicas=2, batching=Batching(4, 0.01),
             service=Service(batch_time=(0.02, 0.01)), cache=Cache("fifo", 30, keys=300),
             queue_limit=20, request_timeout_s=0.5, pre_stages=(Stage("a", 0.002),),
             post_stages=(Stage("b", 0.001, 0.5, "gamma", servers=2),))
    r = simulate(sc, engine="simpy")
    assert r.stable and 1.0 < r.mean_batch_size <= 4.0 and 0 < r.cache_hit_ratio < 1
    # hits skip the stages (>= 3 ms for a miss), so the mean over all answered requests is below 3 ms
    assert 0 < r.breakdown_ms["stages"] < 3.0 and r.breakdown_ms["batching_wait"] > 0
    r2 = simulate(replace(sc, fork_branches=2), engine="simpy")
    assert r2.latency_ms["mean"] > r.latency_ms["mean"]


def test_pools_and_arrival_processes_run(tmp_path):
    from simulator.scenario import Pool
    pools = (Pool("gpu", 1, Service(mean_s=0.02)), Pool("cpu", 2, Service(mean_s=0.08, dist="gamma", cv=0.5)))
    for routing in ("round-robin", "join-shortest-queue", "random"):
        r = simulate(_sc(rate=30.0, service=None, pools=pools, routing=routing), engine="auto")
        assert r.engine == "simpy" and r.stable and r.utilization < 1
    assert not simulate(_sc(rate=80.0, service=None, pools=pools), engine="simpy").stable  # capacity 75/s
    for arr in (Arrivals(process="mmpp", rate=5.0), Arrivals(process="diurnal", rate=5.0, period_s=60.0)):
        assert simulate(_sc(arrivals=arr), engine="simpy").stable
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp_s,key\n" + "".join(f"{0.2 * i},{i % 7}\n" for i in range(500)))
    sc = _sc(arrivals=Arrivals(process="trace", trace=str(trace)), cache=Cache("lru", 3, keys=10))
    r = simulate(sc, engine="simpy")
    # 7 keys cycling through 3 LRU slots always miss, except where the replayed trace wraps around
    assert r.arrival_rate == pytest.approx(5.0) and r.cache_hit_ratio < 0.01
    assert type(r.arrival_rate) is float
    sc = replace(sc, cache=Cache("lru", 7, keys=10))
    assert simulate(sc, engine="simpy").cache_hit_ratio > 0.99
