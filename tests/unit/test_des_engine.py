"""SimPy engine: hand-worked timelines of each feature, and exact relations under common random numbers.

Service times in the hand-worked cases are deterministic with mean 1 s, so a request's service time is
its variate (parametric law: mean × variate); batches take a + b·n with the oldest request's variate.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simulator.des import run_replication
from simulator.errors import InputError
from simulator.montecarlo import little_l
from simulator.scenario import Arrivals, Batching, Cache, Pool, Run, Scenario, Service, Stage
from simulator.service import ServiceModel
from simulator.simulate import make_service_model
from simulator.variates import Variates, draw_variates, replication_seeds, streams

DET = Service(mean_s=1.0, dist="deterministic", cv=0.0)


def _run(sc: Scenario, arrivals, variates, keys=None, model=None, seed=0):
    model = model if model is not None else make_service_model(sc)
    v = Variates(np.asarray(arrivals, float), None if keys is None else np.asarray(keys, np.int64),
                 np.asarray(variates, float))
    return run_replication(sc, model, v, streams(replication_seeds(seed, 1)[0]))


def _sc(**kw) -> Scenario:
    kw.setdefault("service", DET)
    return Scenario(arrivals=Arrivals(rate=1.0), **kw)


def test_fcfs_single_replica_timeline():
    out = _run(_sc(), [0.0, 0.5, 1.0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(out.latency, [1.0, 1.5, 2.0])
    np.testing.assert_allclose(out.queue_wait, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out.service, [1.0, 1.0, 1.0])
    assert out.batch_wait.tolist() == [0.0, 0.0, 0.0]
    assert out.busy_time == 3.0 and out.end_time == 3.0 and out.n_batches == 3
    assert out.batch_size.tolist() == [1, 1, 1]


def test_two_replicas_share_one_queue():
    out = _run(_sc(replicas=2), [0.0, 0.5, 0.6, 0.7], [1.0, 2.0, 1.0, 1.0])
    # r0 0-1 (A), r1 0.5-2.5 (B), r2 1-2 (A), r3 2-3 (A)
    np.testing.assert_allclose(out.latency, [1.0, 2.0, 1.4, 2.3])


def test_queue_limit_drops_arrivals_finding_waiting_room_full():
    out = _run(_sc(queue_limit=1), [0.0, 0.1, 0.2, 0.3, 1.5], [1.0] * 5)
    # r0 served, r1 waits (1 place), r2 and r3 dropped; r4 arrives after r1 started: admitted
    assert out.dropped.tolist() == [False, False, True, True, False]
    np.testing.assert_allclose(out.latency[[0, 1, 4]], [1.0, 1.9, 1.5])
    assert np.isnan(out.latency[[2, 3]]).all()


def test_queue_limit_zero_is_a_loss_system():
    out = _run(_sc(queue_limit=0, replicas=2), [0.0, 0.1, 0.2, 1.05], [1.0] * 4)
    assert out.dropped.tolist() == [False, False, True, False]


def test_request_timeout_reneges_while_waiting():
    out = _run(_sc(request_timeout_s=0.5), [0.0, 0.1, 0.7], [1.0, 1.0, 1.0])
    # r1's deadline 0.6 passes while r0 is served; r2 (deadline 1.2) starts at 1.0
    assert out.dropped.tolist() == [False, True, False]
    np.testing.assert_allclose(out.latency[[0, 2]], [1.0, 1.3])


def test_request_timeout_frees_the_waiting_place():
    sc = _sc(request_timeout_s=0.5, queue_limit=1)
    out = _run(sc, [0.0, 0.1, 0.65, 0.7], [1.0, 1.0, 1.0, 1.0])
    # r1 leaves the waiting room at its deadline 0.6, so r2 (0.65) is admitted; r3 then finds it full
    assert out.dropped.tolist() == [False, True, False, True]
    np.testing.assert_allclose(out.latency[[0, 2]], [1.0, 1.35])


def _batch_sc(timeout_s: float, **kw) -> Scenario:
    svc = Service(batch_time=(0.9, 0.1), dist="deterministic", cv=0.0)
    return Scenario(arrivals=Arrivals(rate=1.0), service=svc,
                    batching=Batching(max_batch_size=3, timeout_s=timeout_s), **kw)


def test_tf_serving_batching_fills_the_open_batch_while_the_replica_is_busy():
    arr = [0.0, 0.1, 0.2, 0.3, 0.85, 3.0]
    out = _run(_batch_sc(0.5), arr, [1.0] * 6)
    # [0,1,2] full at 0.2 -> 0.2..1.4. [3]'s deadline 0.8 passes while the replica is busy: nothing
    # closes, [4] joins it, and the freed replica takes [3,4] at 1.4 -> 2.5 (ready at 0.8, [4] at its
    # arrival). [5] alone: its deadline 3.5 -> 3.5..4.5
    np.testing.assert_allclose(out.latency, [1.4, 1.3, 1.2, 2.2, 1.65, 1.5])
    assert out.batch_size.tolist() == [3, 3, 3, 2, 2, 1]
    np.testing.assert_allclose(out.batch_wait, [0.2, 0.1, 0.0, 0.5, 0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(out.queue_wait, [0.0, 0.0, 0.0, 0.6, 0.55, 0.0], atol=1e-12)
    np.testing.assert_allclose(out.service, [1.2, 1.2, 1.2, 1.1, 1.1, 1.0])
    assert out.n_batches == 3


def test_freed_replica_takes_a_full_batch_at_once_then_the_timed_out_rest():
    out = _run(_batch_sc(0.5), [0.0, 0.6, 0.7, 0.8, 0.9, 1.0], [1.0] * 6)
    # [0] alone at its deadline 0.5 -> 1.5; five wait meanwhile. At 1.5 B = 3 wait: [1,2,3] at once
    # (ready at 0.8, the 3rd's arrival) -> 2.7; then [4,5], whose oldest is past its deadline 1.4 -> 3.8
    np.testing.assert_allclose(out.latency, [1.5, 2.1, 2.0, 1.9, 2.9, 2.8])
    assert out.batch_size.tolist() == [1, 3, 3, 3, 2, 2]
    np.testing.assert_allclose(out.batch_wait, [0.5, 0.2, 0.1, 0.0, 0.5, 0.4], atol=1e-12)
    np.testing.assert_allclose(out.queue_wait, [0.0, 0.7, 0.7, 0.7, 1.3, 1.3], atol=1e-12)


def test_batching_queue_limit_spares_a_request_that_starts_at_once():
    out = _run(_batch_sc(0.5, queue_limit=2), [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], [1.0] * 6)
    # [2] finds 2 waiting (the limit) but fills the batch at a free replica: it starts at once, so it
    # needs no place. [5] finds [3,4] waiting behind a busy replica: dropped. [3,4] run 1.4..2.5
    assert out.dropped.tolist() == [False, False, False, False, False, True]
    np.testing.assert_allclose(out.latency[:5], [1.4, 1.3, 1.2, 2.2, 2.1])


def test_greedy_batching_takes_min_of_queue_and_batch_size():
    out = _run(_batch_sc(0.0), [0.0, 0.1, 0.2, 0.3, 0.4], [1.0] * 5)
    # [0] alone 0..1; at 1.0 takes [1,2,3] 1..2.2; then [4] 2.2..3.2
    np.testing.assert_allclose(out.latency, [1.0, 2.1, 2.0, 1.9, 2.8])
    assert out.batch_size.tolist() == [1, 3, 3, 3, 1]
    # greedy: nobody waits for a batch to form, every wait is for the replica
    np.testing.assert_allclose(out.batch_wait, 0.0)
    np.testing.assert_allclose(out.queue_wait, [0.0, 0.9, 0.8, 0.7, 1.8], atol=1e-12)


def test_batch_uses_oldest_requests_variate():
    out = _run(_batch_sc(0.0), [0.0, 0.1, 0.2, 0.3], [1.0, 2.0, 5.0, 5.0])
    # second batch [1,2,3] runs (0.9 + 0.3) * 2.0
    np.testing.assert_allclose(out.service, [1.0, 2.4, 2.4, 2.4])


def test_batching_with_reneging_shrinks_the_batch():
    sc = _batch_sc(0.0, request_timeout_s=0.85)
    out = _run(sc, [0.0, 0.1, 0.2, 0.3], [1.0] * 4)
    # at 1.0 r1 (deadline 0.95) has left; the batch is [2,3]
    assert out.dropped.tolist() == [False, True, False, False]
    assert out.batch_size.tolist() == [1, 0, 2, 2]


def test_cache_hits_skip_the_queue():
    sc = _sc(cache=Cache(policy="lru", capacity=1, keys=10, hit_latency_s=0.01))
    out = _run(sc, [0.0, 0.1, 0.2, 0.3], [1.0] * 4, keys=[5, 5, 6, 5])
    assert out.cache_hit.tolist() == [False, True, False, False]
    np.testing.assert_allclose(out.latency, [1.0, 0.01, 1.8, 2.7])
    assert out.batch_size.tolist() == [1, 0, 1, 1]


def test_fork_join_waits_for_last_shard():
    sc = _sc(fork_branches=2)
    out = _run(sc, [0.0, 0.5], [2.0, 0.1])
    # shard 1 of each request is deterministic (1.0): r0 = max(2, 1); r1 = max(2.1 - 0.5, 1.5 - 0.5)
    np.testing.assert_allclose(out.latency, [2.0, 1.6])
    assert out.servers == 2


def test_round_robin_and_jsq_pools():
    pools = (Pool("a", 1, Service(mean_s=1.0, dist="deterministic", cv=0.0)),
             Pool("b", 1, Service(mean_s=2.0, dist="deterministic", cv=0.0)))
    sc = Scenario(arrivals=Arrivals(rate=1.0), pools=pools, routing="round-robin")
    out = _run(sc, [0.0, 0.0, 0.1], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(out.latency, [1.0, 2.0, 1.9])
    sc = replace(sc, routing="join-shortest-queue")
    out = _run(sc, [0.0, 0.1, 0.2, 0.3], [1.0] * 4)
    # r0 -> a, r1 -> b, r2 -> a (tie: lowest index, waits till 1.0), r3: a has 2, b has 1 -> b (till 2.1)
    np.testing.assert_allclose(out.latency, [1.0, 2.0, 1.8, 3.8])
    assert out.servers == 2


def test_random_routing_uses_routing_stream_and_is_reproducible():
    pools = (Pool("a", 1, DET), Pool("b", 3, DET))
    sc = Scenario(arrivals=Arrivals(rate=1.0), pools=pools, routing="random")
    a = _run(sc, np.arange(200) * 2.0, np.ones(200), seed=3)
    b = _run(sc, np.arange(200) * 2.0, np.ones(200), seed=3)
    np.testing.assert_array_equal(a.latency, b.latency)


def test_stages_delay_and_queue():
    sc = _sc(replicas=2, pre_stages=(Stage("pre", 0.5),), post_stages=(Stage("post", 0.3, servers=1),))
    out = _run(sc, [0.0, 0.1], [1.0, 1.0])
    np.testing.assert_allclose(out.latency, [1.8, 2.0])
    np.testing.assert_allclose(out.stage_time, [0.8, 1.0])
    np.testing.assert_allclose(out.service, [1.0, 1.0])


def test_contention_slows_concurrent_services():
    sc = _sc(replicas=2)
    model = ServiceModel.parametric(1.0, 0.0, "deterministic").with_slowdown(np.array([1.0, 1.0, 2.0]))
    out = _run(sc, [0.0, 0.1, 3.0], [1.0, 1.0, 1.0], model=model)
    np.testing.assert_allclose(out.latency, [1.0, 2.0, 1.0])
    assert out.busy_time == 4.0


def test_batch_size_beyond_model_is_refused():
    sc = _batch_sc(0.0)
    with pytest.raises(InputError, match="batches up to 1"):
        _run(sc, [0.0], [1.0], model=ServiceModel.parametric(1.0, 0.0, "deterministic"))


# -- exact relations under common random numbers ------------------------------------------------------
def _random_run(sc: Scenario, seed: int, n: int = 3000, scale: float = 1.0):
    model = make_service_model(sc)
    rngs = streams(replication_seeds(seed, 1)[0])
    v = draw_variates(sc, model, n, rngs)
    v = Variates(v.arrival_times * scale, v.keys, v.service)
    return run_replication(sc, model, v, rngs)


@pytest.mark.parametrize("dist,cv", [("exponential", 1.0), ("lognormal", 2.0)])
def test_one_more_replica_never_increases_any_latency(dist, cv):
    base = Scenario(arrivals=Arrivals(rate=2.7), service=Service(mean_s=1.0, dist=dist, cv=cv))
    prev = None
    for c in (1, 2, 3, 4, 6):
        lat = _random_run(base.with_replicas(c), seed=7).latency
        if prev is not None:
            assert np.all(lat <= prev * (1 + 1e-12))
            assert np.any(lat < prev)
        prev = lat


@pytest.mark.parametrize("k", [4.0, 3.0])
def test_scaling_all_times_scales_every_latency(k):
    svc = Service(mean_s=0.02, dist="gamma", cv=1.5)
    sc = Scenario(arrivals=Arrivals(rate=120.0), service=svc, replicas=3, queue_limit=5,
                  request_timeout_s=0.05)
    a = _random_run(sc, seed=11)
    sck = replace(sc, service=replace(svc, mean_s=0.02 * k), request_timeout_s=0.05 * k)
    b = _random_run(sck, seed=11, scale=k)
    np.testing.assert_array_equal(a.dropped, b.dropped)
    if k == 4.0:  # a power of two scales every floating-point operation exactly
        np.testing.assert_array_equal(b.latency, k * a.latency)
    else:
        # latency = departure - arrival: absolute rounding of the clock, about ulp(end time)
        np.testing.assert_allclose(b.latency, k * a.latency, rtol=1e-12, atol=1e-13 * b.end_time)


def test_scaling_with_batching():
    sc = Scenario(arrivals=Arrivals(rate=300.0),
                  service=Service(batch_time=(0.004, 0.001), dist="lognormal", cv=0.5),
                  batching=Batching(8, 0.002))
    a = _random_run(sc, seed=5)
    sck = replace(sc, service=replace(sc.service, batch_time=(0.016, 0.004)), batching=Batching(8, 0.008))
    b = _random_run(sck, seed=5, scale=4.0)
    np.testing.assert_array_equal(b.latency, 4.0 * a.latency)


@pytest.mark.parametrize("kw", [
    {},
    {"replicas": 3},
    {"batching": Batching(4, 0.01), "service": Service(batch_time=(0.02, 0.01))},
    {"cache": Cache("lru", 20, keys=200, hit_latency_s=0.001)},
    {"fork_branches": 3, "replicas": 2},
    {"pre_stages": (Stage("tok", 0.01, 0.5, "gamma", servers=2),)},
])
def test_littles_law_exact_on_a_run_from_empty_to_empty(kw):
    kw.setdefault("service", Service(mean_s=0.1))
    sc = Scenario(arrivals=Arrivals(rate=7.0), **kw)
    out = _random_run(sc, seed=2, n=2000)
    done = ~np.isnan(out.latency)
    assert done.all()
    span = out.end_time - out.arrival[0]
    lam, w = out.n / span, out.latency.mean()
    assert little_l(out.arrival, out.arrival + out.latency) == pytest.approx(lam * w, rel=1e-9)


def test_breakdown_adds_up_to_latency():
    sc = Scenario(arrivals=Arrivals(rate=30.0), service=Service(batch_time=(0.02, 0.01)),
                  batching=Batching(4, 0.01), replicas=2, pre_stages=(Stage("p", 0.005),),
                  post_stages=(Stage("q", 0.003, servers=1),))
    out = _random_run(sc, seed=4)
    parts = out.batch_wait + out.queue_wait + out.service + out.stage_time
    np.testing.assert_allclose(parts, out.latency, rtol=1e-9, atol=1e-12)
    assert (out.batch_wait >= 0).all() and (out.queue_wait >= -1e-12).all()


def _fast():
    fast = pytest.importorskip("simulator.fast")
    if not hasattr(fast, "run_replication"):
        pytest.skip("fast engine not built yet")
    return fast


@pytest.mark.parametrize("kw", [
    {"replicas": 3},
    {"replicas": 2, "queue_limit": 3},
    {"batching": Batching(4, 0.0), "service": Service(batch_time=(0.02, 0.01))},
    {"batching": Batching(4, 0.03), "service": Service(batch_time=(0.02, 0.01)), "replicas": 2},
    {"cache": Cache("lfu", 20, keys=200, hit_latency_s=0.001), "replicas": 2},
])
def test_engines_agree_request_by_request(kw):
    fast = _fast()
    kw.setdefault("service", Service(mean_s=0.1, dist="lognormal", cv=1.2))
    sc = Scenario(arrivals=Arrivals(rate=14.0), **kw, run=Run(requests=2000))
    assert fast.supports(sc) is None
    model = make_service_model(sc)
    rngs = streams(replication_seeds(9, 1)[0])
    v = draw_variates(sc, model, 2000, rngs)
    a = run_replication(sc, model, v, rngs)
    b = fast.run_replication(sc, model, v)
    np.testing.assert_array_equal(a.dropped, b.dropped)
    np.testing.assert_array_equal(a.cache_hit, b.cache_hit)
    np.testing.assert_allclose(a.latency, b.latency, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(a.batch_size, b.batch_size)


def test_engines_agree_with_empirical_profile_and_contention(synthetic_profile):
    fast = _fast()
    svc = Service(profile=str(synthetic_profile), contention="shared")
    for batching in (Batching(), Batching(8, 0.004)):
        sc = Scenario(arrivals=Arrivals(rate=500.0), service=svc, replicas=3, batching=batching,
                      queue_limit=30, run=Run(requests=3000))
        model = make_service_model(sc)
        assert model.slowdown[2] > 1.0
        rngs = streams(replication_seeds(4, 1)[0])
        v = draw_variates(sc, model, 3000, rngs)
        a = run_replication(sc, model, v, rngs)
        b = fast.run_replication(sc, model, v)
        np.testing.assert_array_equal(a.dropped, b.dropped)
        np.testing.assert_allclose(a.latency, b.latency, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.service, b.service, rtol=1e-12)
