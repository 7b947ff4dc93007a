"""Streaming mode: chunked variates and carried state give the figures of one exact run."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import fast
from simulator.cachesim import cache_hits
from simulator.fast import kernels as K
from simulator.fast.cache import CacheState
from simulator.fast.engine import QueueRunner
from simulator.fast.streaming import ArrivalStream, KeyStream
from simulator.montecarlo import summarize
from simulator.scenario import Arrivals, Cache, Run, Scenario, Service
from simulator.variates import draw_variates, replication_seeds, streams
from simulator.workload import arrival_times, load_trace, zipf_keys

from .test_fast_engine import CASES, make

STREAM_CASES = ["plain", "many", "greedy", "timeout", "timeout_long", "timeout_heavy", "timeout_heavy_everything",
                "cache", "cache_zero_latency", "limit", "greedy_limit", "timeout_limit", "everything", "warmup",
                "environment", "environment_warmup_timeout"]


@pytest.mark.parametrize("name", STREAM_CASES)
def test_streaming_equals_exact_run(name):
    sc, model = make(**CASES[name])
    seed = replication_seeds(21, 1)[0]
    n = 20000
    out = fast.run_replication(sc, model, draw_variates(sc, model, n, streams(seed)))
    exact = summarize(out, Run(warmup="fraction", warmup_fraction=0.1))
    kept = out.latency[2000:][~np.isnan(out.latency[2000:])]
    for chunk in (97, 777, 2**20):  # 97: batches and the waiting queue span chunks
        s = fast.run_streaming(sc, model, n, seed, chunk=chunk, warmup_fraction=0.1)
        assert not s.exact_quantiles
        assert (s.completed, s.dropped, s.cache_hits, s.warmup_deleted) == (
            exact.completed, exact.dropped, exact.cache_hits, exact.warmup_deleted)
        assert s.latency_mean == pytest.approx(exact.latency_mean, rel=1e-9)
        for q, v in s.quantiles.items():
            ref = np.quantile(kept, q, method="lower")
            assert abs(v - ref) <= fast.RELATIVE_ERROR * ref + 1e-12
        for key in ("cache", "batching_wait", "queueing_wait", "service", "stages"):
            assert s.breakdown[key] == pytest.approx(exact.breakdown[key], rel=1e-9, abs=1e-15)
        assert s.utilization == pytest.approx(exact.utilization, rel=1e-9)
        assert s.throughput == pytest.approx(exact.throughput, rel=1e-9)
        assert s.little_l == pytest.approx(exact.little_l, rel=1e-9)
        if sc.batching.max_batch_size == 1:
            assert s.batch_size_mean == 1.0


@pytest.mark.parametrize("name", ["greedy", "timeout", "timeout_long", "timeout_heavy", "timeout_heavy_single",
                                  "timeout_heavy_everything", "timeout_limit"])
def test_chunked_queue_gives_every_request_the_same_outcome(name):
    """The queue fed in chunks of 1 to 300 requests (carrying the waiting tail and the batcher's state)
    gives every request bit for bit the outcome of one call on the whole run."""
    sc, model = make(**CASES[name])
    n = 6000
    v = draw_variates(sc, model, n, streams(replication_seeds(23, 1)[0]))
    one = fast.run_replication(sc, model, v)
    runner = QueueRunner(sc, model)
    status = one.cache_hit.astype(np.int8)  # hits are known before the queue; drops come from it
    got = np.full((5, n), np.nan)
    fs, ist, _ = K.new_stats(1)
    bounds = np.cumsum(np.random.default_rng(0).integers(1, 300, n))
    bounds = np.append(bounds[bounds < n], n)
    g0 = new = 0
    for hi in bounds:
        m = hi - g0
        out = (np.empty(m), np.empty(m, np.int32), np.empty(m), np.empty(m), np.empty(m))
        cut = runner.feed(v.arrival_times[g0:hi], v.service[g0:hi], status[g0:hi], new - g0, hi == n, out,
                          g0, 0, fs, ist)
        for k in range(5):  # local 0..cut-1 are finished, served in this call (or hits, or drops)
            got[k, g0:g0 + cut] = out[k][:cut]
        g0, new = g0 + cut, hi
    assert g0 == n
    served = status == 0
    np.testing.assert_array_equal(status == 2, one.dropped)
    for k, key in enumerate(("latency", "batch_size", "batch_wait", "queue_wait", "service")):
        np.testing.assert_array_equal(got[k][served], getattr(one, key)[served], err_msg=key)
    assert int(ist[K.I_BATCH]) == one.n_batches
    assert fs[K.F_BUSY] == pytest.approx(one.busy_time, rel=1e-12)


@pytest.mark.parametrize("case", [CASES[name] for name in ("plain", "single", "many", "limit", "limit0",
                                                            "contention", "cache", "many_contention_limit",
                                                            "gamma_arrivals")]
                         + [{"cache": Cache("fifo", 40, 0.9, 400, 0.0)}, {"K": 3000, "rho": 1.5, "c": 2}])
def test_plain_kernel_folds_as_fold_does(case):
    """Without batching the kernel folds each outcome itself (hist given, out None): the sums, counts,
    min/max and histogram are bit for bit those of fold() on the per-request arrays, chunk by chunk,
    with warm-up, hits (also of zero latency), drops and the queue-limit ring's growth."""
    from simulator.fast.sketch import NBUCKETS

    sc, model = make(**case)
    n = 5000
    v = draw_variates(sc, model, n, streams(replication_seeds(31, 1)[0]))
    status0 = np.zeros(n, np.int8)
    if sc.cache.enabled:
        status0[cache_hits({"lru": 0, "lfu": 1, "fifo": 2}[sc.cache.policy], sc.cache.capacity, v.keys)] = 1
    warm = 700
    got, want = [], []
    for in_kernel in (True, False):
        runner = QueueRunner(sc, model)
        fs, ist, hist = K.new_stats(NBUCKETS)
        status = status0.copy()
        for lo, hi in ((0, 333), (333, 2000), (2000, n)):
            m = hi - lo
            a, x, st = v.arrival_times[lo:hi], v.service[lo:hi], status[lo:hi]
            if in_kernel:
                assert runner.feed(a, x, st, 0, hi == n, None, lo, warm, fs, ist, hist) == m
            else:
                out = (np.empty(m), np.empty(m, np.int32), np.zeros(m), np.empty(m), np.empty(m))
                assert runner.feed(a, x, st, 0, hi == n, out, lo, warm, fs, ist) == m
                K.fold(out, st, 0, m, runner.hit_latency, lo, warm, fs, ist, hist)
        (got if in_kernel else want).append((fs, ist, hist, status))
    for g, w in zip(got[0], want[0]):
        np.testing.assert_array_equal(g, w)
    assert got[0][1][K.I_DONE] > 0


def test_streaming_default_warmup_follows_the_run_rule():
    sc, model = make()
    seed = replication_seeds(2, 1)[0]
    assert fast.run_streaming(sc, model, 1000, seed).warmup_deleted == 100
    none = Scenario(arrivals=sc.arrivals, service=sc.service, replicas=3, run=Run(warmup="none"))
    assert fast.run_streaming(none, model, 1000, seed).warmup_deleted == 0


def test_streaming_can_return_the_sketch():
    sc, model = make()
    s, sk = fast.run_streaming(sc, model, 5000, replication_seeds(3, 1)[0], return_sketch=True)
    assert sk.count == s.completed
    assert sk.quantile(0.99) == s.quantiles[0.99]


def _pieces(stream, sizes):
    return np.concatenate([stream.next(k) for k in sizes])


def test_arrival_stream_continues_the_same_process(tmp_path):
    sizes = [1, 999, 3000, 17, 983]
    n = sum(sizes)
    poisson = Arrivals(rate=50.0)
    got = _pieces(ArrivalStream(poisson, np.random.default_rng(5)), sizes)
    np.testing.assert_allclose(got, arrival_times(poisson, n, np.random.default_rng(5)), rtol=1e-12)
    gamma = Arrivals(process="gamma", rate=50.0, cv=3.0)
    got = _pieces(ArrivalStream(gamma, np.random.default_rng(5)), sizes)
    np.testing.assert_allclose(got, arrival_times(gamma, n, np.random.default_rng(5)), rtol=1e-12)
    mmpp = Arrivals(process="mmpp", rate=50.0, burst_mean_s=0.5)
    got = _pieces(ArrivalStream(mmpp, np.random.default_rng(5)), sizes)
    np.testing.assert_array_equal(got, arrival_times(mmpp, n, np.random.default_rng(5)))
    path = tmp_path / "t.txt"
    path.write_text("\n".join(str(t) for t in [0.0, 0.1, 0.15, 0.4, 0.41]))
    trace = Arrivals(process="trace", trace=str(path), rate=20.0)
    got = _pieces(ArrivalStream(trace, np.random.default_rng(5)), sizes)
    np.testing.assert_array_equal(got, arrival_times(trace, n, np.random.default_rng(5)))
    assert np.all(np.diff(got) >= 0)


def test_diurnal_stream_keeps_the_rate_profile():
    di = Arrivals(process="diurnal", rate=100.0, amplitude=0.8, period_s=100.0)
    got = _pieces(ArrivalStream(di, np.random.default_rng(6)), [7000] * 20)
    assert np.all(np.diff(got) >= 0)
    # arrivals per phase bin follow 1 + a·sin: the busiest tenth of the cycle is well above the quietest
    phase = (got % 100.0) / 100.0
    counts = np.histogram(phase, bins=10, range=(0, 1))[0]
    assert counts.max() / counts.min() > 3
    assert got.size / got[-1] == pytest.approx(100.0, rel=0.05)


def test_key_stream_and_cache_state_continue_across_chunks():
    sc = Scenario(arrivals=Arrivals(rate=1.0), service=Service(mean_s=0.1),
                  cache=Cache("lfu", 50, 0.9, 500))
    ks = KeyStream(sc, np.random.default_rng(8), None)
    sizes = [10, 2000, 1, 3000]
    keys = _pieces(ks, sizes)
    np.testing.assert_array_equal(keys, zipf_keys(0.9, 500, sum(sizes), np.random.default_rng(8)))
    for policy, code in (("lru", 0), ("lfu", 1), ("fifo", 2)):
        cs = CacheState(policy, 50, 500)
        got = np.concatenate([cs.hits(keys[a:b]) for a, b in ((0, 10), (10, 2010), (2010, 2011), (2011, None))])
        np.testing.assert_array_equal(got, cache_hits(code, 50, keys))


def test_trace_keys_are_relabelled_densely(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("timestamp_s,key\n0.0,900\n0.1,-5\n0.2,900\n0.3,7\n")
    tr = load_trace(path)
    sc = Scenario(arrivals=Arrivals(process="trace", trace=str(path)), service=Service(mean_s=0.01),
                  cache=Cache("lru", 2, 0.9, 10))
    ks = KeyStream(sc, np.random.default_rng(0), tr)
    assert ks.n_keys == 3
    np.testing.assert_array_equal(ks.next(6), [2, 0, 2, 1, 2, 0])


def test_streaming_memory_does_not_grow_with_the_run():
    """Peak allocations stay at a few chunks' worth, whatever the number of requests."""
    import tracemalloc

    sc, model = make(B=4, T=0.002, cache=Cache("lru", 100, 0.9, 1000))
    seed = replication_seeds(9, 1)[0]
    fast.run_streaming(sc, model, 5000, seed, chunk=2**14)  # compile outside the measurement
    peaks = []
    for n in (2**16, 2**20):
        tracemalloc.start()
        fast.run_streaming(sc, model, n, seed, chunk=2**14)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0]       # 16 times the requests, about the same memory
    assert peaks[1] < 2**14 * 200 + 2**20  # ~200 bytes per request of one chunk, plus the sketch
