"""Service models: the named distributions have their stated moments; profiles resample exactly."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.profiles import Profile
from simulator.service import ServiceModel, batch_time_line, concurrency_slowdown


@pytest.mark.parametrize("family, cv", [("exponential", 1.0), ("lognormal", 1.5), ("gamma", 0.5),
                                        ("deterministic", 0.0)])
def test_parametric_moments(family, cv):
    m = ServiceModel.parametric(0.004, cv, family)
    x = m.sample(np.random.default_rng(11), 200_000)
    # Relative SE of the mean = cv/sqrt(n) ≤ 0.34%; tolerance 2% ≫ 5 SE. The CV estimate of a
    # lognormal with cv 1.5 converges slowly (heavy tail), hence 8% on the CV.
    assert x.mean() == pytest.approx(0.004, rel=0.02)
    assert x.std() / x.mean() == pytest.approx(cv, rel=0.08, abs=1e-12)
    e1, e2, _ = m.raw_moments()
    assert e1 == pytest.approx(0.004)
    assert e2 == pytest.approx(0.004**2 * (1 + cv**2))


def test_parametric_batch_time_line():
    m = ServiceModel.parametric(0.0, 0.0, "deterministic", batch_time=(0.002, 0.0005), max_batch=8)
    assert m.mean(1) == pytest.approx(0.0025)
    assert m.mean(8) == pytest.approx(0.006)


def test_profile_resampling_is_exact_bootstrap(synthetic_profile):
    prof = Profile.load(synthetic_profile)
    m = ServiceModel.from_profile(prof, max_batch=8)
    x = m.sample(np.random.default_rng(2), 50_000, batch_size=2)
    # Every draw is one of the measured samples.
    assert np.isin(x, prof.samples(2)).all()
    assert m.mean(2) == pytest.approx(prof.samples(2).mean())
    # Unmeasured batch 4 borrows a neighbour's samples, rescaled to the mean interpolated between
    # batch 2 and batch 8; the note says so.
    expected = prof.mean(2) + (prof.mean(8) - prof.mean(2)) * (4 - 2) / (8 - 2)
    assert m.mean(4) == pytest.approx(expected, rel=1e-9)
    assert any("batch 4 not measured" in n for n in m.notes)


def test_concurrency_slowdown(synthetic_profile):
    prof = Profile.load(synthetic_profile)
    s = concurrency_slowdown(prof)
    ratio = prof.mean(1, 2) / prof.mean(1, 1)
    assert s[1] == 1.0
    assert s[2] == pytest.approx(ratio)
    assert s[4] == pytest.approx(1 + 3 * (ratio - 1))  # linear beyond the last measured level


@pytest.mark.parametrize("kw, message", [
    ({"mean_s": 0.01, "cv": 0.5, "family": "exponential"}, "service_cv must be 1"),
    ({"mean_s": 0.01, "cv": 0.5, "family": "deterministic"}, "service_cv must be 0"),
    ({"mean_s": 0.01, "cv": 0.0, "family": "gamma"}, "service_cv must be > 0"),
    ({"mean_s": -0.01, "cv": 1.0}, "service_time must be a finite number > 0"),
    ({"mean_s": 0.01, "cv": 1.0, "family": "pareto"}, "service_dist must be one of"),
    ({"mean_s": 0.01, "cv": 1.0, "max_batch": 4}, "needs batch_time"),
])
def test_bad_parametric_refused(kw, message):
    with pytest.raises(InputError, match=message):
        ServiceModel.parametric(**kw)


def test_batch_time_line_recovers_a_and_b():
    a, b = batch_time_line([1, 2, 4, 8, 16], [0.003 + 0.0007 * n for n in (1, 2, 4, 8, 16)])
    assert a == pytest.approx(0.003) and b == pytest.approx(0.0007)
