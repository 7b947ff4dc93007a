"""Mixed fleets: the recommended hardware with some replicas swapped for another kind (CPU + GPU + TPU).

A homogeneous fleet buys capacity in whole units of one kind; when the load needs, say, 1.3 GPUs, one
GPU plus a few cheap CPU replicas can meet the same SLO for less. Starting from the cheapest
homogeneous configuration (hardware A, n_A replicas, its batching and cache), each other hardware B
that meets the SLO on its own is tried as a second pool: n_A - k replicas of A (k = 1, 2) plus the
fewest replicas of B (its cheapest variant) that meet the SLO — searched only up to the count at which
the mix would no longer be cheaper than the homogeneous fleet.

Requests are routed join-shortest-queue across the two pools (A first, so ties go to it); batching and
the cache are those of the homogeneous recommendation. Pools run on the SimPy engine (the compiled
engine has one replica group), so this search is opt-in (``mixed=True``, ``--mixed``) and judged, like
everything else, on the upper end of the 95% CI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..scenario import Arrivals, Batching, Cache, Pool, Run, Scenario
from .catalog import ServiceSpec
from .screening import Screen, hit_ratio, service_model
from .search import Point, Settings, _materialize
from .space import Config, config_seed

__all__ = ["MixedTask", "search_mixed"]


@dataclass(frozen=True)
class MixedTask:
    """n_a replicas of ``config_a`` plus the fewest replicas of ``spec_b`` meeting the SLO, if cheaper."""

    spec_a: ServiceSpec
    config_a: Config
    n_a: int
    price_a: float
    spec_b: ServiceSpec
    price_b: float
    rate: float
    settings: Settings
    max_cost: float


def _capacity(spec: ServiceSpec, c: Config, settings: Settings, rate: float) -> tuple[float, float]:
    model = service_model(spec, c.batch_size)
    h = hit_ratio(c.cache_policy, c.cache_capacity, settings.zipf_alpha, settings.keys)
    scr = Screen(model, rate, settings.quantile, c.batch_size, c.batch_timeout_ms * 1e-3, h)
    return scr.per_replica_capacity, scr.miss_rate


def search_mixed(task: MixedTask) -> dict:
    """Fewest replicas of B next to ``n_a`` of A meeting the SLO, capped by cost; a dict for the report."""
    from ..simulate import simulate

    s, c = task.settings, task.config_a
    spec_a, spec_b = _materialize(task.spec_a), _materialize(task.spec_b)
    cap_a, miss_rate = _capacity(spec_a, c, s, task.rate)
    cap_b, _ = _capacity(spec_b, c, s, task.rate)
    budget = task.max_cost - task.n_a * task.price_a
    n_max = math.ceil(budget / task.price_b) - 1 if budget > 0 else 0  # strictly cheaper than max_cost
    n_max = min(n_max, s.max_replicas)
    n_lo = max(1, math.floor(max(0.0, miss_rate - task.n_a * cap_a) / cap_b) + 1)
    doc = {"base": {"hardware": c.hardware, "variant": c.variant, "replicas": task.n_a},
           "added": {"hardware": spec_b.hardware, "variant": spec_b.variant, "replicas": None},
           "batch_size": c.batch_size, "batch_timeout_ms": c.batch_timeout_ms, "cache": c.cache,
           "routing": "join-shortest-queue", "cost_per_hour": None, "p99_ms": None, "p99_ms_ci95": None,
           "meets_slo": False, "evaluations": 0, "judge": "simulation (simpy)"}
    if n_lo > n_max:
        doc["note"] = "cannot be cheaper: the replicas of the added hardware needed for stability cost too much"
        return doc
    seed = config_seed(s.seed, f"mixed:{c.hardware}:{c.variant}", f"{spec_b.hardware}:{spec_b.variant}")
    arrivals_t = s.arrivals

    def evaluate(n_b: int) -> Point:
        arrivals = replace(arrivals_t, rate=task.rate) if arrivals_t is not None else Arrivals(rate=task.rate)
        cache = Cache(policy=c.cache_policy, capacity=c.cache_capacity, zipf_alpha=s.zipf_alpha, keys=s.keys,
                      hit_latency_s=s.cache_hit_s) if c.cache else Cache()
        sc = Scenario(arrivals=arrivals, pools=(Pool(c.hardware, task.n_a, spec_a.service()),
                                                Pool(spec_b.hardware, n_b, spec_b.service())),
                      routing="join-shortest-queue", batching=Batching(c.batch_size, c.batch_timeout_ms * 1e-3),
                      cache=cache, run=Run(requests=s.requests, replications=s.replications, seed=seed))
        res = simulate(sc, engine="simpy", seed=seed)
        doc["evaluations"] += 1
        if not res.stable:
            return Point(n_b, task.rate, doc["judge"], False, False, verdict=res.verdict)
        p = res.latency_ms.get(s.quantile_key)
        ci = res.latency_ms_ci95.get(s.quantile_key) or [p, p]
        ok = ci[1] <= s.slo_s * 1e3 and not res.drop_rate
        return Point(n_b, task.rate, doc["judge"], True, ok, p, [float(ci[0]), float(ci[1])])

    hi_pt = evaluate(n_max)
    if not hi_pt.passes:
        doc["note"] = (f"{task.n_a} x {c.hardware} + {n_max} x {spec_b.hardware} (the most that is still cheaper) "
                       "misses the SLO")
        return doc
    lo, hi, best = n_lo - 1, n_max, hi_pt
    while hi - lo > 1:
        mid = (lo + hi) // 2
        pt = evaluate(mid)
        if pt.passes:
            hi, best = mid, pt
        else:
            lo = mid
    cost = task.n_a * task.price_a + hi * task.price_b
    doc["added"]["replicas"] = hi
    doc.update({"cost_per_hour": cost, "p99_ms": best.p99_ms, "p99_ms_ci95": best.p99_ms_ci95, "meets_slo": True})
    return doc
