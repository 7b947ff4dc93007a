"""The compiled engine against a brute-force event simulation, and its semantics rule by rule.

The reference (:func:`reference_run`) is written from the semantics (simulator.des.stations), not
from the engine's recursions: an explicit event list with replica completions and batch deadlines; a
free replica starts a batch whenever B requests wait or the oldest has waited T (T = 0: anything
waits). Ties: completions and deadlines, then the batches they start, then the arrival.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np
import pytest

from simulator import fast
from simulator.cachesim import hit_mask
from simulator.errors import InputError
from simulator.scenario import Arrivals, Batching, Cache, Pool, Scenario, Service, Stage
from simulator.service import ServiceModel, environment_factor, service_time
from simulator.variates import draw_variates, replication_seeds, streams

COMPLETION, DEADLINE, ARRIVAL = 0, 1, 2


def reference_run(scenario, model, variates) -> dict[str, np.ndarray]:
    """Per-request latency, batch size, batch wait, queue wait, service, dropped, cache hit."""
    n = variates.n
    arr = variates.arrival_times
    B, T = scenario.batching.max_batch_size, scenario.batching.timeout_s
    if B == 1:
        T = 0.0
    K = scenario.queue_limit
    c = scenario.replicas
    hits = np.zeros(n, bool)
    if scenario.cache.enabled:
        hits = hit_mask(scenario.cache.policy, scenario.cache.capacity, variates.keys)
    res = {"latency": np.full(n, math.nan), "batch_size": np.zeros(n, int), "batch_wait": np.zeros(n),
           "queue_wait": np.zeros(n), "service": np.zeros(n), "dropped": np.zeros(n, bool), "cache_hit": hits}
    margs = (model.mode, model.means, model.emp_values, model.emp_start, model.emp_len, model.emp_scale,
             model.slowdown, model.warm_idle_s, model.warm_factor)
    env = model.for_replication(variates.env_key).environment()
    events = [(float(arr[i]), ARRIVAL, i) for i in range(n)]
    heapq.heapify(events)
    seq = n
    free = deque([0.0] * c)  # free times of the idle replicas, the longest idle first
    queue: list[int] = []

    def ready(now) -> bool:
        return bool(queue) and (len(queue) >= B or arr[queue[0]] + T <= now)

    def dispatch(now):
        nonlocal seq, queue
        while free and ready(now):
            batch, queue = queue[:B], queue[B:]
            r = arr[batch[0]] + T
            if len(batch) == B:
                r = min(r, arr[batch[-1]])
            r = min(r, now)
            free_at = free.popleft()
            s = service_time(*margs, len(batch), variates.service[batch[0]], c - len(free), arr[batch[0]] - free_at)
            if env is not None:
                s *= environment_factor(*env, now)
            for i in batch:
                close = max(r, arr[i])
                res["latency"][i] = (now + s) - arr[i]
                res["batch_size"][i] = len(batch)
                res["batch_wait"][i] = close - arr[i]
                res["queue_wait"][i] = now - close
                res["service"][i] = s
            seq += 1
            heapq.heappush(events, (now + s, COMPLETION, seq))
        if free and queue:  # wait for the oldest's deadline (a stale one finds nothing to do)
            seq += 1
            heapq.heappush(events, (arr[queue[0]] + T, DEADLINE, seq))

    while events:
        t, kind, i = heapq.heappop(events)
        if kind == COMPLETION:
            free.append(t)
            dispatch(t)
        elif kind == DEADLINE:
            dispatch(t)
        else:
            if hits[i]:
                res["latency"][i] = scenario.cache.hit_latency_s
                continue
            starts_now = bool(free) and (T == 0 or len(queue) + 1 >= B)
            if K is not None and len(queue) >= K and not starts_now:
                res["dropped"][i] = True
                continue
            queue.append(i)
            dispatch(t)
    return res


SLOWDOWN = np.array([1.0, 1.0, 1.15, 1.4, 1.8, 2.3])


WARMUP = ([0.002, 0.01, 0.05], [1.1, 1.5, 2.0])  # a replica idle 10 ms serves 1.5x slower


ENVIRONMENT = (0.05, [0.7, 1.0, 1.0, 1.3, 2.0])  # host speed drawn per 50 ms window


def make(B=1, T=0.0, c=3, K=None, cache=None, slowdown=None, rho=0.9, arrivals="poisson", warmup=None,
         environment=None):
    """A scenario and its service model at per-replica load ``rho`` (lognormal service, cv 1.5)."""
    if B > 1:
        bt = (0.004, 0.003)
        service = Service(batch_time=bt, dist="lognormal", cv=1.5)
        model = ServiceModel.parametric(0.0, 1.5, "lognormal", batch_time=bt, max_batch=B)
        rate = rho * c * B / (bt[0] + bt[1] * B)
    else:
        service = Service(mean_s=0.01, dist="lognormal", cv=1.5)
        model = ServiceModel.parametric(0.01, 1.5, "lognormal")
        rate = rho * c / 0.01
    if slowdown is not None:
        model = model.with_slowdown(slowdown)
    if warmup is not None:
        model = model.with_warmup(*warmup)
    if environment is not None:
        model = model.with_environment(*environment)
    arr = Arrivals(process=arrivals, rate=rate, cv=2.0)
    sc = Scenario(arrivals=arr, service=service, replicas=c, batching=Batching(B, T), queue_limit=K,
                  cache=cache or Cache())
    return sc, model


CASES = {
    "plain": {},
    "single": {"c": 1},
    "many": {"c": 30},
    "many_contention_limit": {"c": 20, "slowdown": SLOWDOWN, "K": 4, "rho": 1.1},
    "many_batching": {"c": 16, "B": 4, "T": 0.003},
    "gamma_arrivals": {"arrivals": "gamma"},
    "greedy": {"B": 4},
    "timeout": {"B": 4, "T": 0.005},
    "timeout_long": {"B": 8, "T": 0.05, "rho": 0.5},
    # heavy load with T below the batch time: the open batch keeps filling while replicas are busy
    "timeout_heavy": {"B": 8, "T": 0.002, "c": 2, "rho": 0.97},
    "timeout_heavy_single": {"B": 16, "T": 0.001, "c": 1, "rho": 0.93},
    "timeout_heavy_everything": {"B": 6, "T": 0.003, "K": 20, "rho": 1.2, "slowdown": SLOWDOWN,
                                 "cache": Cache("lru", 30, 0.9, 300, 0.0005)},
    "cache": {"cache": Cache("lru", 40, 0.9, 400, 0.001)},
    "cache_zero_latency": {"cache": Cache("fifo", 40, 0.9, 400, 0.0), "B": 3},
    "limit": {"K": 2, "rho": 1.2},
    "limit0": {"K": 0},
    "contention": {"slowdown": SLOWDOWN},
    "greedy_limit": {"B": 4, "K": 3, "rho": 1.3},
    "timeout_limit": {"B": 4, "T": 0.005, "K": 5, "rho": 1.3},
    "warmup": {"warmup": WARMUP, "rho": 0.6},
    "warmup_single": {"warmup": WARMUP, "c": 1, "rho": 0.5},
    "warmup_many": {"warmup": WARMUP, "c": 30, "rho": 0.7},
    "warmup_timeout": {"warmup": WARMUP, "B": 4, "T": 0.005, "rho": 0.6},
    "warmup_contention_limit": {"warmup": WARMUP, "slowdown": SLOWDOWN, "K": 4, "rho": 0.9},
    "environment": {"environment": ENVIRONMENT, "rho": 0.6},
    "environment_warmup_timeout": {"environment": ENVIRONMENT, "warmup": WARMUP, "B": 4, "T": 0.005, "rho": 0.6},
    "environment_many_limit": {"environment": ENVIRONMENT, "c": 30, "K": 4, "rho": 0.8},
    "everything": {"B": 3, "T": 0.002, "K": 4, "cache": Cache("lfu", 30, 0.9, 300, 0.0005),
                   "slowdown": SLOWDOWN, "rho": 1.1},
}


def variates_for(sc, model, n, seed):
    return draw_variates(sc, model, n, streams(replication_seeds(seed, 1)[0]))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [1, 2])
def test_matches_event_simulation(name, seed):
    sc, model = make(**CASES[name])
    v = variates_for(sc, model, 600, seed)
    out = fast.run_replication(sc, model, v)
    ref = reference_run(sc, model, v)
    np.testing.assert_array_equal(out.dropped, ref["dropped"])
    np.testing.assert_array_equal(out.cache_hit, ref["cache_hit"])
    np.testing.assert_array_equal(np.isnan(out.latency), np.isnan(ref["latency"]))
    np.testing.assert_allclose(out.latency, ref["latency"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out.batch_size, ref["batch_size"])
    for key in ("batch_wait", "queue_wait", "service"):
        np.testing.assert_allclose(getattr(out, key), ref[key], rtol=0, atol=1e-12, err_msg=key)
    served = out.batch_size > 0
    assert out.busy_time == pytest.approx(np.sum(out.service[served] / out.batch_size[served]), rel=1e-12)
    done = ~np.isnan(out.latency)
    assert out.end_time == pytest.approx(np.max(out.arrival[done] + out.latency[done]), rel=1e-14)


def test_queue_limit_grows_its_ring():
    """A queue limit beyond the ring's first 1024 places: the kernel stops, the ring grows, it resumes."""
    sc, model = make(K=3000, rho=1.5, c=2)
    v = variates_for(sc, model, 12000, 3)
    out = fast.run_replication(sc, model, v)
    ref = reference_run(sc, model, v)
    assert out.dropped.sum() > 0
    np.testing.assert_array_equal(out.dropped, ref["dropped"])
    np.testing.assert_allclose(out.latency, ref["latency"], rtol=0, atol=1e-12)


