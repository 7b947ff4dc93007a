"""Errors, spread and the acceptance rule of a validation; effective service times from server records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.validate.calibration import effective_batches, load_point
from simulator.validate.compare import meets_goal, relative_error, spread
from simulator.validate.server import ServerRecords


def test_relative_error_sign_and_scale():
    assert relative_error(11.0, 10.0) == pytest.approx(10.0)
    assert relative_error(9.0, 10.0) == pytest.approx(-10.0)
    assert relative_error(10.0, 10.0) == 0.0


@pytest.mark.parametrize("pred, meas", [(None, 1.0), (1.0, None), (math.nan, 1.0), (1.0, 0.0), (1.0, -1.0),
                                        (math.inf, 1.0)])
def test_relative_error_is_nan_when_undefined(pred, meas):
    assert math.isnan(relative_error(pred, meas))


def test_spread_is_largest_deviation_from_the_mean():
    # mean 10; the farthest run (13) is 30% away
    assert spread([8.0, 9.0, 10.0, 13.0]) == pytest.approx(30.0)
    assert spread([5.0, math.nan, 5.0]) == 0.0
    assert math.isnan(spread([5.0]))  # one run has no spread
    assert math.isnan(spread([]))


@pytest.mark.parametrize("metric, err, spr, limit, within_spread", [
    ("mean", 9.9, 0.0, True, False),
    ("mean", -10.1, 20.0, False, True),
    ("p99", 14.0, 10.0, True, True),
    ("p99", 15.5, 10.0, False, False),
    ("p90", math.nan, 10.0, False, False),
    ("p50", 3.0, math.nan, True, None),
])
def test_goal(metric, err, spr, limit, within_spread):
    assert meets_goal(metric, err, spr) == {"limit": limit, "spread": within_spread}


def _records(enq, started, done, worker, busy=None, batch=None):
    n = len(enq)
    f = [np.asarray(x, float) for x in (enq, started, done, done)]
    return ServerRecords(f[0], f[1], f[2], f[3], np.asarray(batch or [1] * n), np.asarray(busy or [1] * n),
                         np.asarray(worker))


def test_effective_service_includes_idle_wakeup_and_not_queueing():
    # one worker: request 0 finds it idle (wakes 0.5 ms late), request 1 queues behind request 0
    r = _records(enq=[0.0, 0.001], started=[0.0005, 0.003], done=[0.003, 0.005], worker=[0, 0])
    eff = effective_batches(r)
    np.testing.assert_allclose(eff["service_s"], [0.003, 0.002])
    # the FCFS recursion with these times reproduces the measured sojourns exactly
    finish = 0.0
    for a, s, d in zip(r.enqueued, eff["service_s"], r.done):
        finish = max(finish, a) + s
        assert finish == pytest.approx(d)


def test_effective_service_groups_batches_and_workers():
    # two workers; a batch of 2 on worker 1 (same start), one request on worker 0
    r = _records(enq=[0.0, 0.0002, 0.0001], started=[0.001, 0.001, 0.0004], done=[0.004, 0.004, 0.003],
                 worker=[1, 1, 0], busy=[2, 2, 1], batch=[2, 2, 1])
    eff = effective_batches(r)
    assert eff["batch_size"].tolist() == [1, 2]
    assert eff["busy"].tolist() == [1, 2]
    np.testing.assert_allclose(eff["service_s"], [0.003 - 0.0001, 0.004 - 0.0])


def test_load_point_overhead_and_slowdown():
    n = 400
    enq = np.arange(n) * 0.01  # every request finds its worker idle
    busy = np.where(np.arange(n) % 2 == 0, 1, 2)
    service = np.where(busy == 1, 0.002, 0.003)
    started = enq + 0.0001
    done = started + service
    r = _records(enq, started, done, worker=list(np.arange(n) % 2), busy=list(busy))
    sojourn = float(r.sojourn_s.mean())
    p = load_point(r, loadgen_mean_latency_s=sojourn + 0.0004, arrival_rate=100.0, replicas=2, utilization=0.5)
    assert p.overhead_s == pytest.approx(0.0004)
    slow = p.slowdown()
    assert slow[1] == 1.0
    assert slow[2] == pytest.approx(0.0031 / 0.0021, rel=1e-6)
    # deflated to one busy worker, both groups have the same mean
    assert p.base_samples()[1].mean() == pytest.approx(0.0021, rel=1e-6)
    # LoadGen faster than the server's own clock: the overhead is clamped at 0 and the raw value kept
    q = load_point(r, loadgen_mean_latency_s=sojourn - 0.001, arrival_rate=100.0, replicas=2, utilization=0.5)
    assert q.overhead_s == 0.0 and q.meta["overhead_raw_s"] < 0
