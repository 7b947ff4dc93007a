"""Long replications in bounded memory: variates drawn chunk by chunk, statistics kept, requests not.

Each chunk's arrivals, keys and service variates come from the replication's streams
(:func:`simulator.variates.streams`) exactly as :func:`simulator.variates.draw_variates` would draw them,
continued where the previous chunk stopped: service variates (a :class:`~simulator.service.VariateStream`,
which carries the lognormal's spare normals), Zipf keys and trace replay are the same numbers as one
big draw; Poisson and gamma arrival times equal the one-shot cumulative sum up to rounding (the sum
restarts from the last time); MMPP continues its state and leftover points, so it is the same sequence
too; diurnal thinning continues from the last candidate time (same law, candidates drawn in other
block sizes). The queue state (replica free times, waiting requests, the batcher's
ready time) and the cache contents carry over, so chunking does not alter the system: a batch whose
start depends on arrivals of the next chunk is decided there.

Each chunk is drawn straight into working arrays reused from chunk to chunk, behind the requests
carried from the previous one (fresh arrays cost page faults, and concatenating the tail a copy), and
chunks of 2^16 requests stay in cache from drawing to the kernel. Without batching the kernel folds
each request into the statistics itself; with batching it writes per-request results that
:func:`~simulator.fast.kernels.fold` reduces.

Kept per replication: sums (latency, its parts, busy time), counts and a :class:`~.sketch.LatencySketch`
(relative error ≤ 0.39 % on every quantile). Warm-up deletion is a fixed fraction of the requests
(MSER-5 needs the whole series).
"""

from __future__ import annotations

import math

import numpy as np

from ..replication import ReplicationSummary
from ..scenario import Arrivals, Scenario
from ..service import ServiceModel, VariateStream
from ..validation import check_integer, check_probability, check_quantile
from ..variates import ZipfKeys, environment_key, renewal_times, streams
from ..workload import Trace, load_trace
from . import kernels as K
from .cache import CacheState
from .engine import QueueRunner
from .sketch import NBUCKETS, LatencySketch

DEFAULT_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)

__all__ = ["DEFAULT_QUANTILES", "ArrivalStream", "KeyStream", "run_streaming"]