def test_batching_with_a_long_queue_limit():
    """Heavy load behind a long queue limit: full batches, drops only once the limit is reached."""
    sc, model = make(B=2, T=0.001, K=2500, rho=1.5, c=1)
    v = variates_for(sc, model, 12000, 4)
    out = fast.run_replication(sc, model, v)
    ref = reference_run(sc, model, v)
    assert out.dropped.sum() > 0
    np.testing.assert_array_equal(out.dropped, ref["dropped"])
    np.testing.assert_allclose(out.latency, ref["latency"], rtol=0, atol=1e-12)


def _waiting_at_arrivals(out):
    """Requests waiting (accepted, not yet in service) at each arrival instant, excluding the arrival."""
    accepted = ~out.dropped & ~out.cache_hit
    start = out.arrival + out.batch_wait + out.queue_wait
    a_acc, s_acc = out.arrival[accepted], start[accepted]
    counts = np.empty(out.n, int)
    for i, a in enumerate(out.arrival):
        counts[i] = np.count_nonzero((a_acc < a) & (s_acc > a))
    return counts


@pytest.mark.parametrize("case", [{"K": 3, "rho": 1.4}, {"B": 4, "K": 6, "rho": 1.4},
                                  {"B": 4, "T": 0.004, "K": 6, "rho": 1.4}])
