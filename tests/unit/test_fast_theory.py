"""The fast engine against exact queueing theory (statistical checks with stated criteria).

Each check runs R independent replications (10^6 requests in all, 10 % warm-up deleted from each) and
asks that the exact value lie in the 99 % Student-t interval of the replication means; if it does not,
the check is repeated once on fresh seeds before failing (a correct engine fails both with probability
1e-4). Exact values: M/M/1 sojourn 1/(μ − λ); M/M/c and M/M/c/K from :mod:`simulator.analytic`.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from simulator import analytic, fast
from simulator.scenario import Arrivals, Scenario, Service
from simulator.service import ServiceModel
from simulator.variates import replication_seeds

R, N = 8, 125_000


def _interval(values, level=0.99):
    v = np.asarray(values)
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return v.mean() - half, v.mean() + half


def _check(scenario, model, exact, get):
    for seed in (101, 202):
        res = fast.run_replications(scenario, model, replication_seeds(seed, R), N, streaming=True,
                                    warmup_fraction=0.1)
        lo, hi = _interval([get(r) for r in res])
        if lo <= exact <= hi:
            return
    pytest.fail(f"exact {exact} outside the 99 % interval [{lo}, {hi}] twice")


def test_mm1_mean_sojourn():
    lam, mu = 0.8, 1.0
    sc = Scenario(arrivals=Arrivals(rate=lam), service=Service(mean_s=1 / mu))
    model = ServiceModel.parametric(1 / mu)
    _check(sc, model, 1 / (mu - lam), lambda r: r.latency_mean)
    assert analytic.mm1(lam, mu).sojourn_mean == pytest.approx(1 / (mu - lam))


def test_mmc_mean_wait():
    lam, mu, c = 7.2, 1.0, 8
    sc = Scenario(arrivals=Arrivals(rate=lam), service=Service(mean_s=1 / mu), replicas=c)
    _check(sc, ServiceModel.parametric(1 / mu), analytic.mmc(lam, mu, c).wait_mean,
           lambda r: r.breakdown["queueing_wait"])


def test_mmck_blocking_probability():
    lam, mu, c, k = 3.5, 1.0, 3, 2
    sc = Scenario(arrivals=Arrivals(rate=lam), service=Service(mean_s=1 / mu), replicas=c, queue_limit=k)
    exact = analytic.mmck(lam, mu, c, c + k).blocking_probability
    _check(sc, ServiceModel.parametric(1 / mu), exact, lambda r: r.dropped / (r.dropped + r.completed))

