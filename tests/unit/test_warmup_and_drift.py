"""Warm-up after idle (``under_load.idle_factors``) and host drift (``under_load.environment``).

Warm-up: checked against Welch's M/G/1 with exceptional first service (closed form), against the planner
screen's mean factor (exact for one replica under Poisson arrivals), and the live calibration's fit
against the table that generated synthetic server records. Host drift: a one-factor environment is an
exact rescaling (M/M/1 closed form), the engines agree request by request (tests/unit/test_fast_engine.py
CASES), and the fit recovers the drift that generated synthetic records.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulator.errors import ProfileError
from simulator.ordered import is_ordered
from simulator.planner.screening import Screen
from simulator.profiles import Profile
from simulator.scenario import Arrivals, Run, Scenario, Service
from simulator.service import ServiceModel, warmup_factor
from simulator.simulate import make_service_model, simulate
from simulator.under_load import parse_under_load
from simulator.validate.calibration import (
    calibrated_profile,
    drift_by_scale,
    fit_environment,
    fit_warmup,
    load_point,
    refit_point,
    under_load_profile,
)
from simulator.validate.server import ServerRecords
from tests.conftest import make_profile_dict

TABLE = ((0.001, 0.004, 0.016), (1.05, 1.25, 1.6))


def _profile(tmp_path, samples: np.ndarray, idle: tuple, factors: tuple, name: str = "p.json") -> str:
    doc = make_profile_dict({1: samples})
    doc["schema_version"] = "1.1"
    doc["under_load"] = {"idle_factors": [{"idle_s": x, "factor": f} for x, f in zip(idle, factors)]}
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_factor_is_one_at_zero_linear_through_the_table_and_flat_beyond():
    xs, fs = np.asarray(TABLE[0]), np.asarray(TABLE[1])
    assert warmup_factor(xs, fs, 0.0) == 1.0
    assert warmup_factor(xs, fs, -1.0) == 1.0
    assert warmup_factor(xs, fs, 0.0005) == pytest.approx(1.025)
    assert warmup_factor(xs, fs, 0.0025) == pytest.approx(1.15)
    assert warmup_factor(xs, fs, 0.016) == pytest.approx(1.6)
    assert warmup_factor(xs, fs, 5.0) == pytest.approx(1.6)
    assert warmup_factor(np.zeros(0), np.zeros(0), 1.0) == 1.0


_OVH = {"per_replica_rate": 100.0, "mean": 0.0002, "p50": 0.0001, "p90": 0.0003, "p95": 0.0003, "p99": 0.0004, "p999": 0.0005}


@pytest.mark.parametrize(("block", "field"), [
    ({"idle_factors": [{"idle_s": 0.0, "factor": 1.2}]}, r"idle_factors\[0\].idle_s"),
    ({"idle_factors": [{"idle_s": 0.001, "factor": -1.0}]}, r"idle_factors\[0\].factor"),
    ({"idle_factors": [{"idle_s": 0.002, "factor": 1.0}, {"idle_s": 0.001, "factor": 1.1}]}, "increasing idle_s"),
    ({"idle_factors": [{"idle": 0.002, "factor": 1.0}]}, r"idle_factors\[0\] must be"),
    ({"idle_factors": {"idle_s": 0.002}}, "idle_factors must be a list"),
    ({"environment": {"window_s": 0.0, "factors": [1.0]}}, "environment.window_s"),
    ({"environment": {"window_s": 0.1, "factors": []}}, "environment.factors must be a non-empty list"),
    ({"environment": {"window_s": 0.1, "factors": [1.0, -2.0]}}, r"environment.factors\[1\]"),
    ({"environment": {"window": 0.1, "factors": [1.0]}}, "environment must be"),
    ({"service_order": {"block": 0}}, "service_order must be"),
    ({"service_order": {"block": 2.5}}, "service_order must be"),
    ({"service_order": {"block": True}}, "service_order must be"),
    ({"service_order": 10}, "service_order must be"),
    ({"service_order": {"block": 10, "levels": []}}, "service_order must be"),
    ({"service_order": {"block": 10}, "environment": {"window_s": 0.1, "factors": [1.0]}}, "give one of them"),
    ({"host_level": {"sd": 1.2, "run_s": 20.0, "runs": 9}}, "host_level.sd must be a relative sd below 1"),
    ({"host_level": {"sd": -0.01, "run_s": 20.0, "runs": 9}}, "host_level.sd must be a finite number >= 0"),
    ({"host_level": {"sd": 0.02, "run_s": 0.0, "runs": 9}}, "host_level.run_s must be a finite number > 0"),
    ({"host_level": {"sd": 0.02, "run_s": 20.0, "runs": 1}}, "host_level.runs must be an integer >= 2"),
    ({"host_level": {"sd": 0.02, "run_s": 20.0}}, "host_level must be"),
    ({"host_level": 0.02}, "host_level must be"),
    ({"client_overhead_by_load": []}, "client_overhead_by_load must be a non-empty list"),
    ({"client_overhead_by_load": [{"per_replica_rate": 100.0, "mean": 0.0002}]}, r"client_overhead_by_load\[0\] must have"),
    ({"client_overhead_by_load": [_OVH | {"p99": -1.0}]}, r"client_overhead_by_load\[0\].p99"),
    ({"client_overhead_by_load": [_OVH | {"per_replica_rate": 0.0}]}, r"client_overhead_by_load\[0\].per_replica_rate"),
    ({"client_overhead_by_load": [_OVH, _OVH]}, "increasing per_replica_rate"),
])
def test_bad_warmup_or_drift_block_is_refused_naming_the_field(block, field):
    doc = make_profile_dict({1: np.full(40, 0.002)})
    doc["schema_version"] = "1.1"
    doc["under_load"] = block
    with pytest.raises(ProfileError, match=field):
        Profile.from_dict(doc)


def test_simulate_reads_the_table_from_the_profile(tmp_path):
    path = _profile(tmp_path, np.full(50, 0.002), *TABLE)
    model = make_service_model(Scenario(arrivals=Arrivals(rate=100.0), service=Service(profile=path)))
    assert model.has_warmup and model.warmup(0.004) == pytest.approx(1.25)
    assert parse_under_load({"idle_factors": []}, "t").idle_s == ()


@pytest.mark.parametrize("engine", ["fast", "simpy"])
def test_welch_exceptional_first_service(tmp_path, engine):
    """M/G/1 where the request that finds the server idle takes f times longer (Welch 1964): with
    P0 = (1-ρ)/(1-ρ+λfm) the fraction of arrivals finding it idle, the mean wait is
    λ(P0·E[S0²] + (1-P0)·E[S²]) / (2(1-ρ)), ρ = λ·E[S]. A table whose first point is at 1 ns makes
    w = f for any idle time an exponential gap gives. Tolerance 2 %: the 95 % interval of the simulated
    mean is about ±0.7 % with these run lengths, and the resampled profile's own moments are used."""
    rng = np.random.default_rng(3)
    samples = rng.exponential(0.004, 20_000)
    f = 1.8
    path = _profile(tmp_path, samples, (1e-9,), (f,))
    lam = 150.0
    m, m2 = samples.mean(), np.mean(samples**2)
    rho = lam * m
    p0 = (1 - rho) / (1 - rho + lam * f * m)
    wait = lam * (p0 * f**2 * m2 + (1 - p0) * m2) / (2 * (1 - rho))
    sojourn = wait + p0 * f * m + (1 - p0) * m
    requests = 400_000 if engine == "fast" else 100_000
    sc = Scenario(arrivals=Arrivals(rate=lam), service=Service(profile=path),
                  run=Run(requests=requests, replications=4, seed=9))
    res = simulate(sc, engine=engine)
    assert res.analytic is None  # no closed form is claimed for a model with warm-up
    assert res.latency_ms["mean"] == pytest.approx(sojourn * 1e3, rel=0.02)
    # and the server is busier than the warm model alone says: λ(P0·f·m + (1-P0)·m) = 1 - P0
    assert res.utilization == pytest.approx(1 - p0, rel=0.02)