def test_queue_limit_counts_and_bounds_waiting(case):
    sc, model = make(**case)
    v = variates_for(sc, model, 3000, 5)
    out = fast.run_replication(sc, model, v)
    waiting = _waiting_at_arrivals(out)
    K = sc.queue_limit
    assert waiting[~out.dropped].max() <= K - 1  # accepted only while a waiting place was free
    assert waiting[out.dropped].min() >= K       # dropped only when every place was taken
    assert out.dropped.sum() > 0
    assert np.all(np.isnan(out.latency[out.dropped]))
    assert np.all(out.batch_size[out.dropped] == 0)


@pytest.mark.parametrize("B,T", [(4, 0.0), (8, 0.003), (16, 0.02)])
def test_batch_size_never_exceeds_max_and_timeout_respected(B, T):
    sc, model = make(B=B, T=T, rho=0.8)
    out = fast.run_replication(sc, model, variates_for(sc, model, 20000, 6))
    assert out.batch_size.max() <= B
    assert out.batch_size.min() >= 1
    assert out.batch_size.max() > 1
    assert np.all(out.queue_wait >= 0) and np.all(out.batch_wait >= 0)
    start = out.arrival + out.batch_wait + out.queue_wait
    oldest_wait: dict[float, float] = {}  # batch (by start time) -> its oldest member's wait
    size: dict[float, int] = {}
    for s, w, b in zip(start, out.batch_wait + out.queue_wait, out.batch_size):
        oldest_wait[s] = max(oldest_wait.get(s, 0.0), w)
        size[s] = b
    small = np.array([size[s] < B for s in oldest_wait])
    waited = np.array(list(oldest_wait.values()))
    if T > 0:
        # TF-Serving: no request waits longer than the timeout for its batch to become ready
        assert np.all(out.batch_wait <= T + 1e-12)
        # a batch smaller than B starts only once its oldest request has waited the timeout
        assert small.any() and np.all(waited[small] >= T - 1e-12)
    else:
        assert np.all(out.batch_wait == 0)  # greedy: every wait is a wait for a replica


