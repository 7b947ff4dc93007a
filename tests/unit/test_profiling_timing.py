"""Timing harness and serving loop, with pure-Python runners (no TensorFlow needed)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.profiling.serving import ServingLoop, measure_serving
from simulator.profiling.timing import StoppingRule, ci_half_width, measure_concurrent

FAST = dict(warmup_calls=2, warmup_seconds=0.0)


def sleeper(seconds: float):
    def factory():
        def run(x):
            time.sleep(seconds)
            return x * 2

        return run

    return factory


def test_ci_half_width_iid_matches_t_interval():
    # For n < 100 it is the textbook t interval: t_{0.975, n-1} * s / sqrt(n).
    from scipy import stats

    x = np.random.default_rng(1).normal(10.0, 2.0, 50)
    expected = stats.t.ppf(0.975, 49) * x.std(ddof=1) / np.sqrt(50)
    assert ci_half_width(x) == pytest.approx(expected)


def test_ci_half_width_batch_means_covers_true_mean():
    # 95% intervals from i.i.d. data: coverage over 400 replications within binomial error of 0.95
    # (3 standard errors of a proportion: 0.95 ± 3*sqrt(0.95*0.05/400) = ±0.033).
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(400):
        x = rng.gamma(2.0, 1.0, 400)
        hits += abs(x.mean() - 2.0) <= ci_half_width(x)
    assert abs(hits / 400 - 0.95) < 0.033


def test_stopping_rule_validates_fields():
    with pytest.raises(InputError, match="rel_ci"):
        StoppingRule(rel_ci=float("nan"))
    with pytest.raises(InputError, match="min_samples"):
        StoppingRule(min_samples=1)
    with pytest.raises(InputError, match="max_seconds"):
        StoppingRule(max_seconds=0)


def test_converges_on_a_steady_runner():
    # A constant-work runner (no sleep jitter) reaches ±5% quickly: outcome 'converged', n >= min_samples.
    rule = StoppingRule(min_samples=50, max_seconds=10.0, rel_ci=0.05, **FAST)
    m = measure_concurrent(sleeper(0.001), lambda i: np.ones(3), 1, rule)
    assert m.outcome == "converged"
    assert m.samples_s.size >= 50
    assert m.samples_s.min() >= 0.001  # sleep never returns early
    assert m.warmup_calls >= 2


def test_time_budget_ends_sampling_and_is_recorded():
    rule = StoppingRule(min_samples=10_000, max_seconds=0.3, rel_ci=0.01, **FAST)
    m = measure_concurrent(sleeper(0.002), lambda i: np.ones(3), 1, rule)
    assert m.outcome == "time_budget"
    assert m.samples_s.size < 10_000
    assert m.summary()["stopping_outcome"] == "time_budget"


def test_sample_budget():
    rule = StoppingRule(min_samples=10, max_samples=20, max_seconds=30.0, rel_ci=1e-9, **FAST)
    m = measure_concurrent(lambda: (lambda x: x), lambda i: np.ones(3), 1, rule)
    assert m.outcome == "sample_budget"
    assert m.samples_s.size == 20


def test_concurrent_workers_each_get_their_own_runner():
    made = []
    lock = threading.Lock()

    def factory():
        with lock:
            made.append(threading.get_ident())
        return lambda x: (time.sleep(0.001), x)[1]

    rule = StoppingRule(min_samples=40, max_seconds=5.0, rel_ci=0.2, **FAST)
    m = measure_concurrent(factory, lambda i: np.full(2, i), 3, rule)
    assert len(set(made)) == 3
    assert m.samples_s.size >= 40
    assert m.throughput_rps > 0


def test_worker_error_propagates():
    def factory():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        measure_concurrent(factory, lambda i: np.ones(1), 2, StoppingRule(min_samples=5, **FAST))


def test_serving_loop_returns_each_request_its_own_outputs():
    with ServingLoop(lambda: (lambda x: x * 10), workers=2) as loop:
        reqs = [loop.submit([np.array([i, i + 1]), np.array([i + 2, i + 3])]) for i in range(20)]
        for i, r in enumerate(reqs):
            out = r.future.result(timeout=5)
            np.testing.assert_array_equal(out[0], [10 * i, 10 * (i + 1)])
            np.testing.assert_array_equal(out[1], [10 * (i + 2), 10 * (i + 3)])
            assert r.ready_at >= r.dequeued_at > 0


def test_serving_path_separates_service_from_handoff():
    # Service (dequeue -> ready) covers the model's 2 ms sleep; hand-off is the rest and is >= 0.
    rule = StoppingRule(min_samples=30, max_seconds=5.0, rel_ci=0.1, **FAST)
    m = measure_serving(sleeper(0.002), lambda i: np.ones((2, 3)), 1, rule)
    assert m.handoff_s is not None and m.handoff_s.size == m.samples_s.size
    assert m.samples_s.min() >= 0.002
    assert m.handoff_s.min() >= 0
    assert "handoff_mean_s" in m.summary()


def test_serving_path_model_error_reaches_the_caller():
    def factory():
        def run(x):
            raise ValueError("bad input")

        return run

    with pytest.raises(ValueError, match="bad input"):
        measure_serving(factory, lambda i: np.ones((1, 2)), 1, StoppingRule(min_samples=5, **FAST))


@pytest.mark.parametrize("measure", [measure_concurrent, measure_serving])
def test_failure_after_warm_up_stops_measurement(measure):
    # A runner that breaks mid-measurement must surface its error, not leave the point running on.
    def factory():
        calls = {"n": 0}

        def run(x):
            calls["n"] += 1
            if calls["n"] > 5:
                raise RuntimeError("device lost")
            return x

        return run

    rule = StoppingRule(min_samples=1000, max_seconds=30.0, warmup_calls=2, warmup_seconds=0.0)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="device lost"):
        measure(factory, lambda i: np.ones((1, 2)), 2, rule)
    assert time.perf_counter() - start < 10