def test_screen_mean_factor_matches_simulation_for_one_replica(tmp_path):
    """For M/G/1 the screen's fixed point is exact in the mean: an arrival finds the server idle with
    probability 1-ρ (PASTA) after an Exp(λ) idle period. Tolerance 2 %, as above."""
    rng = np.random.default_rng(4)
    samples = rng.gamma(4.0, 0.001, 20_000)
    path = _profile(tmp_path, samples, *TABLE)
    prof = Profile.load(path)
    for lam in (60.0, 180.0):
        res = simulate(Scenario(arrivals=Arrivals(rate=lam), service=Service(profile=path),
                                run=Run(requests=200_000, replications=4, seed=2)), engine="fast")
        screen = Screen(ServiceModel.from_profile(prof), lam, 0.99, under=prof.under_load)
        assert lam * samples.mean() * screen.factor(1) == pytest.approx(res.utilization, rel=0.02)
    # heavy load: almost nothing finds the replica idle, so the factor tends to 1
    heavy = Screen(ServiceModel.from_profile(prof), 245.0, 0.99, under=prof.under_load)
    assert 1.0 < heavy.factor(1) < 1.02


def _server_records(table, n=30_000, rate=200.0, seed=0) -> ServerRecords:
    """One worker under Poisson arrivals whose service is gamma(mean 2 ms) × w(idle)."""
    rng = np.random.default_rng(seed)
    xs, fs = np.asarray(table[0]), np.asarray(table[1])
    enq = np.cumsum(rng.exponential(1 / rate, n))
    base = rng.gamma(16.0, 0.002 / 16, n)
    started, done = np.empty(n), np.empty(n)
    free = -np.inf
    for i in range(n):
        idle = enq[i] - free if np.isfinite(free) else 1.0
        s = base[i] * warmup_factor(xs, fs, idle)
        started[i] = max(enq[i], free)
        done[i] = started[i] + s
        free = done[i]
    ones = np.ones(n, dtype=np.int64)
    return ServerRecords(enq, started, done, done, ones, ones, np.zeros(n, dtype=np.int64))


