"""Calibrated profiles: service times under load become a profile the simulator reads."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.profiles import Profile
from simulator.service import ServiceModel
from simulator.validate.calibration import LoadPoint, calibrated_profile
from tests.conftest import make_profile_dict


@pytest.fixture
def base() -> Profile:
    rng = np.random.default_rng(5)
    return Profile.from_dict(make_profile_dict({1: rng.gamma(4.0, 0.0005, 500), 4: rng.gamma(4.0, 0.001, 500)},
                                               concurrency={2: rng.gamma(4.0, 0.0008, 500)}))


def _point(rate: float, mean_1: float, mean_2: float, overhead: float = 0.0003) -> LoadPoint:
    rng = np.random.default_rng(int(rate))
    groups = {(1, 1): rng.gamma(4.0, mean_1 / 4, 400), (1, 2): rng.gamma(4.0, mean_2 / 4, 400)}
    return LoadPoint(rate, 2, rate * 0.002 / 2, groups, overhead)


def test_profile_reproduces_the_measured_means_and_slowdown(base):
    pt = _point(500.0, 0.0025, 0.0035)
    prof, overhead = calibrated_profile(base, [pt], 500.0)
    assert overhead == 0.0003
    assert prof.method["path"] == "serving-under-load"
    model = ServiceModel.from_profile(prof)
    g1, g2 = pt.groups[(1, 1)], pt.groups[(1, 2)]
    assert model.mean(1) == pytest.approx(np.concatenate([g1, g2 / (g2.mean() / g1.mean())]).mean())
    assert model.slowdown[2] == pytest.approx(g2.mean() / g1.mean(), rel=1e-6)
    # batch size 4 was not seen under load: the isolated samples, scaled by the under-load ratio of batch 1
    ratio = prof.mean(1, 1) / base.mean(1, 1)
    assert prof.mean(4, 1) == pytest.approx(base.mean(4, 1) * ratio, rel=1e-6)
    assert prof.point(4, 1).extra["origin"].startswith("isolated profile")


def test_mean_interpolates_between_calibration_loads(base):
    lo, hi = _point(300.0, 0.0020, 0.0030), _point(600.0, 0.0030, 0.0045)
    mid, _ = calibrated_profile(base, [lo, hi], 450.0)
    assert mid.mean(1, 1) == pytest.approx((lo.mean() + hi.mean()) / 2, rel=1e-6)
    beyond, _ = calibrated_profile(base, [lo, hi], 900.0)  # flat beyond the measured range
    assert beyond.mean(1, 1) == pytest.approx(hi.mean(), rel=1e-6)
    assert mid.method["calibration"]["arrival_rate"] in (300.0, 600.0)
