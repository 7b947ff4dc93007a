"""Service times in measured order: the block bootstrap keeps the values and their autocorrelation, and
``simulate(..., service_order=...)`` is ``simulate`` in every other respect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.ordered import ServiceOrder, block_length
from simulator.profiles import Profile
from simulator.scenario import Arrivals, Run, Scenario, Service
from simulator.service import ServiceModel
from simulator.simulate import simulate
from tests.conftest import make_profile_dict


def _ar1(n: int, phi: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = np.zeros(n)
    for i in range(1, n):
        z[i] = phi * z[i - 1] + rng.normal()
    return 0.002 * np.exp(0.2 * z)  # positive, correlated service times (s)


def test_levels_reproduce_the_measured_series_through_the_service_model():
    series = _ar1(500, 0.8)
    order = ServiceOrder.from_series(series, block=500)
    prof = Profile.from_dict(make_profile_dict({1: series}))
    model = ServiceModel.from_profile(prof)
    values = np.array([model.emp_values[int(u * model.emp_len[1])] for u in order.levels])
    np.testing.assert_allclose(values, series)


def test_block_bootstrap_keeps_marginals_and_short_range_correlation():
    series = _ar1(4000, 0.8)
    order = ServiceOrder.from_series(series)
    draws = order.draw(np.random.default_rng(1), 40_000)
    assert draws.shape == (40_000,)
    assert np.all((draws > 0) & (draws < 1))
    x = draws - draws.mean()
    lag1 = float(np.dot(x[:-1], x[1:]) / np.dot(x, x))
    assert lag1 > 0.6  # AR(1) with phi = 0.8; i.i.d. resampling would give ~0
    iid = ServiceOrder.from_series(np.random.default_rng(2).permutation(series))
    assert iid.block == 10  # no significant autocorrelation: the minimum block


def test_block_length_grows_with_correlation_and_is_bounded():
    assert block_length(_ar1(3000, 0.95)) > block_length(_ar1(3000, 0.3))
    assert block_length(_ar1(60, 0.99)) <= 20


def test_levels_must_be_in_the_unit_interval():
    with pytest.raises(ValueError):
        ServiceOrder(np.array([0.0, 0.5]), 2)


def test_correlated_services_queue_more_than_independent_ones(tmp_path):
    series = _ar1(3000, 0.95)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(make_profile_dict({1: series})))
    sc = Scenario(arrivals=Arrivals(rate=0.7 / series.mean()), service=Service(profile=str(path), contention="none"),
                  run=Run(requests=20_000, replications=3, warmup="none"))
    corr = simulate(sc, seed=3, service_order=ServiceOrder.from_series(series))
    shuffled = simulate(sc, seed=3,
                        service_order=ServiceOrder.from_series(np.random.default_rng(4).permutation(series)))
    assert corr.stable and shuffled.stable
    assert corr.latency_ms["p99"] > 1.2 * shuffled.latency_ms["p99"]
    assert corr.utilization == pytest.approx(0.7, rel=0.1)


@pytest.mark.parametrize("engine", ["fast", "simpy"])
def test_an_ordered_prediction_keeps_the_profiles_client_overhead(tmp_path, engine):
    # Regression: the ordered path once ran the engines itself and dropped the constant delays simulate
    # adds (a profile's under-load client overhead), so every ordered prediction was low by it. Same seed,
    # same order: every latency must move by exactly the overhead (floating-point tolerance).
    series = _ar1(2000, 0.8)
    plain = make_profile_dict({1: series})
    loaded = dict(plain, schema_version="1.1", under_load={"client_overhead_s": 0.0004})
    paths = []
    for name, doc in (("plain.json", plain), ("loaded.json", loaded)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(doc))
    order = ServiceOrder.from_series(series)
    a, b = (simulate(Scenario(arrivals=Arrivals(rate=0.6 / series.mean()),
                              service=Service(profile=str(p), contention="none"),
                              run=Run(requests=5000, replications=3, warmup="none")),
                     engine=engine, seed=2, service_order=order) for p in paths)
    assert a.engine == b.engine == engine
    for key, value in a.latency_ms.items():
        assert b.latency_ms[key] == pytest.approx(value + 0.4, rel=1e-9), key


def test_a_service_order_needs_a_simulated_profile_model(tmp_path):
    series = _ar1(500, 0.5)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(make_profile_dict({1: series})))
    order = ServiceOrder.from_series(series)
    with pytest.raises(InputError, match="no closed form covers this scenario: service times in measured order"):
        simulate(Scenario(arrivals=Arrivals(rate=100.0), service=Service(profile=str(path))), engine="analytic",
                 service_order=order)
    with pytest.raises(InputError, match="empirical"):
        simulate(Scenario(arrivals=Arrivals(rate=100.0), service=Service(mean_s=0.002)), service_order=order)