def test_calibration_recovers_the_table_and_deflates_the_samples():
    """Bins are a few hundred requests each: a bin's mean ratio has a standard error of ~1.5 % (cv 0.25
    over ≥ 300 samples), and the table is evaluated at bin medians where w is linear or flat, so 4 %."""
    r = _server_records(TABLE)
    point = load_point(r, float(r.sojourn_s.mean()), 200.0, 1, 0.4)
    xs, fs = point.warmup
    assert len(xs) >= 5
    true = [warmup_factor(np.asarray(TABLE[0]), np.asarray(TABLE[1]), x) for x in xs]
    np.testing.assert_allclose(fs, true, rtol=0.04)
    # the profile's samples are back to back again (mean 2 ms), the table rides in its under_load block
    base = Profile.from_dict(make_profile_dict({1: np.full(50, 0.002)}))
    prof, _ = calibrated_profile(base, [point], 200.0)
    assert prof.mean(1, 1) == pytest.approx(0.002, rel=0.02)
    assert prof.under_load.idle_s == xs and prof.under_load.idle_factors == fs


def test_no_table_without_enough_back_to_back_batches():
    """A load so light that fewer than 30 requests ever waited says nothing about back-to-back service."""
    r = _server_records(TABLE, n=400, rate=20.0)
    assert fit_warmup([load_point(r, float(r.sojourn_s.mean()), 20.0, 1, 0.04)]) == ((), ())


@pytest.mark.parametrize("engine", ["fast", "simpy"])
def test_one_factor_environment_is_an_exact_rescaling(tmp_path, engine):
    """Every window at factor 1.5: M/M/1 with mean service 1.5·m, mean sojourn 1.5m/(1-1.5λm). 2 %, as
    for Welch's test (the resampled exponential's own mean is used)."""
    rng = np.random.default_rng(6)
    samples = rng.exponential(0.004, 20_000)
    doc = make_profile_dict({1: samples})
    doc["schema_version"] = "1.1"
    doc["under_load"] = {"environment": {"window_s": 0.05, "factors": [1.5]}}
    path = tmp_path / "env.json"
    path.write_text(json.dumps(doc))
    lam, m = 100.0, 1.5 * samples.mean()
    res = simulate(Scenario(arrivals=Arrivals(rate=lam), service=Service(profile=str(path)),
                            run=Run(requests=400_000 if engine == "fast" else 100_000, replications=4, seed=3)),
                   engine=engine)
    assert res.latency_ms["mean"] == pytest.approx(m / (1 - lam * m) * 1e3, rel=0.02)
    assert res.analytic is None


