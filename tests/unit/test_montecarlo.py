"""Monte Carlo layer: warm-up rules, summaries, t-intervals, the precision rule, determinism."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from simulator.montecarlo import little_l, mser5, run_replications, summarize, t_interval, warmup_cut
from simulator.replication import ReplicationOutput
from simulator.scenario import Arrivals, Run, Scenario, Service
from simulator.simulate import simulate


def _output(latency, arrival=None) -> ReplicationOutput:
    n = len(latency)
    out = ReplicationOutput.empty(n, 1)
    out.arrival = np.arange(n, dtype=float) if arrival is None else np.asarray(arrival, float)
    out.latency = np.asarray(latency, float)
    out.dropped = np.isnan(out.latency)
    out.service = np.where(out.dropped, 0.0, out.latency)
    out.batch_size = np.where(out.dropped, 0, 1).astype(np.int32)
    out.end_time = float(np.nanmax(out.arrival + out.latency))
    out.busy_time = float(np.nansum(out.latency))
    return out


def test_mser5_finds_an_initial_transient():
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 0.1, 5000)
    x[:500] += np.linspace(5.0, 0.0, 500)  # decaying start-up bias over the first 500
    d = mser5(x)
    assert 300 <= d <= 700
    assert d % 5 == 0


def test_mser5_keeps_a_stationary_series():
    x = np.random.default_rng(2).normal(size=5000)
    assert mser5(x) < 500


def test_mser5_short_series():
    assert mser5(np.ones(12)) == 0


def _transient() -> np.ndarray:
    return np.r_[np.full(100, 50.0), 1.0 + 0.01 * np.random.default_rng(3).standard_normal(900)]


def test_warmup_rules():
    out = _output(_transient())
    assert warmup_cut(out, Run(warmup="none")) == 0
    assert warmup_cut(out, Run(warmup="fraction", warmup_fraction=0.25)) == 250
    assert warmup_cut(out, Run(warmup="mser5")) == 100


def test_mser5_cut_is_in_arrival_order_skipping_drops():
    lat = _transient()
    lat[::2] = np.nan  # every other request dropped: MSER sees 500 answered, deletes 50 of them
    out = _output(lat)
    assert warmup_cut(out, Run()) == 101


def test_summarize_figures():
    out = _output([1.0, 2.0, np.nan, 4.0])
    s = summarize(out, Run(warmup="none"))
    assert s.completed == 3 and s.dropped == 1
    assert s.latency_mean == pytest.approx(7 / 3)
    assert s.quantiles[0.5] == 2.0
    assert s.breakdown["service"] == pytest.approx(7 / 3)
    assert s.batch_size_mean == 1.0 and s.batches == 3
    assert s.warmup_deleted == 0


def test_little_l_from_the_step_function():
    # two overlapping sojourns [0, 2) and [1, 3): N = 1, 2, 1 over [0, 3) -> L = 4/3
    assert little_l(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == pytest.approx(4 / 3)


def test_t_interval_matches_scipy():
    x = [1.0, 2.0, 4.0, 3.0, 2.5]
    mean, lo, hi = t_interval(x)
    ref = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert mean == pytest.approx(np.mean(x))
    assert (lo, hi) == pytest.approx(ref)
    assert math.isnan(t_interval([1.0])[1])


class _Fake:
    """A replicate() whose p99 estimates are fixed numbers, to drive the precision rule."""

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def __call__(self, seed_seq):
        from simulator.replication import ReplicationSummary
        v = self.values[self.calls]
        self.calls += 1
        return ReplicationSummary(completed=1, dropped=0, latency_mean=v, quantiles={0.99: v}, cache_hits=0,
                                  batches=1, batch_size_mean=1.0, breakdown={}, utilization=0.5,
                                  throughput=1.0, warmup_deleted=0)


def test_precision_rule_adds_replications_until_met():
    fake = _Fake([1.0, 1.2, 0.8, 1.1, 0.9] + [1.0] * 40)
    mc = run_replications(fake, Run(min_replications=5, max_replications=40, target_rel_halfwidth=0.05), 1)
    assert 5 < mc.replications < 40
    assert mc.precision["met"] and mc.precision["p99_rel_halfwidth"] <= 0.05


def test_precision_rule_stops_at_budget_and_says_so():
    fake = _Fake(np.tile([1.0, 3.0], 10))
    mc = run_replications(fake, Run(min_replications=2, max_replications=6, target_rel_halfwidth=0.01), 1)
    assert mc.replications == 6 and not mc.precision["met"]
    assert "not met" in mc.notes[0]


def test_fixed_replications():
    fake = _Fake(np.ones(10))
    mc = run_replications(fake, Run(replications=3), 1)
    assert mc.replications == 3 and mc.precision["rule"] == "fixed replications"


SC = Scenario(arrivals=Arrivals(rate=40.0), service=Service(mean_s=0.02), replicas=1,
              run=Run(requests=3000, replications=4))


def test_same_seed_same_result_json():
    a = simulate(SC, engine="simpy", seed=5).to_dict()
    b = simulate(SC, engine="simpy", seed=5).to_dict()
    a.pop("wall_seconds")
    b.pop("wall_seconds")
    assert a == b
    c = simulate(SC, engine="simpy", seed=6).to_dict()
    assert c["latency_ms"] != a["latency_ms"]


def test_more_replications_keep_the_earlier_ones():
    a = simulate(SC, engine="simpy", seed=5)
    b = simulate(replace(SC, run=replace(SC.run, replications=6)), engine="simpy", seed=5)
    assert a.warmup["deleted_per_replication"] == b.warmup["deleted_per_replication"][:4]


def test_result_fields_and_breakdown():
    r = simulate(SC, engine="simpy")
    assert r.stable and r.replications == 4 and r.requests_simulated == 12_000
    lo, hi = r.latency_ms_ci95["p99"]
    assert lo < r.latency_ms["p99"] < hi
    assert sum(r.breakdown_ms.values()) == pytest.approx(r.latency_ms["mean"], rel=1e-9)
    assert r.realtime_ratio == pytest.approx(r.breakdown_ms["service"] / r.latency_ms["mean"])
    assert r.utilization == pytest.approx(0.8, abs=0.05)
    assert r.drop_rate == 0.0 and r.cache_hit_ratio is None and r.mean_batch_size == 1.0
    assert r.precision["interval"].startswith("Student t")
