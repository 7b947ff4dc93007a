"""Exact relations every engine must satisfy, proved on many random scenarios with common random
numbers (hypothesis, >= 200 examples each). These are identities, not statistics: they hold for every
seed, so any failure is a bug, and the tolerance is floating-point round-off only (1e-9 s or relative).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import des, fast
from simulator.scenario import Arrivals, Batching, Cache, Scenario, Service
from simulator.service import ServiceModel
from simulator.variates import Variates, draw_variates, replication_seeds, streams

ROUNDOFF = 1e-9
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

families = st.sampled_from([("exponential", 1.0), ("deterministic", 0.0), ("lognormal", 1.5), ("gamma", 0.5)])


@st.composite
def systems(draw, batching=False, cache=False, queue_limit=False):
    if isinstance(batching, st.SearchStrategy):
        batching = draw(batching)
    c = draw(st.integers(1, 6))
    rho = draw(st.floats(0.05, 0.97))
    family, cv = draw(families)
    mean = draw(st.floats(1e-4, 1.0))
    n = draw(st.integers(20, 400))
    seed = draw(st.integers(0, 2**32))
    b = draw(st.integers(2, 16)) if batching else 1
    timeout = draw(st.sampled_from([0.0, mean * 0.5, mean * 3])) if batching else 0.0
    if batching:
        a, per = mean * draw(st.floats(0.1, 0.9)), mean * draw(st.floats(0.05, 0.5))
        model = ServiceModel.parametric(0.0, cv, family, batch_time=(a, per), max_batch=b)
        svc = Service(batch_time=(a, per), dist=family, cv=cv)
        rate = rho * c * b / (a + per * b)
    else:
        model = ServiceModel.parametric(mean, cv, family)
        svc = Service(mean_s=mean, dist=family, cv=cv)
        rate = rho * c / mean
    cache_spec = Cache()
    if cache:
        keys = draw(st.integers(1, 50))
        cache_spec = Cache(policy=draw(st.sampled_from(["lru", "lfu", "fifo"])),
                           capacity=draw(st.integers(0, keys)), keys=keys, zipf_alpha=draw(st.floats(0, 1.5)))
    sc = Scenario(arrivals=Arrivals(rate=rate), service=svc, replicas=c,
                  batching=Batching(max_batch_size=b, timeout_s=timeout), cache=cache_spec,
                  queue_limit=draw(st.integers(0, 10)) if queue_limit else None)
    rngs = streams(replication_seeds(seed, 1)[0])
    return sc, model, draw_variates(sc, model, n, rngs), rngs


def run(engine, sc, model, v, rngs):
    return engine.run_replication(sc, model, v, rngs) if engine is des else engine.run_replication(sc, model, v)


@SETTINGS
@given(systems())
def test_one_more_replica_never_increases_any_latency(case):
    sc, model, v, rngs = case
    for engine in (fast, des):
        base = run(engine, sc, model, v, rngs).latency
        more = run(engine, replace(sc, replicas=sc.replicas + 1), model, v, rngs).latency
        assert np.all(more <= base + ROUNDOFF)


@SETTINGS
@given(systems(batching=st.booleans()), st.floats(0.01, 100.0))
def test_scaling_all_times_scales_every_latency(case, k):
    sc, model, v, _rngs = case
    scaled_model = replace(model, means=model.means * k)
    scaled_sc = replace(sc, batching=replace(sc.batching, timeout_s=sc.batching.timeout_s * k))
    vk = Variates(v.arrival_times * k, v.keys, v.service)
    base = fast.run_replication(sc, model, v).latency
    scaled = fast.run_replication(scaled_sc, scaled_model, vk).latency
    np.testing.assert_allclose(scaled, base * k, rtol=1e-9, atol=0)


def _time_average_in_system(arrival: np.ndarray, departure: np.ndarray) -> tuple[float, float]:
    """∫N(t)dt over [0, T] by sweeping the +1/-1 events (independent of the latencies' sum)."""
    times = np.concatenate([arrival, departure])
    steps = np.concatenate([np.ones(arrival.size), -np.ones(departure.size)])
    order = np.lexsort((steps, times))  # departures before arrivals at equal times: never negative
    t, s = times[order], steps[order]
    n_in = np.cumsum(s)
    area = float(np.sum(n_in[:-1] * np.diff(t)))
    return area, float(t[-1])


@SETTINGS
@given(systems(batching=True, cache=True))
def test_littles_law_holds_exactly_on_a_run_that_starts_and_ends_empty(case):
    sc, model, v, _rngs = case
    out = fast.run_replication(sc, model, v)
    done = ~out.dropped
    dep = out.arrival[done] + out.latency[done]
    area, horizon = _time_average_in_system(out.arrival[done], dep)
    lam, w = done.sum() / horizon, out.latency[done].mean()
    assert abs(area / horizon - lam * w) <= 1e-9 * max(1.0, lam * w)


@SETTINGS
@given(systems(queue_limit=True, cache=True))
def test_arrivals_equal_completions_plus_drops(case):
    sc, model, v, rngs = case
    for engine in (fast, des):
        out = run(engine, sc, model, v, rngs)
        completed = np.isfinite(out.latency)
        assert completed.sum() + out.dropped.sum() == v.n  # nothing left in the system at the end
        assert not np.any(completed & out.dropped)
        if sc.queue_limit is not None and sc.queue_limit == 0:
            assert np.all(out.queue_wait[completed & ~out.cache_hit] <= ROUNDOFF)


def _fcfs_reference(arrivals: np.ndarray, services: np.ndarray, c: int) -> np.ndarray:
    """Kiefer–Wolfowitz workload recursion, written independently of the engines."""
    free = np.zeros(c)
    out = np.empty(arrivals.size)
    for i, (a, s) in enumerate(zip(arrivals, services)):
        j = int(np.argmin(free))
        start = max(a, free[j])
        free[j] = start + s
        out[i] = free[j] - a
    return out


@SETTINGS
@given(systems())
def test_batch_size_one_equals_plain_fcfs(case):
    sc, model, v, rngs = case
    services = model.means[1] * v.service
    expected = _fcfs_reference(v.arrival_times, services, sc.replicas)
    for engine in (fast, des):
        got = run(engine, sc, model, v, rngs).latency
        np.testing.assert_allclose(got, expected, rtol=0, atol=ROUNDOFF)


@SETTINGS
@given(systems(batching=st.booleans()), st.sampled_from(["lru", "lfu", "fifo"]), st.integers(1, 1000))
def test_cache_capacity_zero_equals_no_cache(case, policy, keys):
    sc, model, v, rngs = case
    with_empty_cache = replace(sc, cache=Cache(policy=policy, capacity=0, keys=keys))
    v_keys = Variates(v.arrival_times, np.zeros(v.n, dtype=np.int64), v.service)
    for engine in (fast, des):
        a = run(engine, sc, model, v, rngs).latency
        b = run(engine, with_empty_cache, model, v_keys, rngs).latency
        np.testing.assert_array_equal(a, b)