def test_drift_builds_queues_that_independent_service_times_do_not(tmp_path):
    """Windows 1.6x slow or 0.4x fast, mean 1: the p99 more than doubles (a slow stretch at ρ_local =
    0.96 queues). The busy fraction does not rise: requests queued in a slow window that start in a fast
    one are served fast (the factor goes by start time), so it even drops a little."""
    rng = np.random.default_rng(8)
    samples = rng.gamma(4.0, 0.001, 5_000)
    plain = _profile(tmp_path, samples, (), (), "plain.json")
    doc = json.loads(open(plain).read())
    doc["under_load"] = {"environment": {"window_s": 0.2, "factors": [0.4, 1.6]}}
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps(doc))
    run = Run(requests=200_000, replications=4, seed=1)
    a = simulate(Scenario(arrivals=Arrivals(rate=150.0), service=Service(profile=plain), run=run), engine="fast")
    b = simulate(Scenario(arrivals=Arrivals(rate=150.0), service=Service(profile=str(drift)), run=run),
                 engine="fast")
    assert 0.85 * a.utilization < b.utilization <= a.utilization * 1.01
    assert b.latency_ms["p99"] > 2 * a.latency_ms["p99"]


def _drifting_records(n=20_000, rate=150.0, window=0.25, seed=1, levels=(0.8, 1.2)) -> tuple[ServerRecords, np.ndarray]:
    """One worker, no warm-up, service gamma(2 ms, cv 0.25) × a drift of 0.8 or 1.2 per 0.25-s window
    (``levels=(1.0,)``: independent service times)."""
    rng = np.random.default_rng(seed)
    enq = np.cumsum(rng.exponential(1 / rate, n))
    drift = rng.choice(levels, size=int(enq[-1] / window) + 200)
    base = rng.gamma(16.0, 0.002 / 16, n)
    started, done = np.empty(n), np.empty(n)
    free = 0.0
    for i in range(n):
        started[i] = max(enq[i], free)
        done[i] = started[i] + base[i] * drift[int(started[i] / window)]
        free = done[i]
    ones = np.ones(n, dtype=np.int64)
    return ServerRecords(enq, started, done, done, ones, ones, np.zeros(n, dtype=np.int64)), drift


def test_fit_recovers_the_drift_and_divides_it_out():
    """Windows hold ~37 batches: a window's mean ratio has sampling noise ~0.25/√37 ≈ 4 %, small against
    the ±20 % drift, so the factors split into two clusters at 0.8 and 1.2 (±10 %) and their sd is
    0.2 within 15 %; the deflated samples keep the base's cv (0.25) within 15 %."""
    r, _ = _drifting_records()
    point = load_point(r, float(r.sojourn_s.mean()), 150.0, 1, 0.3)
    window, factors = point.environment
    f = np.asarray(factors)
    assert window == 0.25 and f.size > 100
    assert f.mean() == pytest.approx(1.0, abs=1e-5)  # factors are rounded to 5 decimals
    assert f.std() == pytest.approx(0.2, rel=0.15)
    assert np.mean(np.abs(f - 0.8) < 0.1) + np.mean(np.abs(f - 1.2) < 0.1) > 0.9
    base = Profile.from_dict(make_profile_dict({1: np.full(50, 0.002)}))
    plain = under_load_profile(base, [point], drift=False)
    drifted = under_load_profile(base, [point])
    assert plain.under_load.env_factors == () and drifted.under_load.env_factors == factors
    cv = lambda p: np.std(p.samples(1, 1)) / np.mean(p.samples(1, 1))  # noqa: E731
    assert cv(drifted) == pytest.approx(0.25, rel=0.15)
    assert cv(plain) > cv(drifted) * 1.2  # without the fit the drift stays in the samples
    env, rows = fit_environment(point, 0.5)
    assert env[0] == 0.5 and rows.size == len(point.rows)


