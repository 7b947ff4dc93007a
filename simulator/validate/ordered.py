"""Service times in their measured order: a block bootstrap that keeps their autocorrelation.

Under load on a shared CPU, service times are not independent: a slow stretch (the load generator's
thread, the response path and the replicas competing for the cores, the host's other tenants) slows many
consecutive requests, and such a stretch builds a queue that i.i.d. resampling never builds. Measured
lag-1 autocorrelations of effective service times on the 2-core validation host are 0.2-0.6.

The simulator's empirical service model maps each request's uniform variate ``u`` to the
``floor(u·n)``-th of the n sorted samples. So the *order* of service times can be carried entirely by the
variates: the i-th measured service (in start order) has rank ``r_i`` among the samples, and the variate
``(r_i + 0.5)/n`` reproduces it exactly. :class:`ServiceOrder` keeps those levels and draws variates by a
circular block bootstrap of them (blocks of consecutive levels from random starts), which keeps the
correlation within a block and the marginal distribution exactly. Engines are unchanged; only the
service variates differ.

Proposed wiring (for the simulator's owner): ``simulate(scenario, ..., service_order=None)`` and
``draw_variates`` using ``service_order.draw`` for the service stream; a profile point may carry its
samples in measured order (``samples_s`` are stored in completion order already) with ``"ordered": true``.
Until then :func:`simulate_ordered` runs the engines through their public entry points.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields

import numpy as np

from ..montecarlo import run_replications, summarize
from ..result import LATENCY_KEYS, PERCENTILES, Result
from ..scenario import Scenario
from ..service import EMPIRICAL, ServiceModel
from ..validation import check_integer
from ..variates import draw_variates, streams

__all__ = ["ServiceOrder", "block_length", "simulate_ordered"]


def block_length(series: np.ndarray, minimum: int = 10) -> int:
    """Block length of the bootstrap: twice the first lag at which the autocorrelation of ``series`` is no
    longer significant (|acf| < 2/√n), at least ``minimum``, at most a third of the series."""
    x = np.asarray(series, dtype=float)
    n = x.size
    if n < 3 * minimum:
        return max(1, n // 3)
    x = x - x.mean()
    denom = float(np.dot(x, x))
    if denom == 0:
        return minimum
    bound = 2.0 / math.sqrt(n)
    lag = 1
    while lag < n // 3:
        if abs(float(np.dot(x[:-lag], x[lag:])) / denom) < bound:
            break
        lag += 1
    return int(min(max(2 * lag, minimum), n // 3))


@dataclass(frozen=True)
class ServiceOrder:
    """Quantile levels of measured service times in start order, and the bootstrap block length.

    Parameters
    ----------
    levels : ndarray
        ``(rank + 0.5) / n`` of each measured service time among the samples it is drawn from.
    block : int
        Consecutive levels per bootstrap block.
    """

    levels: np.ndarray
    block: int

    def __post_init__(self) -> None:
        lv = np.asarray(self.levels, dtype=float)
        if lv.ndim != 1 or lv.size == 0 or np.any((lv <= 0) | (lv >= 1)):
            raise ValueError("levels must be a non-empty 1-d array in (0, 1)")
        object.__setattr__(self, "levels", lv)
        check_integer("block", self.block, minimum=1)

    @classmethod
    def from_series(cls, series: np.ndarray, block: int | None = None) -> ServiceOrder:
        """Levels of ``series`` (service times in start order) among its own values."""
        x = np.asarray(series, dtype=float)
        ranks = np.empty(x.size, dtype=float)
        ranks[np.argsort(x, kind="stable")] = np.arange(x.size)
        return cls((ranks + 0.5) / x.size, block if block is not None else block_length(x))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n variates: circular blocks of ``block`` consecutive levels from uniformly random starts."""
        m = self.levels.size
        blocks = -(-n // self.block)
        starts = rng.integers(0, m, size=blocks)
        idx = (starts[:, None] + np.arange(self.block)[None, :]) % m
        return self.levels[idx.ravel()[:n]]


@dataclass(frozen=True)
class _OrderedModel(ServiceModel):
    """A service model whose variates come from a :class:`ServiceOrder` (engines read the same arrays)."""

    order: ServiceOrder | None = None

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.order.draw(rng, n)


def simulate_ordered(scenario: Scenario, order: ServiceOrder, seed: int = 0, engine: str = "auto") -> Result:
    """Simulate ``scenario`` with service variates from ``order`` (latencies, utilization, stability).

    Same engines, streams and warm-up rule as :func:`simulator.simulate`; the Result carries the latency
    statistics with their 95 % intervals, throughput and utilization (no analytic reference).
    """
    from ..simulate import make_service_model, stability

    base = make_service_model(scenario)
    if base.mode != EMPIRICAL:
        raise ValueError("a service order needs an empirical (profile) service model")
    model = _OrderedModel(**{f.name: getattr(base, f.name) for f in fields(ServiceModel)}, order=order)
    st = stability(scenario, model)
    name = _engine(scenario, engine)
    if not st.stable:
        return Result.unstable(name, st.arrival_rate, st.utilization, st.offered_load,
                               f"offered load at or above capacity (rho = {st.utilization:.4g})", seed=seed)
    run = scenario.run

    def replicate(seed_seq):
        rngs = streams(seed_seq)
        variates = draw_variates(scenario, model, run.requests, rngs)
        if name == "fast":
            from ..fast import run_replication
            out = run_replication(scenario, model, variates)
        else:
            from ..des import run_replication
            out = run_replication(scenario, model, variates, rngs)
        return summarize(out, run)

    t0 = time.perf_counter()
    mc = run_replications(replicate, run, seed)
    wall = time.perf_counter() - t0
    getters = {"mean": lambda s: s.latency_mean}
    getters.update({k: (lambda s, q=q: s.quantiles[q]) for k, q in PERCENTILES.items()})
    latency, ci = {}, {}
    for key in LATENCY_KEYS:
        mean, lo, hi = mc.estimate(getters[key])
        latency[key] = mean * 1e3
        ci[key] = [lo * 1e3, hi * 1e3] if math.isfinite(lo) else None
    return Result(engine=name, arrival_rate=st.arrival_rate, requests_simulated=run.requests * mc.replications,
                  replications=mc.replications, wall_seconds=wall, latency_ms=latency, latency_ms_ci95=ci,
                  throughput_rps=mc.estimate(lambda s: s.throughput)[0],
                  utilization=mc.estimate(lambda s: s.utilization)[0], cache_hit_ratio=None,
                  drop_rate=mc.estimate(lambda s: s.dropped / (s.completed + s.dropped))[0],
                  mean_batch_size=mc.estimate(lambda s: s.batch_size_mean)[0], stable=True,
                  offered_load=st.offered_load, seed=seed,
                  notes=[f"service variates: circular block bootstrap of {order.levels.size} measured "
                         f"service times in start order, blocks of {order.block}", *base.notes])


def _engine(scenario: Scenario, engine: str) -> str:
    """``fast`` when asked or when ``auto`` and the compiled engine supports the scenario, else ``simpy``."""
    if engine == "simpy":
        return "simpy"
    try:
        from .. import fast
    except ImportError:
        return "simpy"
    supported = getattr(fast, "supports", lambda s: "unknown")(scenario) is None
    return "fast" if supported else "simpy"