class ArrivalStream:
    """The arrival process of ``arrivals``, drawn in successive pieces (absolute times, seconds)."""

    def __init__(self, arrivals: Arrivals, rng: np.random.Generator, trace: Trace | None = None):
        self.a, self.rng = arrivals, rng
        self.t = 0.0       # last arrival (renewal processes) or the modulating clock (mmpp, diurnal)
        self.drawn = 0
        self.pending = np.empty(0)
        p = arrivals.process
        if p == "trace":
            self.trace = trace if trace is not None else load_trace(arrivals.trace)
            tr = self.trace.times
            self.span = tr[-1] + (tr[-1] - tr[0]) / max(tr.size - 1, 1)
        elif p == "mmpp":
            f, ratio = arrivals.burst_fraction, arrivals.burst_ratio
            calm = arrivals.rate / (1.0 - f + f * ratio)
            self.rates = (calm, calm * ratio)
            self.mean_len = (arrivals.burst_mean_s * (1.0 - f) / f, arrivals.burst_mean_s)
            self.state = 0 if rng.random() >= f else 1

    def next(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """The next ``n`` arrival times, into ``out`` (float64, length n) if given."""
        p, a, rng = self.a.process, self.a, self.rng
        if p == "poisson":
            out = renewal_times(rng.standard_exponential(n, out=out), a.rate, self.t)
            self.t = float(out[-1]) if n else self.t
            self.drawn += n
            return out
        if p == "gamma":
            shape = 1.0 / a.cv**2
            out = renewal_times(rng.standard_gamma(shape, n, out=out), shape * a.rate, self.t)
            self.t = float(out[-1]) if n else self.t
            self.drawn += n
            return out
        times = self._other(n)
        self.drawn += n
        if out is None:
            return times
        out[:] = times
        return out

    def _other(self, n: int) -> np.ndarray:
        p, a = self.a.process, self.a
        if p == "trace":
            tr = self.trace
            idx = np.arange(self.drawn, self.drawn + n)
            out = tr.times[idx % tr.times.size] + self.span * (idx // tr.times.size)
            if a.rate is not None:
                out = out * (tr.rate / a.rate)
        elif p == "mmpp":
            out = self._mmpp(n)
        else:
            out = self._diurnal(n)
        return out

    def _take(self, n: int, parts: list) -> int:
        take = min(n, self.pending.size)
        parts.append(self.pending[:take])
        self.pending = self.pending[take:]
        return take

    def _mmpp(self, n: int) -> np.ndarray:
        # Same draws as simulator.workload._mmpp, resumable: the sojourn in progress and its unused
        # points carry over to the next piece.
        rng, parts = self.rng, []
        filled = self._take(n, parts)
        while filled < n:
            end = self.t + rng.exponential(self.mean_len[self.state])
            k = rng.poisson(self.rates[self.state] * (end - self.t))
            if k:
                self.pending = np.sort(rng.uniform(self.t, end, k))
                filled += self._take(n - filled, parts)
            self.t, self.state = end, 1 - self.state
        return np.concatenate(parts) if parts else np.empty(0)

    def _diurnal(self, n: int) -> np.ndarray:
        a, rng, parts = self.a, self.rng, []
        peak = a.rate * (1.0 + a.amplitude)
        filled = self._take(n, parts)
        while filled < n:
            m = max(1024, int(1.3 * (n - filled) * (1.0 + a.amplitude)))
            cand = self.t + np.cumsum(rng.standard_exponential(m) / peak)
            lam = a.rate * (1.0 + a.amplitude * np.sin(2.0 * np.pi * cand / a.period_s))
            self.pending = cand[rng.random(m) * peak < lam]
            self.t = float(cand[-1])
            filled += self._take(n - filled, parts)
        return np.concatenate(parts) if parts else np.empty(0)


class KeyStream:
    """Request keys as dense labels 0..n_keys-1: Zipf draws, or the trace's keys replayed in a cycle."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator, trace: Trace | None):
        self.rng = rng
        self.drawn = 0
        self.labels = None
        if trace is not None and trace.keys is not None:
            _, self.labels = np.unique(trace.keys, return_inverse=True)
            self.n_keys = int(self.labels.max()) + 1
        else:
            self.zipf = ZipfKeys(scenario.cache.zipf_alpha, scenario.cache.keys)
            self.n_keys = scenario.cache.keys

    def next(self, n: int) -> np.ndarray:
        if self.labels is not None:
            idx = np.arange(self.drawn, self.drawn + n) % self.labels.size
            out = self.labels[idx].astype(np.int64)
        else:  # as simulator.workload.zipf_keys
            out = self.zipf.draw(self.rng, n)
        self.drawn += n
        return out


def run_streaming(scenario: Scenario, model: ServiceModel, n_requests: int, seed_seq: np.random.SeedSequence,
                  chunk: int = 2**16, quantiles=DEFAULT_QUANTILES, warmup_fraction: float | None = None,
                  *, trace: Trace | None = None, return_sketch: bool = False):
    """One replication of ``n_requests`` in chunks, reduced on the fly to a :class:`ReplicationSummary`.

    Parameters
    ----------
    scenario, model : Scenario, ServiceModel
        Within :func:`simulator.fast.supports`.
    n_requests : int
        Requests to simulate (memory does not grow with it; only the requests still waiting at a chunk's
        end are carried).
    seed_seq : numpy.random.SeedSequence
        The replication's seed; its streams are those of :func:`simulator.variates.streams`.
    chunk : int
        Requests drawn per chunk (memory grows with it; throughput is flat from 2^13 to 2^17).
    quantiles : sequence of float
        Latency quantiles to report (fractions), each within relative error
        :data:`simulator.fast.RELATIVE_ERROR` (2^-8 ≈ 0.39 %) of the exact order statistic.
    warmup_fraction : float, optional
        Fraction of requests (by arrival) left out of the statistics; default: 0 with
        ``scenario.run.warmup == "none"``, else ``scenario.run.warmup_fraction``.
    trace : Trace, optional
        An already loaded trace for ``arrivals.process == "trace"``.
    return_sketch : bool
        Also return the latency sketch (to pool quantiles across replications).

    Returns
    -------
    ReplicationSummary, or (ReplicationSummary, LatencySketch) with ``return_sketch``
        ``exact_quantiles`` is False; utilization and Little's L cover the whole run, the other figures
        the requests after warm-up.
    """
    n = check_integer("requests", n_requests, minimum=1)
    chunk = check_integer("chunk", chunk, minimum=1)
    qs = tuple(check_quantile("quantile", q) for q in quantiles)
    if warmup_fraction is None:
        warmup_fraction = 0.0 if scenario.run.warmup == "none" else scenario.run.warmup_fraction
    warmup_fraction = check_probability("warmup_fraction", warmup_fraction, open_high=True)
    rngs = streams(seed_seq)
    runner = QueueRunner(scenario, model.for_replication(environment_key(rngs)))
    if scenario.arrivals.process == "trace" and trace is None:
        trace = load_trace(scenario.arrivals.trace)
    arrivals = ArrivalStream(scenario.arrivals, rngs["arrivals"], trace)
    cache = keys = None
    if scenario.cache.enabled:
        keys = KeyStream(scenario, rngs["keys"], trace)
        cache = CacheState(scenario.cache.policy, scenario.cache.capacity, keys.n_keys)
    warm = math.floor(warmup_fraction * n)
    fs, ist, hist = K.new_stats(NBUCKETS)
    fold_in_kernel = runner.kind == "plain"
    work = _Work(results=not fold_in_kernel)
    service = VariateStream(model, rngs["service"])
    k = 0            # requests carried (still waiting) at the front of the working arrays
    g0 = 0           # global index of local index 0
    drawn = 0
    t_first = t_warm = math.nan
    while drawn < n:
        m = min(chunk, n - drawn)
        arr, var, status, out = work.take(k, k + m)
        # this chunk's variates go straight into the working arrays, after the carried requests
        new_a = arrivals.next(m, out=arr[k:])
        service.next(m, out=var[k:])
        if cache is not None:
            status[k:] = cache.hits(keys.next(m))
        else:
            status[k:] = 0
        if drawn == 0:
            t_first = float(new_a[0])
        if drawn <= warm < drawn + m:
            t_warm = float(new_a[warm - drawn])
        drawn += m
        if fold_in_kernel:  # the plain kernel folds each outcome at once (every request finishes)
            cut = runner.feed(arr, var, status, k, drawn == n, None, g0, warm, fs, ist, hist)
        else:
            cut = runner.feed(arr, var, status, k, drawn == n, out, g0, warm, fs, ist)
            K.fold(out, status, 0, cut, runner.hit_latency, g0, warm, fs, ist, hist)
        k = arr.size - cut
        work.carry(cut, k)
        g0 += cut
    sketch = LatencySketch(hist, fs[K.F_LMIN], fs[K.F_LMAX])
    summary = _summary(scenario.replicas, fs, ist, sketch, qs, warm, t_first, t_warm)
    return (summary, sketch) if return_sketch else summary


class _Work:
    """A chunk's arrays, reused from chunk to chunk: arrival times, service variates and status of the
    requests carried from the previous chunk (at the front) and of the new ones, and the per-request
    results. Fresh arrays per chunk cost page faults and copies (concatenating the carried tail)."""

    def __init__(self, results: bool = True):
        self.size = 0
        self.results = results  # whether the per-request results need arrays (else the kernel folds)

    def take(self, keep: int, n: int) -> tuple:
        """Views of length n; the first ``keep`` requests (the carried ones) are preserved."""
        if n > self.size:
            size = max(n, int(self.size * 1.25))
            e = np.empty
            arr, var, status = e(size), e(size), e(size, np.int8)
            if keep:
                arr[:keep], var[:keep], status[:keep] = self.arr[:keep], self.var[:keep], self.status[:keep]
            self.arr, self.var, self.status = arr, var, status
            if self.results:
                # the batch wait zeroed: a kernel without batching never writes it
                self.out = (e(size), e(size, np.int32), np.zeros(size), e(size), e(size))
            self.size = size
        return self.arr[:n], self.var[:n], self.status[:n], tuple(a[:n] for a in self.out) if self.results else ()

    def carry(self, cut: int, k: int) -> None:
        """Move the k requests from local index ``cut`` on to the front (they still wait)."""
        if k and cut:
            for a in (self.arr, self.var, self.status):
                a[:k] = a[cut:cut + k]  # numpy copies through a temporary where the ranges overlap


def _summary(servers, fs, ist, sketch, qs, warm, t_first, t_warm) -> ReplicationSummary:
    done = int(ist[K.I_DONE])
    end = float(fs[K.F_END])
    nan = math.nan

    def per_request(x):
        return float(x / done) if done else nan

    span_all = end - t_first
    span_kept = end - t_warm if math.isfinite(t_warm) else nan
    batches = int(ist[K.I_BATCH_OBS])
    return ReplicationSummary(
        completed=done,
        dropped=int(ist[K.I_DROP]),
        latency_mean=per_request(fs[K.F_LAT]),
        quantiles={q: sketch.quantile(q) for q in qs},
        cache_hits=int(ist[K.I_HIT]),
        batches=batches,
        batch_size_mean=float(ist[K.I_BATCHED_OBS] / batches) if batches else nan,
        breakdown={"cache": per_request(fs[K.F_HITLAT]), "batching_wait": per_request(fs[K.F_BWAIT]),
                   "queueing_wait": per_request(fs[K.F_QWAIT]), "service": per_request(fs[K.F_SVC]),
                   "stages": 0.0 if done else nan},
        utilization=float(fs[K.F_BUSY] / (servers * span_all)) if span_all > 0 else nan,
        throughput=done / span_kept if span_kept > 0 else nan,
        warmup_deleted=warm,
        # Σ sojourn = ∫ N(t) dt over [first arrival, last departure]: exact for a run that ends empty.
        little_l=float(fs[K.F_LAT_ALL] / span_all) if span_all > 0 else nan,
        exact_quantiles=False,
    )

