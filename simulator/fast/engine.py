"""The compiled engine's Python side: which scenarios it runs, and one replication from given variates."""

from __future__ import annotations

import numba
import numpy as np

from ..cachesim import hit_mask
from ..errors import InputError
from ..replication import ReplicationOutput
from ..scenario import Scenario
from ..service import EMPIRICAL, ServiceModel
from ..variates import Variates
from . import kernels as K
from .cache import CacheState

__all__ = ["supports", "run_replication"]


def supports(scenario: Scenario) -> str | None:
    """None when the fast engine can run ``scenario``; otherwise the feature it lacks (for messages).

    The subset: one FCFS group of identical replicas, dynamic batching (greedy or with a timeout), a
    result cache, any arrival process, a queue limit and contention slow-down.
    """
    if scenario.pools:
        return "heterogeneous replica pools with routing"
    if scenario.pre_stages or scenario.post_stages:
        return "pre/post-processing stages"
    if scenario.fork_branches > 1:
        return "fork-join"
    if scenario.request_timeout_s is not None:
        return "a request timeout (abandonment)"
    return None


def check_supported(scenario: Scenario, model: ServiceModel) -> None:
    reason = supports(scenario)
    if reason is not None:
        raise InputError(f"the fast engine does not model {reason}; use engine 'simpy' (or 'auto')")
    if model.max_batch < scenario.batching.max_batch_size:
        raise InputError(f"service model covers batches up to {model.max_batch}, "
                         f"but batch_size is {scenario.batching.max_batch_size}")


