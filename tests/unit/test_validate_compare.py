"""Errors, spread and the acceptance rule of a validation; effective service times from server records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.validate.calibration import effective_batches, load_point
from simulator.validate.compare import chance_within_limit, meets_goal, relative_error, run_sd_pct, spread
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


def test_run_sd_is_the_sample_sd_in_percent_of_the_mean():
    assert run_sd_pct([9.0, 10.0, 11.0]) == pytest.approx(10.0)  # sd 1 (ddof 1), mean 10
    assert run_sd_pct([4.0, 4.0]) == 0.0
    assert math.isnan(run_sd_pct([4.0]))


def test_chance_within_limit_is_the_normal_probability():
    assert chance_within_limit("mean", 10.0) == pytest.approx(0.682689, abs=1e-6)  # limit = 1 sd
    assert chance_within_limit("p99", 7.5) == pytest.approx(0.954500, abs=1e-6)    # limit 15 = 2 sd
    assert chance_within_limit("p90", 0.0) == 1.0
    assert math.isnan(chance_within_limit("p50", math.nan))
    # the same figure by sampling: errors of an exact prediction drawn with sd 8 %, limit 10 %
    # (200 000 draws: the fraction's sd is 0.001, the tolerance 5 of those)
    errors = np.random.default_rng(3).normal(0.0, 8.0, 200_000)
    assert np.mean(np.abs(errors) <= 10.0) == pytest.approx(chance_within_limit("mean", 8.0), abs=0.005)


def test_noise_scores_count_what_chance_allows():
    from simulator.validate.report import _score

    def row(metric, err, limit_ok, run_sd, measured_sd, repeats=4):
        chance = chance_within_limit(metric, run_sd / math.sqrt(repeats))
        return {"metric": metric, "repeats": repeats, "measured_run_sd_pct": measured_sd,
                "m_error_pct": err, "m_meets_limit": limit_ok, "m_meets_spread": True, "m_sim_ci_pct": 1.0,
                "m_run_sd_pct": run_sd, "m_exact_chance": chance}

    rows = [row("mean", 30.0, False, 10.0, 40.0),   # misses by 30 > 2 sd of the mean (10): beyond noise
            row("mean", 12.0, False, 20.0, 20.0),   # misses by 12 < 2 sd (20): chance can explain it
            row("p99", 5.0, True, 30.0, 15.0)]      # within the limit
    s = _score(rows, "m")
    expected = (chance_within_limit("mean", 5.0) + chance_within_limit("mean", 10.0)
                + chance_within_limit("p99", 15.0))
    assert s["expected_if_exact"] == pytest.approx(expected)
    assert s["beyond_noise"] == 1
    # by the real runs' own sd (2 sd of the mean of 4 runs: 40 and 20) neither miss is beyond noise
    assert s["beyond_real_noise"] == 0
    # real / model run-to-run sd, root mean squares over a metric's cells
    assert s["sd_ratio"]["mean"] == pytest.approx(math.sqrt((40**2 + 20**2) / (10**2 + 20**2)))
    assert s["sd_ratio"]["p99"] == pytest.approx(0.5)
    assert s["sd_ratio"]["p50"] is None
    # 95 % in every cell: the worst is the p99 cell, (1.96 × 30 / 15)² = 15.4 → 16 runs
    assert s["runs_needed"] == 16
    # a cell without a run-to-run sd leaves the expectation unknown rather than undercounted
    rows[0]["m_exact_chance"] = None
    assert _score(rows, "m")["expected_if_exact"] is None


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


def test_the_host_level_section_sets_each_loads_level_beside_the_under_load_errors():
    from simulator.validate.report import _host_level_lines

    def row(metric, err):
        return {"replicas": 1, "utilization": 0.7, "metric": metric, "measured_level_pct": 6.9,
                "under_load_error_pct": err, "calibrated_error_pct": 1.0}

    lines = _host_level_lines([row("mean", -10.3), row("p99", -25.2)],
                              {1: {"sd": 0.016, "episodes": [-0.03]}, 2: {"sd": None}})
    text = "\n".join(lines)
    assert "C = 1: 1.6% (episodes set aside: -3.0%); C = 2: n/a" in text
    assert "| 1 | 0.70 | +6.9 | -10.3 / -25.2 |" in text
    assert "calibrated" not in text.split("| C |")[1]  # only the profiles simulate and plan use
    assert _host_level_lines([{"metric": "mean", "measured_level_pct": None}], None) == []
