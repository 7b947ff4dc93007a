"""Analytic screening of a configuration: bounds on the replica count from closed forms, in microseconds.

For a configuration (service model, batching, cache) at arrival rate λ:

* the cache thins the arrivals the model sees to λ(1 - h), with h the Che (LRU) / Martina (FIFO) /
  exact (perfect LFU) hit ratio of the Zipf popularity; hits answer at the hit latency, so the p-quantile
  of all latencies is the ((p - h)/(1 - h))-quantile of the misses' latency when p > h;
* the **lower bound** on replicas is stability: a replica cannot serve more than max_n n / E[S(n)]
  requests/s (n ≤ max batch), so fewer than ``floor(λ(1-h) · min_n E[S(n)]/n) + 1`` replicas are
  unstable whatever else happens — a proof, not an estimate;
* the latency **estimate** without batching is Erlang C (M/M/c: exact for exponential service and
  Poisson arrivals without a cache) or Allen–Cunneen G/G/c with the profile's mean and SCV; with
  batching it is the better of two approximations: no batch ever forms (batch-1 G/G/c plus the timeout)
  and every batch is full (G/G/c of batches arriving at λ/B with SCV c_a²/B, service E[S(B)], plus the
  timeout). The estimate only *guides* the search (the upper end of the replica bracket); where it is
  not exact the simulation decides;
* a profile measured under load (:mod:`simulator.under_load`) scales the service times by its factor at
  the per-replica miss rate (and by the mean of its warm-up factors after idle at that rate) and adds its
  client-side overhead to every latency, as ``simulate`` does; the lower bound then assumes the smallest
  factor, so that it stays a proof.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..analytic.cache import cache_hit_ratio, zipf
from ..analytic.ggc import ggc
from ..analytic.mmc import mmc
from ..errors import UnstableSystemError
from ..profiles import Profile, load_profile_cached
from ..service import ServiceModel
from ..under_load import UnderLoad, scale_model
from .catalog import ServiceSpec

__all__ = ["Screen", "hit_ratio", "service_model", "under_load"]


@lru_cache(maxsize=64)
def hit_ratio(policy: str | None, capacity: int, alpha: float, keys: int) -> float:
    """Analytic steady-state hit ratio of a cache under Zipf(alpha) popularity over ``keys`` keys."""
    if policy is None or capacity <= 0:
        return 0.0
    return float(cache_hit_ratio(policy, capacity, zipf(alpha, keys)))


_MODELS: dict[tuple, ServiceModel] = {}


def service_model(spec: ServiceSpec, max_batch: int) -> ServiceModel:
    """The service-time law of a spec for batches up to ``max_batch`` (cached per process)."""
    key = (spec.key(), spec.profile_path, max_batch)
    model = _MODELS.get(key)
    if model is None:
        if spec.profile_path is not None:
            model = ServiceModel.from_profile(Profile.load(spec.profile_path), max_batch=max_batch)
        else:
            model = ServiceModel.parametric(spec.mean_s, spec.cv if spec.cv is not None else 1.0, spec.dist,
                                            batch_time=spec.batch_time_s, max_batch=max_batch)
        model = model.with_slowdown(np.ones(2))  # replicas are separate instances: no shared-host slow-down
        model = scale_model(model, spec.host_level, f"the host level {spec.host_level:g} (plan --host-margin)")
        if len(_MODELS) > 256:
            _MODELS.clear()
        _MODELS[key] = model
    return model


def under_load(spec: ServiceSpec) -> UnderLoad | None:
    """The ``under_load`` block of the spec's profile (None for parametric specs and isolated profiles)."""
    if spec.profile_path is None:
        return None
    return load_profile_cached(spec.profile_path).under_load


