"""Service-time fits recover known parameters from synthetic data.

Tolerances: with n = 4000 samples the MLE's standard error is about sigma/sqrt(2n) ≈ 1.1% of sigma for
the lognormal and about 2% of the gamma shape at shape 4; we allow 5 standard errors' worth (6-10%), so a
correct fit fails with negligible probability while a wrong family or formula fails by far more.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.fitting import (
    BatchCurve,
    best_fit,
    fit_batch_curve,
    fit_distribution,
    fit_profile_batch_curve,
)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def test_lognormal_parameters_recovered(rng):
    mu, sigma = math.log(0.004), 0.3
    x = rng.lognormal(mu, sigma, 4000)
    fit = fit_distribution(x, "lognormal")
    assert fit.params["sigma"] == pytest.approx(sigma, rel=0.06)
    assert fit.params["mu"] == pytest.approx(mu, abs=0.03)  # SE = sigma/sqrt(n) = 0.005
    assert fit.ks_statistic < 0.03  # KS critical value at 1%: 1.63/sqrt(4000) = 0.026
    assert best_fit(x)[0].family in ("lognormal", "gamma")  # at CV 0.3 the two are close; exponential is not


def test_gamma_parameters_recovered(rng):
    shape, scale = 4.0, 0.0025
    x = rng.gamma(shape, scale, 4000)
    fit = fit_distribution(x, "gamma")
    assert fit.params["shape"] == pytest.approx(shape, rel=0.1)
    assert fit.mean == pytest.approx(shape * scale, rel=0.02)  # SE of the mean: 0.5/sqrt(4000) = 0.8%


def test_shifted_exponential_recovered_and_chosen(rng):
    x = 0.003 + rng.exponential(0.001, 4000)
    fit = fit_distribution(x, "shifted_exponential")
    assert fit.params["shift"] == pytest.approx(0.003, abs=2e-6)  # min of 4000: bias ≈ scale/n = 2.5e-7
    assert fit.params["scale"] == pytest.approx(0.001, rel=0.06)  # SE 1/sqrt(4000) = 1.6%
    best, fits = best_fit(x)
    assert best.family == "shifted_exponential"
    assert [f.ks_statistic for f in fits] == sorted(f.ks_statistic for f in fits)


def test_goodness_of_fit_distinguishes_families(rng):
    x = rng.lognormal(0.0, 1.0, 3000)  # heavy right tail
    lognormal = fit_distribution(x, "lognormal")
    exponential = fit_distribution(x, "shifted_exponential")
    assert lognormal.ks_statistic < exponential.ks_statistic
    assert lognormal.ad_statistic < exponential.ad_statistic


def test_fit_sample_draws_match_fit(rng):
    fit = fit_distribution(rng.gamma(3.0, 1.0, 2000), "gamma")
    draws = fit.sample(20000, np.random.default_rng(1))
    assert draws.mean() == pytest.approx(fit.mean, rel=0.03)


@pytest.mark.parametrize("bad, match", [
    ([0.1, float("nan"), 0.2], "finite"), ([0.1, -0.2, 0.3], "> 0"), ([0.1], "at least 3"),
    ([0.1, 0.1, 0.1], "all equal")])
def test_fit_refuses_bad_samples(bad, match):
    with pytest.raises(InputError, match=match):
        fit_distribution(bad, "gamma")


def test_unknown_family_lists_known():
    with pytest.raises(InputError, match="lognormal, gamma, shifted_exponential"):
        fit_distribution([1, 2, 3], "weibull")


def test_batch_curve_recovers_a_b(rng):
    # Means of 200 noisy samples per batch size around a + b n; SE of each mean ~ 0.05*t/sqrt(200) = 0.35%.
    a, b = 0.004, 0.0015
    sizes = [1, 2, 4, 8, 16, 32]
    means = [rng.normal(a + b * n, 0.05 * (a + b * n), 200).mean() for n in sizes]
    curve = fit_batch_curve(sizes, means)
    assert curve.a == pytest.approx(a, rel=0.1)
    assert curve.b == pytest.approx(b, rel=0.02)
    assert curve.r2 > 0.999
    assert curve.predict(12) == pytest.approx(a + 12 * b, rel=0.02)
    np.testing.assert_allclose(curve.predict([3, 5]), [a + 3 * b, a + 5 * b], rtol=0.02)
    assert curve.to_tuple() == (curve.a, curve.b)


def test_batch_curve_exact_on_exact_line():
    curve = fit_batch_curve([1, 2, 4], [0.003, 0.005, 0.009])
    assert (curve.a, curve.b) == pytest.approx((0.001, 0.002))
    assert curve.r2 == pytest.approx(1.0)


def test_batch_curve_r2_low_for_non_linear_data():
    sizes = [1, 2, 4, 8, 16]
    curve = fit_batch_curve(sizes, [0.01 * (1 + (n == 4) * 5) for n in sizes])
    assert curve.r2 < 0.5


@pytest.mark.parametrize("sizes, times, match", [
    ([1, 1], [0.1, 0.2], "2 distinct"), ([1, 2], [0.1, float("nan")], "mean_times"),
    ([0, 2], [0.1, 0.2], "batch_sizes"), ([1, 2, 3], [0.1, 0.2], "equal-length")])
def test_batch_curve_refuses_bad_input(sizes, times, match):
    with pytest.raises(InputError, match=match):
        fit_batch_curve(sizes, times)


def test_predict_refuses_bad_batch():
    with pytest.raises(InputError, match="batch size"):
        BatchCurve(0.001, 0.001, 1.0, (1, 2)).predict(0)


def test_profile_batch_curve(synthetic_profile):
    from simulator.profiles import Profile

    profile = Profile.load(synthetic_profile)
    curve = fit_profile_batch_curve(profile)
    # The fixture draws gamma(4, scale) means 10, 14, 34 ms at batch 1, 2, 8 (a + b n with a=6, b=3.5 ms
    # fits 9.5, 13, 34): sampling error of each mean is 0.5/sqrt(800) = 1.8%.
    assert curve.b == pytest.approx(0.0035, rel=0.1)
    assert curve.r2 > 0.95
