"""The streaming latency sketch keeps its stated relative-error bound."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fast.sketch import NBUCKETS, RELATIVE_ERROR, LatencySketch

QS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999)


def test_stated_bound_is_below_half_a_percent():
    assert RELATIVE_ERROR == 2.0**-8
    assert RELATIVE_ERROR < 0.005


@pytest.mark.parametrize("draw", [
    lambda r, n: r.lognormal(np.log(0.02), 1.2, n),        # latency-like, several decades
    lambda r, n: r.exponential(0.005, n),
    lambda r, n: 1e-6 + r.pareto(1.5, n) * 1e-3,           # heavy tail
    lambda r, n: r.uniform(0.0099, 0.0101, n),             # narrow: many values per bucket
])
def test_quantiles_within_relative_error_of_exact(draw):
    x = draw(np.random.default_rng(42), 10**6)
    sk = LatencySketch()
    sk.add(x)
    assert sk.count == x.size
    exact = np.quantile(x, QS, method="lower")  # the order statistic the sketch estimates
    est = np.array([sk.quantile(q) for q in QS])
    assert np.all(np.abs(est - exact) <= RELATIVE_ERROR * exact * (1 + 1e-12))
    # against numpy's default (interpolated) quantile the bound holds up to the gap between neighbours
    interp = np.quantile(x, QS)
    assert np.all(np.abs(est / interp - 1) <= 0.01)
    # interpolation inside the bucket is far better than the guarantee on smooth data
    assert np.median(np.abs(est / exact - 1)) < RELATIVE_ERROR / 4
    assert sk.quantile(0.0) == x.min()
    assert sk.quantile(1.0) == x.max()


def test_merge_is_exact_and_nan_is_ignored():
    r = np.random.default_rng(1)
    a, b = r.exponential(1.0, 1000), r.exponential(2.0, 3000)
    s1, s2, s3 = LatencySketch(), LatencySketch(), LatencySketch()
    s1.add(a)
    s2.add(np.concatenate([b, [np.nan, np.nan]]))
    s3.add(np.concatenate([a, b]))
    m = s1.merge(s2)
    np.testing.assert_array_equal(m.counts, s3.counts)
    assert m.count == 4000 and m.min == s3.min and m.max == s3.max


def test_estimates_move_with_the_data_inside_a_bucket():
    """Two samples whose median differs by far less than a bucket width get different estimates."""
    x = np.random.default_rng(3).uniform(1.0, 1.001, 10001)
    a, b = LatencySketch(), LatencySketch()
    a.add(x)
    b.add(x * (1 + 1e-4))
    assert a.quantile(0.5) != b.quantile(0.5)
    assert b.quantile(0.5) / a.quantile(0.5) - 1 == pytest.approx(1e-4, rel=0.5)


def test_zero_and_out_of_range_values_are_clamped_to_the_exact_extremes():
    sk = LatencySketch()
    sk.add(np.array([0.0, 0.0, 0.0, 1e-13, 5.0, 1e13]))
    assert sk.counts[0] == 4 and sk.counts[NBUCKETS - 1] == 1
    assert sk.quantile(0.5) == 0.0
    assert sk.quantile(1.0) == 1e13
    assert np.isnan(LatencySketch().quantile(0.5))
