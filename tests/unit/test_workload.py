"""Arrival processes have the rates and variability they are named for.

Tolerances: each check compares an estimate from n draws with its exact value; the tolerance is about
5 standard errors of the estimate (stated per test), so a correct generator fails with probability
< 1e-6 while a wrong rate or CV (off by a few percent) fails reliably.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.scenario import Arrivals
from simulator.workload import arrival_times, load_trace, zipf_keys, zipf_popularity


def gaps(a: Arrivals, n: int, seed: int = 1) -> np.ndarray:
    t = arrival_times(a, n, np.random.default_rng(seed))
    assert np.all(np.diff(t) >= 0)
    return np.diff(np.concatenate([[0.0], t]))


def test_poisson_rate_and_cv():
    g = gaps(Arrivals(rate=250.0), 400_000)
    # SE of the mean gap = (1/250)/sqrt(n) -> relative 0.16%; 5 SE = 0.8%.
    assert g.mean() == pytest.approx(1 / 250, rel=0.008)
    # CV of exponential gaps is 1; SE of the sample CV ~ 1/sqrt(n) relative; 1% is > 5 SE.
    assert g.std() / g.mean() == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("cv", [0.3, 2.0])
def test_gamma_renewal_rate_and_cv(cv):
    g = gaps(Arrivals(process="gamma", rate=100.0, cv=cv), 400_000)
    assert g.mean() == pytest.approx(0.01, rel=5 * cv / np.sqrt(400_000) + 1e-3)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.03)  # heavy tail at cv=2 widens the SE of the CV


def test_mmpp_long_run_rate_and_burstiness():
    a = Arrivals(process="mmpp", rate=100.0, burst_ratio=8.0, burst_fraction=0.1, burst_mean_s=2.0)
    t = arrival_times(a, 400_000, np.random.default_rng(3))
    rate = t.size / t[-1]
    # ~4000 s of simulated time with ~2000 bursts: the rate estimate's relative SE is ~2%; allow 8%.
    assert rate == pytest.approx(100.0, rel=0.08)
    counts = np.bincount(t.astype(int))[:-1]
    # Index of dispersion of counts in 1 s windows: 1 for Poisson, far above 1 for this MMPP.
    assert counts.var() / counts.mean() > 5


def test_diurnal_rate_follows_the_cycle():
    a = Arrivals(process="diurnal", rate=50.0, amplitude=0.8, period_s=100.0)
    t = arrival_times(a, 200_000, np.random.default_rng(4))
    phase = (t % 100.0) / 100.0
    peak = np.mean((phase > 0.2) & (phase < 0.3))    # around sin = 1
    trough = np.mean((phase > 0.7) & (phase < 0.8))  # around sin = -1
    # Expected ratio (1 + 0.8·0.98)/(1 − 0.8·0.98) ≈ 8.3 over these windows; > 6 is far from 1.
    assert peak / trough > 6
    assert t.size / t[-1] == pytest.approx(50.0, rel=0.02)


def test_trace_replay_and_validation(tmp_path):
    f = tmp_path / "trace.csv"
    f.write_text("timestamp_s,key\n10.0,3\n10.5,1\n11.0,3\n12.0,2\n")
    tr = load_trace(f)
    np.testing.assert_allclose(tr.times, [0, 0.5, 1.0, 2.0])
    assert list(tr.keys) == [3, 1, 3, 2]
    t = arrival_times(Arrivals(process="trace", trace=str(f)), 8, np.random.default_rng(0), trace=tr)
    assert np.all(np.diff(t) > 0) and t.size == 8
    bad = tmp_path / "bad.csv"
    bad.write_text("1.0\n0.5\n")
    with pytest.raises(InputError, match="non-decreasing"):
        load_trace(bad)
    bad.write_text("-1.0\n0.5\n")
    with pytest.raises(InputError, match=">= 0"):
        load_trace(bad)
    bad.write_text("1.0\nabc\n")
    with pytest.raises(InputError, match="line 2"):
        load_trace(bad)


def test_zipf_popularity_and_keys():
    p = zipf_popularity(1.0, 1000)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[0] / p[1] == pytest.approx(2.0)
    keys = zipf_keys(1.0, 1000, 500_000, np.random.default_rng(5))
    freq = np.bincount(keys, minlength=1000) / keys.size
    # Key 0 has p ≈ 0.1336; SE ≈ sqrt(p(1-p)/n) ≈ 4.8e-4; 5 SE ≈ 0.0025.
    assert freq[0] == pytest.approx(p[0], abs=0.0025)
    assert keys.min() >= 0 and keys.max() < 1000


@pytest.mark.parametrize("kw, message", [
    ({"rate": float("nan")}, "arrival_rate must be a finite number > 0"),
    ({"rate": -1.0}, "arrival_rate must be a finite number > 0"),
    ({"rate": 1.0, "process": "weibull"}, "arrival_process must be one of"),
    ({"rate": 1.0, "process": "mmpp", "burst_ratio": 0.5}, "burst_ratio must be a finite number > 1"),
    ({"rate": 1.0, "process": "diurnal", "amplitude": 1.0}, "amplitude must be in"),
    ({"process": "trace"}, "needs a trace file"),
    ({}, "arrival_rate is required"),
])
def test_bad_arrivals_refused(kw, message):
    with pytest.raises(InputError, match=message):
        Arrivals(**kw)