def test_drift_by_scale_tells_slow_stretches_from_independent_windows():
    """±20 % drift (sd 0.2) drawn per 0.25-s window averages out over longer windows as √(0.25 / w):
    sd 0.05 at 4 s (33 windows in the run: the sample sd is within ~25 % at 2 sd, so 35 % is allowed);
    drawn per 4-s window it stays at 0.2 over 4 s (within 20 %), four times what independent windows
    would give. Independent service times show none at any scale (sd < 0.02: the noise is taken out)."""
    fast_records, _ = _drifting_records()
    slow_records, _ = _drifting_records(window=4.0)
    fast, slow = (drift_by_scale(load_point(r, float(r.sojourn_s.mean()), 150.0, 1, 0.3))
                  for r in (fast_records, slow_records))
    assert fast[0.25] == pytest.approx(0.2, rel=0.15) and slow[0.25] == pytest.approx(0.2, rel=0.15)
    assert fast[4.0] == pytest.approx(0.2 * math.sqrt(0.25 / 4.0), rel=0.35)
    assert slow[4.0] == pytest.approx(0.2, rel=0.2)
    plain, _ = _drifting_records(seed=5, levels=(1.0,))
    quiet = drift_by_scale(load_point(plain, float(plain.sojourn_s.mean()), 150.0, 1, 0.3))
    assert all(v is not None and v < 0.02 for v in quiet.values()), quiet
    # a run too short for a scale says nothing about it
    short = drift_by_scale(load_point(plain, float(plain.sojourn_s.mean()), 150.0, 1, 0.3), (0.25, 1000.0))
    assert short[1000.0] is None


def test_independent_service_times_show_no_drift():
    """Window means of independent service times differ by sampling noise alone (~4 % here); the fit
    subtracts that variance, so the factors stay within 2 % of 1 (sd) instead of looking like drift."""
    r, _ = _drifting_records(seed=2, levels=(1.0,))
    _, factors = load_point(r, float(r.sojourn_s.mean()), 150.0, 1, 0.3).environment
    assert len(factors) > 100 and np.std(factors) < 0.02


def test_capacity_bound_allows_for_drift():
    """Saturated, a replica under drift serves at the harmonic mean of the factors: the screen's lower
    bound on replicas must assume it (a proof), and a long simulation must not beat it."""
    u = parse_under_load({"environment": {"window_s": 0.1, "factors": [0.5, 1.5]}}, "t")
    assert u.min_factor == pytest.approx(1 / np.mean([2.0, 1 / 1.5]))  # 0.75
    # overloaded behind a queue limit, the replica's throughput is its capacity: above 1/m (mean factor
    # 1), within the bound 1/(0.75 m) (tolerance 3 %: ~2,000 windows of 0.1 s, each fast or slow)
    from simulator import fast
    from simulator.variates import draw_variates, replication_seeds, streams

    m = 0.01
    model = ServiceModel.parametric(m, 0.0, "deterministic").with_environment(0.1, [0.5, 1.5])
    sc = Scenario(arrivals=Arrivals(rate=3 / m), service=Service(mean_s=m, dist="deterministic", cv=0.0),
                  queue_limit=20)
    v = draw_variates(sc, model, 60_000, streams(replication_seeds(4, 1)[0]))
    out = fast.run_replication(sc, model, v)
    throughput = np.count_nonzero(~out.dropped) / out.end_time
    assert 1.2 / m < throughput <= 1.03 / (u.min_factor * m)


def _two_worker_records(shared: bool, n=30_000, rate=300.0, window=0.25, seed=4) -> ServerRecords:
    """Two FCFS workers (the longest idle takes an arrival), service gamma(2 ms, cv 0.25) × a drift of 0.8
    or 1.2 per 0.25-s window: one drift for both workers (``shared``) or each worker its own."""
    rng = np.random.default_rng(seed)
    enq = np.cumsum(rng.exponential(1 / rate, n))
    windows = int(enq[-1] / window) + 200
    drift = rng.choice([0.8, 1.2], size=(2, windows))
    if shared:
        drift[1] = drift[0]
    base = rng.gamma(16.0, 0.002 / 16, n)
    started, done = np.empty(n), np.empty(n)
    worker, busy = np.empty(n, np.int64), np.empty(n, np.int64)
    free = [0.0, 0.0]
    for i in range(n):
        w = 0 if free[0] <= free[1] else 1
        started[i] = max(enq[i], free[w])
        done[i] = free[w] = started[i] + base[i] * drift[w, int(started[i] / window)]
        worker[i], busy[i] = w, 1 + int(free[1 - w] > started[i])
    return ServerRecords(enq, started, done, done, np.ones(n, dtype=np.int64), busy, worker)


