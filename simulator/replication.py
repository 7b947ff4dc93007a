"""What one replication of any engine returns: per-request arrays in arrival order (seconds).

The SimPy engine and the fast engine both fill this, so the Monte Carlo layer (warm-up deletion,
confidence intervals) and the cross-checks treat them alike. Requests that were dropped (queue limit,
request timeout) have ``latency = nan``; cache hits have ``batch_size = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ReplicationOutput"]


@dataclass
class ReplicationOutput:
    """Per-request outcome of one replication.

    Attributes
    ----------
    arrival : ndarray (n,)
        Arrival time of each request (s).
    latency : ndarray (n,)
        Arrival to response (s); nan when dropped.
    dropped : ndarray of bool (n,)
        Turned away by the queue limit or abandoned by the request timeout.
    cache_hit : ndarray of bool (n,)
        Answered by the result cache.
    batch_size : ndarray of int (n,)
        Size of the batch the request was served in (0: cache hit or dropped).
    batch_wait : ndarray (n,)
        Arrival until its batch was ready (full, or its oldest request's timeout), capped at the
        batch's start (s).
    queue_wait : ndarray (n,)
        Batch ready until service started (s).
    service : ndarray (n,)
        Service time of its batch (s), including contention slow-down.
    stage_time : ndarray (n,)
        Time in pre/post-processing stages, including their queues (s).
    busy_time : float
        Total replica-seconds spent serving (for utilisation).
    end_time : float
        Time the last request left (s).
    servers : int
        Replicas (for utilisation = busy_time / (servers · span)).
    n_batches : int
        Batches dispatched.
    """

    arrival: np.ndarray
    latency: np.ndarray
    dropped: np.ndarray
    cache_hit: np.ndarray
    batch_size: np.ndarray
    batch_wait: np.ndarray
    queue_wait: np.ndarray
    service: np.ndarray
    stage_time: np.ndarray
    busy_time: float
    end_time: float
    servers: int
    n_batches: int

    @property
    def n(self) -> int:
        return int(self.arrival.size)

    @classmethod
    def empty(cls, n: int, servers: int) -> ReplicationOutput:
        """Arrays of length n to be filled in place (latency nan = not yet done)."""
        return cls(arrival=np.zeros(n), latency=np.full(n, np.nan), dropped=np.zeros(n, bool),
                   cache_hit=np.zeros(n, bool), batch_size=np.zeros(n, np.int32), batch_wait=np.zeros(n),
                   queue_wait=np.zeros(n), service=np.zeros(n), stage_time=np.zeros(n), busy_time=0.0,
                   end_time=0.0, servers=servers, n_batches=0)


@dataclass
class ReplicationSummary:
    """One replication reduced to the figures the Monte Carlo layer combines (after warm-up deletion).

    Engines that stream (no per-request arrays kept) return this directly; otherwise
    :func:`simulator.montecarlo.summarize` builds it from a :class:`ReplicationOutput`.
    Latencies in seconds; ``quantiles`` maps a fraction (0.99) to its estimate.
    """

    completed: int                 # requests answered (model or cache) after warm-up
    dropped: int                   # requests dropped after warm-up
    latency_mean: float
    quantiles: dict[float, float]
    cache_hits: int
    batches: int
    batch_size_mean: float
    breakdown: dict[str, float]    # mean seconds: cache, batching_wait, queueing_wait, service, stages
    utilization: float
    throughput: float              # completed / observed span (requests/s)
    warmup_deleted: int
    little_l: float = float("nan")  # time-average number in system, for Little's-law checks
    exact_quantiles: bool = True   # False when from a streaming sketch (relative error bound in notes)
