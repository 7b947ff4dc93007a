"""Engines agree: given the same variates, the compiled and the SimPy engine give the same requests.

Every feature the two share is covered — plain G/G/c (replica free times kept sorted, or as a heap
beyond simulator.fast.kernels.HEAP_MIN replicas), greedy and timed batching (TF-Serving's rule, light
to heavy load), the cache, the queue limit, contention, warm-up after idle, and all of them at once — with parametric and
empirical (profile) service models. Latencies must agree within 1e-9 s, request by request; drops, cache
hits and batch sizes exactly. (Continuous variates: simultaneous events, which the engines order
differently, have probability zero; see simulator.fast.kernels.)
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator import des, fast
from simulator.profiles import Profile
from simulator.scenario import Arrivals, Batching, Scenario, Service
from simulator.service import ServiceModel
from simulator.variates import draw_variates, replication_seeds, streams

from ..conftest import make_profile_dict
from ..unit.test_fast_engine import CASES, WARMUP, make

TOL = 1e-9


def _compare(sc, model, n, seed):
    ss = replication_seeds(seed, 1)[0]
    v = draw_variates(sc, model, n, streams(ss))
    a = fast.run_replication(sc, model, v, streams(ss))
    b = des.run_replication(sc, model, v, streams(ss))
    np.testing.assert_array_equal(a.dropped, b.dropped)
    np.testing.assert_array_equal(a.cache_hit, b.cache_hit)
    np.testing.assert_array_equal(np.isnan(a.latency), np.isnan(b.latency))
    np.testing.assert_allclose(a.latency, b.latency, rtol=0, atol=TOL)
    np.testing.assert_array_equal(a.batch_size, b.batch_size)
    for key in ("batch_wait", "queue_wait", "service", "stage_time"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=0, atol=TOL, err_msg=key)
    assert a.busy_time == pytest.approx(b.busy_time, rel=1e-12)
    assert a.end_time == pytest.approx(b.end_time, rel=1e-12)
    assert (a.n_batches, a.servers) == (b.n_batches, b.servers)
    return a


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [11, 12])
def test_same_latencies_as_simpy(name, seed):
    sc, model = make(**CASES[name])
    _compare(sc, model, 4000, seed)


@pytest.mark.parametrize("case", [{"rho": 0.98}, {"slowdown": np.linspace(1.0, 1.5, 1200), "K": 40, "rho": 1.02},
                                  {"B": 4, "T": 0.003, "rho": 0.98}, {"warmup": WARMUP, "rho": 0.9}])
def test_same_latencies_beyond_the_heap_threshold(case):
    """More replicas than simulator.fast.kernels.HEAP_MIN: the free times are a heap, not sorted."""
    from simulator.fast.kernels import HEAP_MIN

    sc, model = make(c=HEAP_MIN + 100, **case)
    out = _compare(sc, model, 12 * sc.replicas, 16)
    assert np.nanmax(out.queue_wait + out.batch_wait) > 0  # replicas were all busy at times


@pytest.mark.parametrize("arrivals", [Arrivals(process="mmpp", rate=250.0, burst_mean_s=0.2),
                                      Arrivals(process="diurnal", rate=250.0, amplitude=0.9, period_s=5.0)])
def test_same_latencies_under_bursty_arrivals(arrivals):
    sc = Scenario(arrivals=arrivals, service=Service(mean_s=0.01), replicas=3, queue_limit=10)
    out = _compare(sc, ServiceModel.parametric(0.01), 6000, 13)
    assert out.dropped.any()


@pytest.mark.parametrize("batching", [Batching(1, 0.0), Batching(6, 0.0), Batching(6, 0.003)])
def test_same_latencies_with_a_measured_profile(batching):
    """Empirical resampling, unmeasured batch sizes rescaled, concurrency slow-down, a queue limit."""
    rng = np.random.default_rng(0)
    doc = make_profile_dict({1: rng.gamma(16.0, 0.0006, 300), 4: rng.gamma(16.0, 0.0012, 300)},
                            concurrency={2: rng.gamma(16.0, 0.0007, 300), 4: rng.gamma(16.0, 0.001, 300)})
    model = ServiceModel.from_profile(Profile.from_dict(doc), max_batch=batching.max_batch_size)
    assert model.slowdown.size > 2  # contention is exercised
    assert bool(model.notes) == (batching.max_batch_size > 1)  # so are rescaled unmeasured batch sizes
    rate = 0.95 * 4 * batching.max_batch_size / model.mean(batching.max_batch_size)
    sc = Scenario(arrivals=Arrivals(rate=rate), service=Service(mean_s=model.mean(1)), replicas=4,
                  batching=batching, queue_limit=12)
    out = _compare(sc, model, 5000, 14)
    assert out.dropped.any()


@pytest.mark.parametrize("c,timeout", [(1, 0.005), (2, 0.005), (3, 0.002), (2, 0.0), (1, 0.04)])
def test_same_latencies_in_the_tf_serving_example(c, timeout):
    """λ = 1000/s per replica, batch time 10 ms + 0.5 ms·n, B = 32: the open batch keeps filling while
    every replica is busy, so batches are large (a batcher closing it on its timer would serve ~6)."""
    bt = (0.010, 0.0005)
    sc = Scenario(arrivals=Arrivals(rate=1000.0 * c), replicas=c, batching=Batching(32, timeout),
                  service=Service(batch_time=bt, dist="deterministic", cv=0.0))
    model = ServiceModel.parametric(0.0, 0.0, "deterministic", batch_time=bt, max_batch=32)
    out = _compare(sc, model, 20000, 15)
    assert out.n / out.n_batches > 12