def test_greedy_serves_at_once_when_a_replica_is_free():
    sc, model = make(B=4, rho=0.5, c=2)
    out = fast.run_replication(sc, model, variates_for(sc, model, 5000, 7))
    w = out.batch_wait + out.queue_wait
    assert np.mean(w == 0) > 0.3  # many arrivals find a free replica and start at once
    # a request that waited was taken by the first replica to free up: start = some request's departure
    departures = np.sort(out.arrival + out.latency)
    started_late = out.arrival[w > 0] + w[w > 0]
    idx = np.clip(np.searchsorted(departures, started_late), 0, departures.size - 1)
    assert np.allclose(departures[idx], started_late, rtol=0, atol=1e-12)


def test_one_more_replica_never_increases_a_wait():
    """Common random numbers, FCFS: every request's wait falls (weakly) with an extra replica."""
    sc, model = make(c=3, rho=0.95)
    v = variates_for(sc, model, 20000, 8)
    w3 = fast.run_replication(sc, model, v).queue_wait
    w4 = fast.run_replication(sc.with_replicas(4), model, v).queue_wait
    assert np.all(w4 <= w3 + 1e-12)


def test_scaling_all_times_scales_latencies():
    sc, model = make(c=2, rho=0.9)
    v = variates_for(sc, model, 5000, 9)
    base = fast.run_replication(sc, model, v).latency
    slow = ServiceModel.parametric(0.03, 1.5, "lognormal")
    v3 = type(v)(v.arrival_times * 3.0, v.keys, v.service)
    np.testing.assert_allclose(fast.run_replication(sc, slow, v3).latency, 3.0 * base, rtol=1e-9)


def test_contention_counts_busy_replicas():
    """With slowdown[k] the service of a request that starts with k replicas busy is k-dependent."""
    sc, model = make(c=4, slowdown=SLOWDOWN, rho=0.9)
    v = variates_for(sc, model, 3000, 10)
    out = fast.run_replication(sc, model, v)
    factor = out.service / (0.01 * v.service)
    assert set(np.round(factor, 9)) <= set(np.round(SLOWDOWN[1:5], 9))
    assert len(set(np.round(factor, 9))) == 4


def test_supports_names_what_is_missing():
    sc, _ = make()
    assert fast.supports(sc) is None
    svc = Service(mean_s=0.01)
    assert "pool" in fast.supports(Scenario(arrivals=sc.arrivals, pools=(Pool("a", 1, svc),)))
    assert "stage" in fast.supports(Scenario(arrivals=sc.arrivals, service=svc, pre_stages=(Stage(),)))
    assert "fork" in fast.supports(Scenario(arrivals=sc.arrivals, service=svc, fork_branches=2))
    assert "timeout" in fast.supports(Scenario(arrivals=sc.arrivals, service=svc, request_timeout_s=1.0))
    bad = Scenario(arrivals=sc.arrivals, service=svc, fork_branches=2)
    with pytest.raises(InputError, match="fast engine does not model fork-join"):
        fast.run_replication(bad, ServiceModel.parametric(0.01), variates_for(sc, _, 10, 1))


def test_model_must_cover_the_batch_size():
    sc, _ = make(B=4)
    small = ServiceModel.parametric(0.0, 1.5, "lognormal", batch_time=(0.004, 0.003), max_batch=2)
    with pytest.raises(InputError, match="batches up to 2"):
        fast.run_replication(sc, small, variates_for(sc, small, 10, 1))


_LAYOUT_CASES = ["plain", "single", "limit", "contention", "cache", "many", "many_contention_limit", "many_batching",
                 "timeout_heavy", "everything"]


@pytest.mark.parametrize("name,layout", [(name, "heap") for name in _LAYOUT_CASES] + [
    (name, "array") for name in _LAYOUT_CASES  # where the engine itself would keep the free times in registers
    if CASES[name].get("B", 1) == 1 and CASES[name].get("c", 3) <= 8])
