"""Calibrated profiles: service times under load become a profile the simulator reads."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.profiles import Profile
from simulator.service import ServiceModel
from simulator.validate.calibration import LoadPoint, calibrated_profile, host_level, levels_against
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


def _level_run(rate: float, level: float, seed: int, n: int = 3000) -> LoadPoint:
    """One worker, every batch back to back: gamma service (cv 0.5) of mean 2 ms + 2 µs per req/s, times
    the host's ``level`` for the whole run."""
    rng = np.random.default_rng(seed)
    s = rng.gamma(4.0, (0.002 + 2e-6 * rate) * level / 4, n)
    start = np.cumsum(s)
    rows = [(1, 1, float(x), 0.0, float(t)) for x, t in zip(s, start)]
    return LoadPoint(rate, 1, 0.5, {(1, 1): s}, 0.0, rows=rows)


def test_host_level_is_the_runs_spread_over_the_load_line_beyond_their_noise():
    """12 runs at three loads with levels drawn with sd 6 %: a run's mean carries ~0.9 % of sampling noise
    (cv 0.5 over 3000 samples), which the estimate takes out, so it is the levels' own sd (with the line's
    two parameters, n/(n − 2)) within 15 %. Without levels there is nothing beyond the noise; a run 40 %
    slow is an episode, set aside and listed."""
    rng = np.random.default_rng(0)
    levels = np.exp(rng.normal(0.0, 0.06, 12))
    rates = np.repeat([100.0, 200.0, 300.0], 4)
    points = [_level_run(r, v, seed=i) for i, (r, v) in enumerate(zip(rates, levels))]
    got = host_level(points)
    truth = np.std(np.asarray(levels_against(points, points)), ddof=2)  # what the line leaves of the levels
    assert got["sd"] == pytest.approx(truth, rel=0.15)
    assert 0.03 < got["sd"] < 0.1 and got["episodes"] == []
    flat = host_level([_level_run(r, 1.0, seed=i) for i, r in enumerate(rates)])
    assert flat["sd"] is None or flat["sd"] < 0.01
    with_episode = host_level(points + [_level_run(200.0, 1.4 * levels.mean(), seed=99)])
    assert len(with_episode["episodes"]) == 1 and with_episode["episodes"][0] > 0.3
    assert with_episode["sd"] == pytest.approx(got["sd"], rel=0.2)
    assert host_level(points[:3])["sd"] is None  # fewer than 4 runs say nothing


def test_a_measured_run_is_placed_against_the_calibration_line():
    """Calibration runs on the line exactly (levels 1); a run 5 % slow at a load between them reads +5 %
    within its sampling noise (0.9 % sd: 2 %)."""
    calibration = [_level_run(r, 1.0, seed=i, n=20_000) for i, r in enumerate((100.0, 200.0, 300.0))]
    slow, on_line = _level_run(150.0, 1.05, seed=7), _level_run(250.0, 1.0, seed=8)
    a, b = levels_against(calibration, [slow, on_line])
    assert a == pytest.approx(0.05, abs=0.02) and b == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize("ordered", [False, True])
def test_the_under_load_profile_says_how_much_the_host_moved(base, ordered):
    """The profile that simulate and plan read carries the calibration runs' host level (sd beyond their
    noise, their length, how many), which is what simulate's band and plan's margin use; three runs say
    nothing and the block is left out."""
    from simulator.validate.calibration import under_load_profile

    rng = np.random.default_rng(0)
    levels = np.exp(rng.normal(0.0, 0.06, 12))
    rates = np.repeat([100.0, 200.0, 300.0], 4)
    points = [_level_run(r, v, seed=i) for i, (r, v) in enumerate(zip(rates, levels))]
    under = under_load_profile(base, points, ordered=ordered).under_load
    assert under.host_level_sd == host_level(points)["sd"] > 0.03
    assert under.host_level_runs == 12
    assert under.host_level_run_s == pytest.approx(np.median([p.duration_s for p in points]), abs=1e-3)
    assert 5.0 < under.host_level_run_s < 8.0  # 3000 services of ~2.4 ms
    assert under_load_profile(base, points[:3], ordered=ordered).under_load.host_level_run_s == 0.0