def _cache_hits(policy: str, capacity: int, keys: np.ndarray) -> np.ndarray:
    """:func:`simulator.cachesim.hit_mask`, through the GIL-free chunked kernel when the keys are small
    non-negative labels (Zipf keys always are), so parallel replications do not queue for the GIL."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if keys.size and keys.min() >= 0 and keys.max() < max(4 * keys.size, 1 << 16):
        return CacheState(policy, capacity, int(keys.max()) + 1).hits(keys)
    return hit_mask(policy, capacity, keys)


def model_arrays(model: ServiceModel) -> tuple:
    """The ServiceModel as the tuple the kernels unpack into :func:`simulator.service.service_time`."""
    f = np.ascontiguousarray
    return (np.int64(model.mode), f(model.means, np.float64), f(model.emp_values, np.float64),
            f(model.emp_start, np.int64), f(model.emp_len, np.int64), f(model.emp_scale, np.float64),
            f(model.slowdown, np.float64), f(model.warm_idle_s, np.float64), f(model.warm_factor, np.float64))


class QueueRunner:
    """The queue of one replication, fed chunk by chunk; it keeps the state the kernels carry.

    ``feed`` returns the local index from which requests may still be waiting: the caller passes
    them (arrays from that index on) at the head of the next chunk.
    """

    def __init__(self, scenario: Scenario, model: ServiceModel):
        check_supported(scenario, model)
        self.servers = scenario.replicas
        b = scenario.batching
        self.B = b.max_batch_size
        self.timeout = b.timeout_s
        self.kind = "plain" if self.B == 1 else "batch"
        self.limit = -1 if scenario.queue_limit is None else int(scenario.queue_limit)
        self.hit_latency = float(scenario.cache.hit_latency_s)
        self.m = model_arrays(model)
        self.env = model.environment()  # None (no drift) compiles the kernels without the branch
        self.empirical = True if model.mode == EMPIRICAL else None  # None: compiled for parametric models
        self.W = np.zeros(self.servers)  # replica free times: sorted, or a binary min-heap
        self.heap = self.servers > K.HEAP_MIN
        self.ring = np.zeros((2, min(self.limit + 2, 1024) if self.limit >= 0 else 2))
        self.rs = np.zeros(3, np.int64)   # plain: ring head, ring count, waiting count
        self.ts = np.zeros(3)             # batching: first waiting (local index), waiting count, ready time

    def feed(self, arr, var, status, n0, final, out, g0, warm, fs, ist, hist=None) -> int:
        """Run local requests n0.. (0..n0-1 were fed before); results into ``out``.

        Returns the local index from which requests may still be waiting (``arr.size``: none).
        Without batching, ``hist`` (with ``out`` None) folds every outcome at once into ``fs``, ``ist``
        and the latency histogram, as :func:`simulator.fast.kernels.fold` would from ``out``.
        """
        if self.kind == "batch":
            if out is None:
                raise ValueError("the batching kernel records into per-request arrays: pass out")
            cut = K.run_batching(arr, var, status, n0, final, self.B, self.timeout, self.limit, self.W, self.heap,
                                 self.ts, self.m, self.env, self.hit_latency, out, g0, warm, fs, ist, self.empirical)
            self.ts[0] -= cut
            return cut
        while True:  # the kernel stops early when the queue-limit ring is full
            stop = K.run_plain(arr, var, status, n0, self.limit, self.W, self.heap, self.ring, self.rs, self.m, self.env,
                               self.hit_latency, out, g0, warm, fs, ist, hist)
            if stop == arr.size:
                return arr.size
            self.ring = K.grow_ring(self.ring, self.rs)
            n0 = stop


def run_replication(scenario: Scenario, model: ServiceModel, variates: Variates,
                    rngs: dict | None = None) -> ReplicationOutput:
    """One replication from pre-drawn variates, with every request's outcome (seconds).

    Parameters
    ----------
    scenario : Scenario
        Must be within :func:`supports` (else :class:`~simulator.errors.InputError`).
    model : ServiceModel
        Service-time law; batch sizes up to ``scenario.batching.max_batch_size``.
    variates : Variates
        Arrival times, keys (when there is a cache) and service variates of every request.
    rngs : dict, optional
        Unused: the subset needs no random numbers beyond ``variates`` (same signature as the DES engine).

    Returns
    -------
    ReplicationOutput
        Identical, request by request, to :func:`simulator.des.run_replication` on the same variates.
        ``arrival`` is ``variates.arrival_times`` itself (not a copy); latency, batch size, batch wait,
        queue wait and service are views of one block (see :func:`_result_arrays`).
    """
    runner = QueueRunner(scenario, model.for_replication(variates.env_key))
    n = variates.n
    arr = np.ascontiguousarray(variates.arrival_times, dtype=np.float64)
    var = np.ascontiguousarray(variates.service, dtype=np.float64)
    if var.size != n:
        raise InputError(f"variates.service has {var.size} values for {n} arrivals")
    if not _non_decreasing(arr):  # also catches nan
        raise InputError("variates.arrival_times must be finite and non-decreasing")
    status = np.zeros(n, np.int8)
    if scenario.cache.enabled:
        if variates.keys is None:
            raise InputError("a cache needs request keys (variates.keys is None)")
        status[_cache_hits(scenario.cache.policy, scenario.cache.capacity, variates.keys)] = 1
    results = _result_arrays(n)
    z = np.zeros
    fs, ist, _ = K.new_stats(1)
    runner.feed(arr, var, status, 0, True, results, 0, 0, fs, ist)
    some_dropped = runner.limit >= 0
    return ReplicationOutput(
        arrival=arr, latency=results[0], dropped=status == 2 if some_dropped else z(n, bool),
        cache_hit=status == 1 if scenario.cache.enabled else z(n, bool), batch_size=results[1],
        batch_wait=results[2], queue_wait=results[3], service=results[4], stage_time=z(n),
        busy_time=float(fs[K.F_BUSY]), end_time=float(fs[K.F_END]), servers=scenario.replicas,
        n_batches=int(ist[K.I_BATCH]))


def _result_arrays(n: int) -> tuple:
    """Zeroed per-request result arrays (latency, batch size, batch wait, queue wait, service), carved
    out of one allocation: the kernels write every latency and the other fields of served requests
    only. One block of 36 bytes per request is large enough for numpy to back it with huge pages; five
    separate zeroed arrays of 1-2 MiB page-faulted 4 KiB at a time on every replication (at n = 250 000,
    run_replication took 11.3 ns per request instead of 4.3). The arrays are views: any of them keeps
    the whole block alive."""
    block = np.zeros(36 * n, np.uint8)
    f8 = block[:32 * n].view(np.float64)
    return f8[:n], block[32 * n:].view(np.int32), f8[n:2 * n], f8[2 * n:3 * n], f8[3 * n:]


@numba.njit(cache=True, nogil=True)
def _non_decreasing(a):
    """a[i] >= a[i-1] for every i (false on any nan); one vectorised pass, no temporary array."""
    ok = True
    for i in range(1, a.size):
        ok &= a[i] >= a[i - 1]
    return ok