def test_every_layout_of_replica_free_times_gives_the_same_outcomes(name, layout):
    """The kernels keep the free times in registers (plain, up to REG_MAX replicas), in a sorted array
    (up to HEAP_MIN) or in a binary heap (beyond). Forced on these small systems, the heap and the
    sorted array give every request bit for bit the outcome of the engine's own choice, and all that
    of the event simulation."""
    from simulator.fast import kernels as K
    from simulator.fast.engine import QueueRunner

    sc, model = make(**CASES[name])
    n = 3000
    v = variates_for(sc, model, n, 6)
    ref = fast.run_replication(sc, model, v)
    assert sc.replicas <= K.HEAP_MIN and K.REG_MAX == 8  # the run above used no heap; registers up to 8
    runner = QueueRunner(sc, model)
    runner.heap = layout == "heap"
    status = ref.cache_hit.astype(np.int8)
    out = (np.full(n, np.nan), np.zeros(n, np.int32), np.zeros(n), np.zeros(n), np.zeros(n))
    fs, ist, _ = K.new_stats(1)
    if layout == "heap":
        assert runner.feed(v.arrival_times, v.service, status, 0, True, out, 0, 0, fs, ist) == n
    else:  # the array kernel called directly (run_plain itself takes registers up to REG_MAX replicas)
        n0 = 0
        while (n0 := K._run_plain_array(v.arrival_times, v.service, status, n0, runner.limit, runner.W, False,
                                        runner.ring, runner.rs, runner.m, runner.env, runner.hit_latency, out, 0, 0, fs,
                                        ist, None)) < n:
            runner.ring = K.grow_ring(runner.ring, runner.rs)
    np.testing.assert_array_equal(status == 2, ref.dropped)
    for k, key in enumerate(("latency", "batch_size", "batch_wait", "queue_wait", "service")):
        np.testing.assert_array_equal(out[k], getattr(ref, key), err_msg=key)
    assert (fs[K.F_BUSY], fs[K.F_END], ist[K.I_BATCH]) == (ref.busy_time, ref.end_time, ref.n_batches)
    np.testing.assert_allclose(out[0], reference_run(sc, model, v)["latency"], rtol=0, atol=1e-12)


def test_empirical_model_resamples_profile_samples():
    samples = np.sort(np.random.default_rng(0).gamma(2.0, 0.005, 50))
    model = ServiceModel(0, "empirical", float("nan"), np.array([0.0, samples.mean()]), samples,
                         np.array([0, 0]), np.array([0, 50]), np.ones(2), np.ones(2))
    sc = Scenario(arrivals=Arrivals(rate=150.0), service=Service(mean_s=samples.mean()), replicas=2)
    v = variates_for(sc, model, 2000, 11)
    out = fast.run_replication(sc, model, v)
    assert set(out.service) <= set(samples)
    np.testing.assert_allclose(out.latency, reference_run(sc, model, v)["latency"], rtol=0, atol=1e-12)


def test_stale_kernel_cache_is_dropped_when_an_inlined_module_changes(tmp_path, monkeypatch):
    from simulator.fast import _stale

    src = tmp_path / "service.py"
    src.write_text("a = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    monkeypatch.setattr(_stale, "_HERE", tmp_path)
    monkeypatch.setattr(_stale, "_SOURCES", [src])
    _stale.drop_stale_cache()
    (cache / "kernels.run_plain-1.py311.nbi").write_text("x")
    _stale.drop_stale_cache()  # sources unchanged: the cache stays
    assert (cache / "kernels.run_plain-1.py311.nbi").exists()
    src.write_text("a = 2\n")
    _stale.drop_stale_cache()  # an inlined module changed: its machine code goes
    assert not (cache / "kernels.run_plain-1.py311.nbi").exists()


def test_unsorted_arrivals_are_refused():
    sc, model = make()
    v = variates_for(sc, model, 10, 1)
    v.arrival_times = v.arrival_times[::-1].copy()
    with pytest.raises(InputError, match="non-decreasing"):
        fast.run_replication(sc, model, v)


@pytest.mark.parametrize("keys", [np.array([5, 3, 5, 9, 3, 3, 1, 5, 7, 9] * 50),
                                  np.array([10**12, -4, 10**12, 7, -4, 7, 7, 3] * 60)])
@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
def test_cache_hits_match_cachesim(keys, policy):
    from simulator.fast.engine import _cache_hits

    np.testing.assert_array_equal(_cache_hits(policy, 3, keys), hit_mask(policy, 3, keys))
