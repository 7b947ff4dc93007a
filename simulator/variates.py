"""Random streams and the pre-drawn variates every engine consumes.

Seeding: ``SeedSequence(seed).spawn(max_replications)`` gives one child per replication, so adding
replications later never changes the earlier ones; each replication's child spawns one stream per
random source (``STREAMS``), so changing, say, the cache never shifts the arrival times (common random
numbers across candidate configurations).

Variates are drawn per *request* (not per dispatch): request i always has the same arrival time, key
and service variate, whatever the number of replicas, batching or cache. A batch uses the variate of
its oldest request. That is what makes the engines agree request by request and what makes paired
comparisons (one replica more, cache on/off) exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenario import Scenario
from .service import ServiceModel
from .workload import Trace, arrival_times, zipf_keys

STREAMS = ("arrivals", "keys", "service", "routing", "stages", "forks", "abandon")

__all__ = ["STREAMS", "Variates", "draw_variates", "replication_seeds", "streams"]


def replication_seeds(seed: int, count: int) -> list[np.random.SeedSequence]:
    """One independent SeedSequence per replication, a deterministic prefix for any ``count``."""
    return np.random.SeedSequence(seed).spawn(count)


def streams(seed_seq: np.random.SeedSequence) -> dict[str, np.random.Generator]:
    """One Generator per random source of a replication (fresh each call, same state each call)."""
    children = np.random.SeedSequence(seed_seq.entropy, spawn_key=seed_seq.spawn_key).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


@dataclass
class Variates:
    """Per-request random inputs of one replication.

    Attributes
    ----------
    arrival_times : ndarray of float64, shape (n,)
        Absolute arrival times (s), non-decreasing.
    keys : ndarray of int64, shape (n,), or None
        Cache keys (None when there is no cache).
    service : ndarray of float64, shape (n,)
        Service variate of each request (uniform for empirical models, unit-mean for parametric).
    """

    arrival_times: np.ndarray
    keys: np.ndarray | None
    service: np.ndarray

    @property
    def n(self) -> int:
        return int(self.arrival_times.size)


def draw_variates(scenario: Scenario, model: ServiceModel, n: int, rngs: dict[str, np.random.Generator],
                  trace: Trace | None = None) -> Variates:
    """Draw arrivals, keys and service variates of ``n`` requests from the replication's streams."""
    times = arrival_times(scenario.arrivals, n, rngs["arrivals"], trace=trace)
    keys = None
    if scenario.cache.enabled:
        if trace is not None and trace.keys is not None:
            reps = -(-n // trace.keys.size)
            keys = np.tile(trace.keys, reps)[:n]
        else:
            keys = zipf_keys(scenario.cache.zipf_alpha, scenario.cache.keys, n, rngs["keys"])
    return Variates(times, keys, model.draw(rngs["service"], n))