@dataclass
class Screen:
    """Closed-form view of one configuration at one arrival rate (seconds, requests/s).

    Parameters
    ----------
    model : ServiceModel
        Service law of one replica, batches up to ``batch_size``.
    rate : float
        Offered arrival rate λ (requests/s).
    quantile : float
        The SLO percentile as a fraction (0.99).
    batch_size, timeout_s : int, float
        Dynamic batching (1 = none).
    hit : float
        Cache hit ratio h.
    hit_latency_s : float
        Latency of a hit (s).
    arrival_scv : float
        SCV of the inter-arrival times (1 for Poisson).
    exact_mmc : bool
        The configuration is exactly M/M/c (exponential service, Poisson arrivals, no batching, no cache).
    under : UnderLoad or None
        What the profile measured under load: service-time factors by per-replica rate, client overhead.
    """

    model: ServiceModel
    rate: float
    quantile: float
    batch_size: int = 1
    timeout_s: float = 0.0
    hit: float = 0.0
    hit_latency_s: float = 0.0
    arrival_scv: float = 1.0
    exact_mmc: bool = False
    under: UnderLoad | None = None

    def factor(self, replicas: int) -> float:
        """Mean service-time multiplier at this load on ``replicas`` replicas (1 for an isolated profile):
        the profile's load factor, times its mean warm-up factor after idle."""
        if self.under is None:
            return 1.0
        per_replica = self.miss_rate / replicas
        f = self.under.factor(per_replica)
        return f * self.under.warm_mean_factor(per_replica, self.model.mean(1) * f)

    def overhead_s(self, replicas: int) -> float:
        """The profile's client-side overhead at the SLO percentile on ``replicas`` replicas (its
        ``client_overhead_by_load`` where given, else the constant; 0 without an under-load block)."""
        if self.under is None:
            return 0.0
        return self.under.overhead_at(self.miss_rate / replicas if replicas else None, self.quantile)

    @property
    def miss_rate(self) -> float:
        return self.rate * (1.0 - self.hit)

    @property
    def per_replica_capacity(self) -> float:
        """Most requests/s one replica can serve (full batches of the most efficient size)."""
        n = np.arange(1, self.batch_size + 1)
        fastest = self.under.min_factor if self.under is not None else 1.0
        return float(np.max(n / (self.model.means[1:self.batch_size + 1] * fastest)))

    @property
    def min_replicas(self) -> int:
        """Fewest replicas that are stable (ρ < 1): a proven lower bound."""
        if self.miss_rate <= 0:
            return 1
        return max(1, math.floor(self.miss_rate / self.per_replica_capacity) + 1)

    def capacity(self, replicas: int) -> float:
        """Arrival rate at which ``replicas`` replicas become unstable (requests/s, before the cache)."""
        cap = replicas * self.per_replica_capacity
        return cap / (1.0 - self.hit) if self.hit < 1 else math.inf

    @property
    def miss_quantile(self) -> float | None:
        """Quantile of the misses' latency that is the overall quantile; None when hits alone reach it."""
        if self.quantile <= self.hit:
            return None
        return (self.quantile - self.hit) / (1.0 - self.hit)

    def p99(self, replicas: int) -> float:
        """Estimated SLO-percentile latency (s) with ``replicas`` replicas; inf when unstable."""
        q = self.miss_quantile
        if q is None or self.miss_rate <= 0:
            return self.hit_latency_s + self.overhead_s(replicas)
        if replicas < self.min_replicas:
            return math.inf
        f = self.factor(replicas)
        m1 = self.model.mean(1) * f
        est = self._queue(self.miss_rate, replicas, m1, self.model.scv(1), self.arrival_scv, q) + self.timeout_s
        if self.batch_size > 1:
            b = self.batch_size
            full = self._queue(self.miss_rate / b, replicas, self.model.mean(b) * f, self.model.scv(b),
                               self.arrival_scv / b, q) + self.timeout_s
            est = min(est, full)
        return max(est, self.hit_latency_s) + self.overhead_s(replicas)

    def _queue(self, lam: float, c: int, mean: float, scv: float, ca2: float, q: float) -> float:
        if lam * mean / c >= 1.0:
            return math.inf
        try:
            if self.exact_mmc:
                return mmc(lam, 1.0 / mean, c).sojourn_quantile(q)
            return ggc(lam, c, mean, scv, ca2).sojourn_quantile(q)
        except UnstableSystemError:
            return math.inf

    def replicas_for(self, slo_s: float, max_replicas: int, margin: float = 1.0) -> int | None:
        """Fewest replicas (≤ max_replicas) whose estimate is ≤ margin·slo; None if none is.

        The estimate decreases with the replica count, so doubling then bisection finds it in
        O(log max_replicas) evaluations.
        """
        target = margin * slo_s
        lo = self.min_replicas
        if lo > max_replicas:
            return None
        if self.p99(lo) <= target:
            return lo
        hi = lo
        while True:
            hi = min(max_replicas, hi * 2)
            if self.p99(hi) <= target:
                break
            if hi == max_replicas:
                return None
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.p99(mid) <= target:
                hi = mid
            else:
                lo = mid
        return hi
