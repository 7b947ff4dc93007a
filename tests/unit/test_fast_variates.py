"""The variates both engines consume, as the fast paths draw them: the same numbers however they are cut.

Arrival times are bit for bit those of :func:`simulator.workload.arrival_times`; service variates come
from :class:`simulator.service.VariateStream`, whose pieces concatenate to one draw; lognormal services
use normals by Marsaglia's polar method (:class:`simulator.service.NormalStream`), checked here against
the normal law. Statistical tolerances are about 5 standard errors (fixed seeds: a regression guard
that a correct generator passes with probability > 1 - 1e-6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simulator.scenario import Arrivals
from simulator.service import DISTRIBUTIONS, NormalStream, ServiceModel, VariateStream, draw_unit_variates
from simulator.variates import ZipfKeys, _inverse_cdf, draw_arrival_times
from simulator.workload import arrival_times, zipf_keys

SIZES = [1, 7, 3000, 17, 2**15, 2, 3, 40000 - 1 - 7 - 3000 - 17 - 2**15 - 2 - 3]


@pytest.mark.parametrize("arrivals", [Arrivals(rate=50.0), Arrivals(process="gamma", rate=50.0, cv=3.0),
                                      Arrivals(process="mmpp", rate=50.0, burst_mean_s=0.5),
                                      Arrivals(process="diurnal", rate=50.0, amplitude=0.5, period_s=10.0)])
def test_arrival_times_are_those_of_the_workload_module(arrivals):
    want = arrival_times(arrivals, 5000, np.random.default_rng(4))
    np.testing.assert_array_equal(draw_arrival_times(arrivals, 5000, np.random.default_rng(4)), want)
    buf = np.empty(5000)
    got = draw_arrival_times(arrivals, 5000, np.random.default_rng(4), out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, want)


def _models():
    yield ServiceModel.parametric(0.01, 1.0, "exponential")
    yield ServiceModel.parametric(0.01, 0.0, "deterministic")
    yield ServiceModel.parametric(0.01, 1.5, "lognormal")
    yield ServiceModel.parametric(0.01, 0.5, "gamma")
    samples = np.sort(np.random.default_rng(0).gamma(2.0, 0.005, 50))
    yield ServiceModel(0, "empirical", float("nan"), np.array([0.0, samples.mean()]), samples,
                       np.array([0, 0]), np.array([0, 50]), np.ones(2), np.ones(2))


@pytest.mark.parametrize("model", list(_models()), ids=lambda m: m.family)
def test_variate_stream_pieces_are_one_draw(model):
    n = sum(SIZES)
    one = model.draw(np.random.default_rng(9), n)
    stream = VariateStream(model, np.random.default_rng(9))
    np.testing.assert_array_equal(np.concatenate([stream.next(k) for k in SIZES]), one)
    stream = VariateStream(model, np.random.default_rng(9))
    buf = np.full(n, np.nan)
    pos = 0
    for k in SIZES:  # into slices of one buffer, as the streaming engine draws
        assert stream.next(k, out=buf[pos:pos + k]) is not None
        pos += k
    np.testing.assert_array_equal(buf, one)
    np.testing.assert_array_equal(model.draw(np.random.default_rng(9), n, out=np.empty(n)), one)


@pytest.mark.parametrize("family,cv", [("exponential", 1.0), ("lognormal", 1.5), ("gamma", 0.5),
                                       ("deterministic", 0.0)])
def test_unit_variates_have_mean_one_and_the_cv(family, cv):
    assert family in DISTRIBUTIONS
    n = 400_000
    z = draw_unit_variates(np.random.default_rng(11), family, cv, n)
    assert z.dtype == np.float64 and z.shape == (n,) and np.all(z >= 0)
    # mean: SE = cv/sqrt(n) (0.24 % at cv 1.5); the sample cv converges slowly for the lognormal
    assert z.mean() == pytest.approx(1.0, abs=5 * cv / math.sqrt(n) + 1e-12)
    assert z.std() == pytest.approx(cv, rel=0.05, abs=1e-12)


def test_polar_normals_follow_the_normal_law():
    n = 1_000_000
    z = NormalStream(np.random.default_rng(2024)).next(n)
    assert stats.kstest(z, "norm").pvalue > 1e-6
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert z.var() == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert abs(np.mean(z**3)) < 5 * math.sqrt(15 / n)
    assert np.mean(z**4) == pytest.approx(3.0, abs=5 * math.sqrt(96 / n))
    for c in (2.0, 3.0, 4.0):  # both tails, with the binomial standard error of the count
        p = 2 * stats.norm.sf(c)
        assert abs(np.mean(np.abs(z) > c) - p) < 5 * math.sqrt(p / n)
    # the two normals of a point are independent, and so are successive points
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 5 / math.sqrt(n / 2)
    assert abs(np.corrcoef(z[1:-1:2], z[2::2])[0, 1]) < 5 / math.sqrt(n / 2)


def test_normal_stream_scales_and_shifts():
    z = NormalStream(np.random.default_rng(5)).next(1000)
    w = NormalStream(np.random.default_rng(5), scale=0.5, shift=-2.0).next(1000)
    np.testing.assert_allclose(w, -2.0 + 0.5 * z, rtol=0, atol=1e-15)
    assert NormalStream(np.random.default_rng(5)).next(0).size == 0


def test_lognormal_services_are_exp_of_the_scaled_normals():
    cv = 1.5
    s2 = math.log1p(cv * cv)
    z = NormalStream(np.random.default_rng(6)).next(2000)
    ln = draw_unit_variates(np.random.default_rng(6), "lognormal", cv, 2000)
    np.testing.assert_allclose(ln, np.exp(-s2 / 2 + math.sqrt(s2) * z), rtol=1e-15)


@pytest.mark.parametrize("alpha,n_keys", [(0.9, 1000), (0.0, 7), (1.2, 1), (2.5, 100_000), (0.5, 3),
                                          (0.99, 1_100_000)])
def test_zipf_keys_are_those_of_the_workload_module(alpha, n_keys):
    z = ZipfKeys(alpha, n_keys)
    np.testing.assert_array_equal(z.draw(np.random.default_rng(3), 100_000),
                                  zipf_keys(alpha, n_keys, 100_000, np.random.default_rng(3)))
    # uniforms on and next to every bucket edge and every cdf value: the same index as searchsorted
    edges = np.arange(z.guide.size) / z.guide.size
    u = np.concatenate([edges, z.cdf] + [np.nextafter(x, t) for x in (edges, z.cdf) for t in (0.0, 2.0)])
    u = u[(u >= 0.0) & (u < 1.0)]
    np.testing.assert_array_equal(_inverse_cdf(z.cdf, z.guide, u, np.empty(u.size, np.int64)),
                                  np.searchsorted(z.cdf, u, side="right"))