@pytest.mark.parametrize(("shared", "sd"), [(True, 0.2), (False, 0.0)])
def test_with_two_workers_only_the_drift_they_share_is_host_drift(shared, sd):
    """The engines apply a window's factor to every replica at once, so it may carry only the drift the
    workers share. The same ±20 % per window for both workers: factors sd 0.2 within 15 % (as for one
    worker). Each worker its own ±20 %: the pooled window means still vary by 0.2/√2 = 0.14, but the
    workers' means do not covary, so the factors stay within 0.03 (sd) of 1: the drift is left in the
    samples, drawn independently."""
    r = _two_worker_records(shared)
    _, factors = load_point(r, float(r.sojourn_s.mean()), 300.0, 2, 0.3).environment
    assert len(factors) > 100
    if shared:
        assert np.std(factors) == pytest.approx(sd, rel=0.15)
    else:
        assert np.std(factors) < 0.03


def test_drift_is_not_taken_for_warm_up():
    """Slow stretches of 4 s (service × 0.7 or × 1.3) and no warm-up at all. Queues, so back-to-back
    batches, gather in the slow stretches and idle workers in the fast ones: against the run's overall
    back-to-back mean the idle batches read ~0.76 (an anti-warm-up that the engines then applied).
    Against the back-to-back batches nearest in start order they read 1: every bin within 8 % (a bin's
    standard error is ~1.5 %; the longest idle times fall deep in fast stretches, whose nearest
    back-to-back batches may lie across a change of level)."""
    r, _ = _drifting_records(rate=330.0, window=4.0, levels=(0.7, 1.3))
    xs, fs = load_point(r, float(r.sojourn_s.mean()), 330.0, 1, 0.7).warmup
    assert len(xs) >= 5
    np.testing.assert_allclose(fs, 1.0, atol=0.08)


def test_an_ordered_under_load_profile_keeps_the_runs_in_measured_order(tmp_path):
    """Two runs with 4-s slow stretches: the profile's samples are both runs' service times one after the
    other in their measured order, drawn in blocks as long as the runs' autocorrelation asks for, with no
    drift windows; simulate reads the order from the file."""
    points = []
    for seed in (1, 2):
        r, _ = _drifting_records(rate=330.0, window=4.0, levels=(0.7, 1.3), seed=seed)
        points.append(load_point(r, float(r.sojourn_s.mean()), 330.0, 1, 0.7))
    base = Profile.from_dict(make_profile_dict({1: np.full(50, 0.002)}))
    prof = under_load_profile(base, points, ordered=True)
    under = prof.under_load
    assert under.env_factors == () and under.order_block > 100
    # each run with the pooled warm-up table and its drift left in (no windows: the order carries it),
    # scaled to the load line's mean (both runs at one rate: the mean of their means)
    table = fit_warmup(points)
    series = [refit_point(p, table).without_drift().series() for p in points]
    level = np.mean([x.mean() for x in series])
    expected = np.concatenate([x * (level / x.mean()) for x in series])
    np.testing.assert_allclose(prof.samples(1, 1), expected, rtol=1e-5)  # stored to the nanosecond
    path = tmp_path / "ordered.json"
    prof.save(path)
    model = make_service_model(Scenario(arrivals=Arrivals(rate=330.0), service=Service(profile=str(path))))
    assert is_ordered(model) and model.order.block == under.order_block
    assert any("measured order" in note for note in model.notes)
    # the same samples drawn independently build far shorter queues
    doc = json.loads(path.read_text())
    del doc["under_load"]["service_order"]
    shuffled = tmp_path / "independent.json"
    shuffled.write_text(json.dumps(doc))
    run = Run(requests=20_000, replications=4, warmup="none", seed=3)
    a, b = (simulate(Scenario(arrivals=Arrivals(rate=330.0), service=Service(profile=str(p)), run=run))
            for p in (path, shuffled))
    # 4 × 20,000 requests are ~33 blocks of ~7 s (~1.8 stretches of ±30 % each): their mean level has a
    # standard error of ~3.5 %, so the load agrees within 2 se
    assert a.utilization == pytest.approx(b.utilization, rel=0.07)
    assert a.latency_ms["p99"] > 1.3 * b.latency_ms["p99"]
