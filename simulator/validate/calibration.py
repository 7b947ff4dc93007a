"""Service times *under load*: what a live run at the target load measures inside the server.

Why: a model's service time in isolation (closed loop, one request right after another, caches hot) is
not its service time in a server under Poisson load. Between requests a worker goes idle and has to be
woken (a futex, the GIL, TensorFlow's thread pool), the load generator's issue thread and the response
path compete for the same cores and the GIL, and replicas sharing a host slow each other down. On the
2-core validation host the effective service time under load was 5-50 % above the isolated serving-path
time (most at low load, where most requests find their worker idle), and a queue model fed isolated
times predicted latencies 20-60 % too low.

The model used here (and proposed for profiles, see :func:`calibrated_profile`):

* **effective service time** of a batch = the time its worker is unavailable for other work:
  ``done - max(worker's previous done, enqueue of the batch's oldest request)``. It includes the worker's
  wake-up when the request found it idle and the response hand-off, so the FCFS queue recursion of the
  simulator holds for the real server with these times;
* **contention**: effective service times grouped by the number of busy workers when the batch started
  (``k``); ``slowdown[k]`` = mean at ``k`` / mean at 1, the simulator's ``contention = shared`` mechanism;
* **client-side overhead**: LoadGen's mean latency minus the server's mean enqueue→done time. It is the
  issue path (LoadGen's scheduled time → the SUT callback → the queue) and does not occupy a worker: a
  pure delay (a deterministic post-processing stage of the scenario);
* **warm-up after idle** (:func:`fit_warmup`): effective service against how long the worker had sat
  idle, relative to the batches that waited (back to back); the samples are deflated to back-to-back
  times and the table goes into the profile's ``under_load.idle_factors``;
* **host drift** (:func:`fit_environment`): each 0.25-s window's mean over the run's, as the factors of
  ``under_load.environment``; the samples are deflated by their window's factor. With several workers
  only the part of a window's variation that the workers share is host drift (the engines apply a
  window's factor to every replica at once).

A calibration point pools the short live runs at one load that precede the run to predict (see
:func:`simulator.validate.harness.evaluate`); a prediction at another load uses the nearest point's
samples with their mean interpolated linearly in the per-replica arrival rate. The samples keep their
start order, so that a block bootstrap can keep their autocorrelation (:mod:`.ordered`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from ..errors import InputError
from ..ordered import ServiceOrder, block_length
from ..profiles import Profile
from ..result import PERCENTILES
from ..service import warmup_factor
from ..under_load import OVERHEAD_KEYS
from .server import ServerRecords

__all__ = ["LoadPoint", "busy_fraction", "calibrated_profile", "effective_batches", "fit_environment", "fit_warmup",
           "host_level", "levels_against", "load_point", "refit_point", "under_load_profile"]

UNDER_LOAD_SCHEMA = "1.1"  # profiles with an under_load block (simulator.under_load)
MIN_GROUP = 30  # fewest samples for a (batch size, busy workers) group to stand on its own


def effective_batches(records: ServerRecords, batch_timeout_s: float = 0.0) -> dict[str, np.ndarray]:
    """One row per batch: effective service time (s), batch size, busy workers at its start, start time,
    whether its worker was idle when the batch's oldest request arrived (``found_idle``) and for how long
    (``idle_s``: 0 when the request waited, NaN for a worker's first batch) and which worker served it.

    With a batch timeout the worker may wait for its batch to fill; that wait is queueing (the simulator's
    batcher models it), so the effective start is the batch's ``started`` itself.
    """
    if records.n == 0:
        return {"service_s": np.zeros(0), "batch_size": np.zeros(0, np.int64), "busy": np.zeros(0, np.int64),
                "started": np.zeros(0), "found_idle": np.zeros(0, bool), "idle_s": np.zeros(0),
                "worker": np.zeros(0, np.int64)}
    key = np.round(records.started * 1e9).astype(np.int64)
    rows: dict[tuple[int, int], dict] = {}
    for i in range(records.n):
        k = (int(records.worker[i]), int(key[i]))
        row = rows.get(k)
        if row is None:
            rows[k] = {"worker": k[0], "started": records.started[i], "done": records.done[i],
                       "first_enq": records.enqueued[i], "batch_size": int(records.batch_size[i]),
                       "busy": int(records.busy[i])}
        else:
            row["first_enq"] = min(row["first_enq"], records.enqueued[i])
    batches = sorted(rows.values(), key=lambda r: r["started"])
    prev_done: dict[int, float] = {}
    service, sizes, busy, started, idle, idle_s, workers = [], [], [], [], [], [], []
    for b in batches:
        w = b["worker"]
        free_at = prev_done.get(w, -math.inf)
        if batch_timeout_s > 0:
            begin = b["started"]
        else:
            begin = min(max(free_at, b["first_enq"]), b["started"])
        prev_done[w] = b["done"]
        workers.append(w)
        service.append(b["done"] - begin)
        sizes.append(b["batch_size"])
        busy.append(b["busy"])
        started.append(b["started"])
        idle.append(free_at <= b["first_enq"])
        # how long the worker had sat idle when the batch's oldest request arrived (0: it waited; NaN: the
        # worker's first batch in the window, whose idle time is unknown)
        idle_s.append(max(b["first_enq"] - free_at, 0.0) if math.isfinite(free_at) else math.nan)
    return {"service_s": np.asarray(service), "batch_size": np.asarray(sizes, np.int64),
            "busy": np.asarray(busy, np.int64), "started": np.asarray(started), "found_idle": np.asarray(idle),
            "idle_s": np.asarray(idle_s), "worker": np.asarray(workers, np.int64)}


def busy_fraction(records: ServerRecords, replicas: int, batch_timeout_s: float = 0.0) -> float:
    """Measured utilization: effective service time summed over batches / (replicas × the run's span)."""
    if records.n == 0:
        return math.nan
    span = float(records.done.max() - records.enqueued.min())
    eff = effective_batches(records, batch_timeout_s)
    return float(eff["service_s"].sum() / (replicas * span)) if span > 0 else math.nan


@dataclass
class LoadPoint:
    """Effective service times measured in a live run at one load.

    Attributes
    ----------
    arrival_rate : float
        Measured arrival rate of the run (requests/s).
    replicas : int
        Worker threads of the server.
    utilization : float
        Nominal per-replica load the run aimed at (ρ from the isolated profile).
    groups : dict
        ``(batch size, busy workers) -> effective service samples`` (s).
    overhead_s : float
        Mean client-side overhead outside the server (s), ≥ 0.
    meta : dict
        Where the point came from (duration, LoadGen figures, machine load).
    rows : list of (batch size, busy workers, effective service s, idle s, start s)
        Every batch in start order (idle: how long its worker had sat idle, 0 when the batch's oldest
        request waited, NaN unknown).
    warmup : (idle times, factors)
        Warm-up table after idle (:func:`fit_warmup`; empty: none). Samples are deflated by it to their
        back-to-back values, which the profile's ``under_load.idle_factors`` inflate again per batch.
    environment : (window s, factors)
        Host drift (:func:`fit_environment`; window 0: none): each window's mean service over the run's.
    env_rows : ndarray
        The environment factor of each row's window (1 where a window had too few batches to say).
    workers : ndarray
        The worker that served each row (empty: unknown).
    """

    arrival_rate: float
    replicas: int
    utilization: float
    groups: dict[tuple[int, int], np.ndarray]
    overhead_s: float
    meta: dict = field(default_factory=dict)
    rows: list[tuple[int, int, float, float, float]] = field(default_factory=list, repr=False)
    warmup: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    environment: tuple[float, tuple[float, ...]] = (0.0, ())
    env_rows: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    workers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @property
    def per_replica_rate(self) -> float:
        return self.arrival_rate / self.replicas

    @property
    def duration_s(self) -> float:
        """From the first batch's start to the last's (s; 0 without rows)."""
        return float(self.rows[-1][4] - self.rows[0][4]) if len(self.rows) >= 2 else 0.0

    def without_warmup(self, service_s: float, idle_s: float) -> float:
        """A batch's effective service time without its warm-up (an unknown idle counts as long)."""
        xs, fs = self.warmup
        if not xs or idle_s == 0.0:
            return service_s
        # the engines' own law (simulator.service.warmup_factor), so that deflating and inflating agree
        return service_s / float(warmup_factor(np.asarray(xs), np.asarray(fs), idle_s if math.isfinite(idle_s)
                                               else math.inf))

    def without_drift(self) -> LoadPoint:
        """This point with its host drift left in the samples (no ``environment``)."""
        return replace(self, environment=(0.0, ()), env_rows=np.zeros(0))

    def _deflated(self, j: int) -> float:
        """Row j's effective service time without its warm-up and its window's host drift."""
        _, _, s, idle, _ = self.rows[j]
        env = self.env_rows[j] if self.env_rows.size else 1.0
        return self.without_warmup(s, idle) / env

    def _deflated_groups(self) -> dict[tuple[int, int], np.ndarray]:
        """``groups`` with every sample deflated by the warm-up table and the host drift (``groups``
        itself without either)."""
        if (not self.warmup[0] and not self.env_rows.size) or not self.rows:
            return self.groups
        out: dict[tuple[int, int], list] = {}
        for j, (b, k, *_) in enumerate(self.rows):
            out.setdefault((b, k), []).append(self._deflated(j))
        return {key: np.asarray(v) for key, v in out.items()}

    def base_samples(self) -> dict[int, np.ndarray]:
        """Per batch size: back-to-back samples (without warm-up and drift) at one busy worker (divided by
        the measured slowdown)."""
        slow = self.slowdown()
        out: dict[int, list] = {}
        for (b, k), s in self._deflated_groups().items():
            out.setdefault(b, []).append(s / slow.get(k, 1.0))
        return {b: np.concatenate(v) for b, v in out.items()}

    def slowdown(self, deflated: bool = True) -> dict[int, float]:
        """busy workers k → mean effective service at k over the mean at 1 (smallest batch size), of the
        samples without warm-up and drift (``deflated``) or as measured."""
        groups = self._deflated_groups() if deflated else self.groups
        b0 = min(b for b, _ in groups)
        at = {k: s for (b, k), s in groups.items() if b == b0 and s.size >= MIN_GROUP}
        if 1 not in at:
            return {k: 1.0 for k in at}
        base = at[1].mean()
        return {k: max(float(s.mean() / base), 1.0) if k > 1 else 1.0 for k, s in at.items()}

    def series(self) -> np.ndarray:
        """The smallest batch size's effective service times in start order, deflated to one busy worker
        and back to back (the values of ``base_samples()``, in their measured order)."""
        slow = self.slowdown()
        b0 = min(b for b, _ in self.groups)
        return np.asarray([self._deflated(j) / slow.get(k, 1.0) for j, (b, k, *_) in enumerate(self.rows)
                           if b == b0])

    def mean_noise(self, parts: int = 10) -> float:
        """Relative sampling variance of :meth:`series`'s mean by batch means: the variance of the means of
        ``parts`` contiguous parts over ``parts``, so that the run's own slow stretches count as its noise
        (independent samples would understate it)."""
        x = self.series()
        if x.size < 2 * parts:
            return float(x.var() / max(x.size, 1) / x.mean() ** 2) if x.size else math.nan
        means = np.array([chunk.mean() for chunk in np.array_split(x, parts)])
        return float(means.var(ddof=1) / parts / x.mean() ** 2)

    def order(self) -> ServiceOrder:
        """:meth:`series` as bootstrap levels that keep their autocorrelation."""
        return ServiceOrder.from_series(self.series())

    def mean(self) -> float:
        """Mean effective service of the smallest batch size at one busy worker (s)."""
        return float(self.base_samples()[min(b for b, _ in self.groups)].mean())


def load_point(records: ServerRecords, loadgen_mean_latency_s: float, arrival_rate: float, replicas: int,
               utilization: float, batch_timeout_s: float = 0.0, meta: dict | None = None,
               loadgen_latency_ms: dict[str, float] | None = None) -> LoadPoint:
    """Build a :class:`LoadPoint` from one live run's server records and LoadGen's mean latency.

    ``loadgen_latency_ms`` (LoadGen's summary: mean and percentiles, ms) adds ``meta["overhead_by_key_s"]``:
    LoadGen's statistic minus the same statistic of the server's sojourns, for the mean and each of
    :data:`OVERHEAD_KEYS`. The client-side overhead is not one constant: on the 2-core host, at C = 2 and
    ρ 0.7, LoadGen's median is 0.46 ms above the server's while the means differ by 0.31 ms."""
    if records.n == 0:
        raise InputError("the calibration run completed no requests; raise --calibration-s")
    eff = effective_batches(records, batch_timeout_s)
    groups: dict[tuple[int, int], list] = {}
    for s, b, k in zip(eff["service_s"], eff["batch_size"], eff["busy"]):
        groups.setdefault((int(b), int(k)), []).append(float(s))
    arrays = {key: np.asarray(v) for key, v in groups.items()}
    # Small groups are merged into their batch size's busiest neighbour so that no point rests on a handful
    # of samples; their contention factor is then the neighbour's.
    merged: dict[tuple[int, int], np.ndarray] = {}
    key_of: dict[tuple[int, int], int] = {}
    for (b, k), s in sorted(arrays.items()):
        if s.size >= MIN_GROUP or not any(bb == b for (bb, _) in merged):
            merged[(b, k)] = s
            key_of[(b, k)] = k
        else:
            near = max((kk for (bb, kk) in merged if bb == b), key=lambda kk: (-abs(kk - k), kk))
            merged[(b, near)] = np.concatenate([merged[(b, near)], s])
            key_of[(b, k)] = near
    rows = [(int(b), key_of[(int(b), int(k))], float(s), float(t), float(t0))
            for s, b, k, t, t0 in zip(eff["service_s"], eff["batch_size"], eff["busy"], eff["idle_s"],
                                      eff["started"])]
    overhead = loadgen_mean_latency_s - float(records.sojourn_s.mean())
    extra = {}
    if loadgen_latency_ms and all(k in loadgen_latency_ms for k in OVERHEAD_KEYS):
        soj = records.sojourn_s
        extra["overhead_by_key_s"] = {"mean": max(overhead, 0.0)} | {
            k: max(loadgen_latency_ms[k] / 1e3 - float(np.quantile(soj, PERCENTILES[k])), 0.0) for k in OVERHEAD_KEYS}
    point = LoadPoint(arrival_rate, replicas, utilization, merged, max(overhead, 0.0),
                      dict(meta or {}, overhead_raw_s=overhead, requests=records.n, **extra), rows,
                      workers=eff["worker"])
    return refit_point(point, fit_warmup([point]))


def refit_point(point: LoadPoint, table: tuple[tuple[float, ...], tuple[float, ...]],
                drift: bool = True) -> LoadPoint:
    """``point`` with the warm-up ``table`` and its host drift fitted anew on the samples it deflates
    (``drift`` False: none, the drift left in the samples, :meth:`LoadPoint.without_drift`)."""
    point = replace(point, warmup=table, env_rows=np.zeros(0))
    if not drift:
        return point.without_drift()
    env, rows = fit_environment(point, ENV_WINDOW_S)
    return replace(point, environment=env, env_rows=rows)


ENV_WINDOW_S = 0.25  # host-drift windows (s): slow stretches on the validation host last 0.2-2 s
ENV_MIN_BATCHES = 8  # fewest batches for a window's mean to stand for its drift


def fit_environment(point: LoadPoint, window_s: float = ENV_WINDOW_S) -> tuple[tuple[float, tuple[float, ...]],
                                                                               np.ndarray]:
    """Host drift of one live run: ``((window_s, factors), factor of each row)``.

    Each batch's service time is deflated by its warm-up (``point.warmup``) and the measured contention
    slowdown and divided by its batch size's mean; the batches are grouped by start time into windows
    of ``window_s`` and a window's factor is the mean of those ratios (windows with fewer than
    ``ENV_MIN_BATCHES`` batches keep factor 1 and add no factor). Factors are scaled to mean 1, so the
    level stays in the samples. A window's mean also carries sampling noise (variance s²/n, s² the
    variance within the window: ~3 % for 50 batches of cv 0.2), which alone would make independent
    service times look like drift; so every factor's deviation from 1 is shrunk by
    √(1 − mean noise variance / variance of the window means), which leaves the factors the variance of
    the drift alone (none, for independent service times). With several workers the engines apply a
    window's factor to every replica at once, so the factors may carry only what the workers share: the
    deviations are shrunk further, to the variance of the window means that the workers' own window
    means have in common (:func:`_shared_variance`), when that is smaller.
    """
    n = len(point.rows)
    if n == 0:
        return (0.0, ()), np.zeros(0)
    ratio, start = _drift_ratios(point)
    win, means, ok, total, noise = _window_means(ratio, start, window_s)
    if ok.sum() < 2:
        return (0.0, ()), np.ones(n)
    shrink = math.sqrt(max(0.0, 1.0 - noise / total)) if total > 0 else 0.0
    shared = _shared_variance(point.workers, win, ratio)
    if shared is not None:  # several workers: only what they share in a window is the host's
        shrink = min(shrink, math.sqrt(max(shared, 0.0) / total) if total > 0 else 0.0)
    scale = means[ok].mean()
    factor_of = 1.0 + (means / scale - 1.0) * shrink
    factors = factor_of[ok]
    rows = np.where(ok[win], factor_of[win], 1.0)
    return (window_s, tuple(round(float(f), 5) for f in factors)), rows


def _drift_ratios(point: LoadPoint) -> tuple[np.ndarray, np.ndarray]:
    """Each batch's service time over its batch size's mean, deflated by its warm-up and the contention
    slow-down (what is left varies with the host), and its start time."""
    slow = point.slowdown(deflated=False)
    b = np.array([r[0] for r in point.rows])
    x = np.array([point.without_warmup(r[2], r[3]) / slow.get(r[1], 1.0) for r in point.rows])
    ratio = np.empty(len(point.rows))
    for size in np.unique(b):
        ratio[b == size] = x[b == size] / x[b == size].mean()
    return ratio, np.array([r[4] for r in point.rows])


def _window_means(ratio: np.ndarray, start: np.ndarray, window_s: float):
    """Windows of ``window_s`` by start time: each row's window, the windows' means, which windows have
    enough batches (``ENV_MIN_BATCHES``), the variance of those means and its sampling-noise part (the
    unbiased within-window variance over n, averaged)."""
    win = np.floor((start - start.min()) / window_s).astype(np.int64)
    counts = np.bincount(win)
    means = np.bincount(win, weights=ratio) / np.maximum(counts, 1)
    ok = counts >= ENV_MIN_BATCHES
    if ok.sum() < 2:
        return win, means, ok, 0.0, 0.0
    squares = np.bincount(win, weights=ratio**2) / np.maximum(counts, 1)
    noise = float(np.mean((squares - means**2)[ok] / (counts[ok] - 1)))
    return win, means, ok, float(means[ok].var()), noise


DRIFT_SCALES_S = (0.25, 1.0, 4.0, 16.0)


def drift_by_scale(point: LoadPoint, windows_s: tuple[float, ...] = DRIFT_SCALES_S) -> dict[float, float | None]:
    """How the host's drift depends on the time scale: for each window length, the standard deviation of
    the windows' mean service ratio (:func:`_drift_ratios`) with the sampling noise taken out, the
    quantity :func:`fit_environment` fits at 0.25 s (None where a run has fewer than 3 full windows).

    The engines draw a factor per 0.25-s window independently, so for them sd(w) = sd(0.25) · √(0.25 / w):
    a slower decline in a measured run means slow stretches lasting seconds, which make one run differ
    from the next more than the model says. Diagnostic only; nothing is fitted from it.
    """
    out: dict[float, float | None] = {}
    if not point.rows:
        return dict.fromkeys(windows_s)
    ratio, start = _drift_ratios(point)
    span = float(start.max() - start.min())
    for w in windows_s:
        _, _, ok, total, noise = _window_means(ratio, start, w)
        # the last window is usually partial: three full windows at least
        out[w] = math.sqrt(max(total - noise, 0.0)) if ok.sum() >= 3 and span >= 3 * w else None
    return out


ENV_MIN_WORKER_BATCHES = 4  # fewest batches of each worker in a window for it to count in the shared drift


def _shared_variance(workers: np.ndarray, win: np.ndarray, ratio: np.ndarray) -> float | None:
    """Covariance of different workers' window means, averaged over pairs of workers (None: one worker).

    Two workers' means in a window share the host's drift; their own slow-downs and their sampling noise
    are independent, so the covariance keeps the shared part alone. On the 2-core validation host the
    two workers' window means correlated little (-0.6 to +0.7, median +0.15) outside two episodes
    (+0.85): most of a window's variation was one worker's, which the other absorbs by taking the
    queue, so a factor applied to every replica at once must carry only the shared part.
    """
    ids = np.unique(workers)
    if workers.size != win.size or ids.size < 2:
        return None
    nwin = int(win.max()) + 1
    means, enough = [], []
    for w in ids:
        mine = workers == w
        counts = np.bincount(win[mine], minlength=nwin)
        means.append(np.bincount(win[mine], weights=ratio[mine], minlength=nwin) / np.maximum(counts, 1))
        enough.append(counts >= ENV_MIN_WORKER_BATCHES)
    covs = []
    for i in range(ids.size):
        for j in range(i + 1, ids.size):
            both = enough[i] & enough[j]
            if both.sum() >= 3:
                covs.append(float(np.cov(means[i][both], means[j][both])[0, 1]))
    return float(np.mean(covs)) if covs else None


# Back-to-back batches each idle batch is compared with: local enough to follow the host's slow stretches,
# many enough that a local mean is not mostly noise
WARMUP_LOCAL = 16
# Idle-time bins of the warm-up fit (s): doubling from 0.25 ms, so that each bin spans the same ratio
WARMUP_EDGES = (0.0, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, math.inf)


def fit_warmup(points: list[LoadPoint]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Warm-up table after idle from live runs: ``(idle times, factors)``, empty when the runs cannot say.

    Within each run, the smallest batch size's effective service times (divided by the measured
    contention slowdown) that found their worker idle are divided by the mean of the ``WARMUP_LOCAL``
    batches nearest in start order whose oldest request *waited* (served back to back; per bin, the mean
    of the former over the mean of those local means), so that the
    host's drift cancels, between runs and within one: against the run's overall back-to-back mean, idle
    batches, which fall mostly in the host's fast stretches while queues (and back-to-back batches) build
    in its slow ones, looked *faster* than back to back (a table of ~0.76 from drifting service times
    with no warm-up at all). The ratios of all runs are pooled, binned by the worker's idle time
    (doubling bins from 0.25 ms), and each bin with at least ``MIN_GROUP`` samples gives a point:
    (median idle time, mean ratio). A run with fewer than ``MIN_GROUP`` back-to-back batches (a light
    load) adds nothing.
    """
    idle_all, service_all, local_all = [], [], []
    for p in points:
        if not p.rows:
            continue
        slow = p.slowdown(deflated=False)
        b0 = min(b for b, _ in p.groups)
        rows = [(s / slow.get(k, 1.0), t) for b, k, s, t, _ in p.rows if b == b0 and math.isfinite(t)]
        if sum(t == 0.0 for _, t in rows) < MIN_GROUP:
            continue
        service = np.array([s for s, _ in rows])
        idle = np.array([t for _, t in rows])
        waited = np.flatnonzero(idle == 0.0)
        sums = np.concatenate([[0.0], np.cumsum(service[waited])])
        for j in np.flatnonzero(idle > 0.0):
            # the WARMUP_LOCAL back-to-back batches around j (shifted inwards at the run's ends)
            lo = min(max(int(np.searchsorted(waited, j)) - WARMUP_LOCAL // 2, 0), waited.size - WARMUP_LOCAL)
            lo, hi = max(lo, 0), min(max(lo, 0) + WARMUP_LOCAL, waited.size)
            idle_all.append(float(idle[j]))
            service_all.append(float(service[j]))
            local_all.append(float((sums[hi] - sums[lo]) / (hi - lo)))
    if not idle_all:
        return (), ()
    idle, service, local = np.asarray(idle_all), np.asarray(service_all), np.asarray(local_all)
    xs, fs = [], []
    for lo, hi in pairwise(WARMUP_EDGES):
        inside = (idle > lo) & (idle <= hi)
        if inside.sum() >= MIN_GROUP:
            xs.append(round(float(np.median(idle[inside])), 7))
            # a ratio of means: the mean of per-batch ratios would carry 1/local's Jensen bias (~cv²/16)
            fs.append(round(float(service[inside].mean() / local[inside].mean()), 5))
    return tuple(xs), tuple(fs)


def _interpolated_scale(points: list[LoadPoint], rate_per_replica: float, nearest: LoadPoint) -> float:
    """Factor that moves ``nearest``'s mean to the mean interpolated at ``rate_per_replica``."""
    pts = sorted(points, key=lambda p: p.per_replica_rate)
    if len(pts) == 1:
        return 1.0
    xs = np.array([p.per_replica_rate for p in pts])
    ys = np.array([p.mean() for p in pts])
    target = float(np.interp(rate_per_replica, xs, ys))  # flat beyond the measured range
    return target / nearest.mean()


def calibrated_profile(base: Profile, points: list[LoadPoint], arrival_rate: float,
                       drift: bool = True) -> tuple[Profile, float]:
    """A profile of service times *under load* at ``arrival_rate``, and the overhead (s) to add.

    Uses the calibration point nearest in per-replica arrival rate; its samples are rescaled so that
    their mean follows the line through all points' means (clamped at the ends). Batch sizes that the
    live run did not see with enough samples come from ``base`` (the isolated profile), scaled by the
    under-load / isolated ratio of the smallest batch size. The returned profile has one point per
    batch size at concurrency 1 and the busy-worker groups as concurrency points, so that
    ``contention = shared`` reproduces the measured slow-down; ``method.path`` is ``serving-under-load``.
    The ``under_load`` block carries the run's warm-up table and, with ``drift``, its host drift (else the
    drift stays in the samples, drawn independently).
    """
    if not points:
        raise InputError("calibration needs at least one live load point")
    replicas = points[0].replicas
    per_replica = arrival_rate / replicas
    nearest = min(points, key=lambda p: abs(p.per_replica_rate - per_replica))
    if not drift:
        nearest = nearest.without_drift()
    scale = _interpolated_scale(points, per_replica, nearest)
    base_samples = {b: s * scale for b, s in nearest.base_samples().items()}
    b0 = min(base_samples)
    iso_b0 = base.mean(base.batch_sizes[0], 1)
    ratio = float(base_samples[b0].mean() / iso_b0)
    raw_points = []
    for b in sorted(set(base.batch_sizes) | set(base_samples)):
        if b in base_samples and (base_samples[b].size >= MIN_GROUP or b not in base.batch_sizes):
            samples, origin = base_samples[b], "live run under load"
        else:
            samples, origin = np.asarray(base.samples(b, 1)) * ratio, f"isolated profile x {ratio:.4f}"
        raw_points.append({"batch_size": int(b), "concurrency": 1, "samples_s": _round(samples),
                           "origin": origin})
    slow = nearest.slowdown()
    for k in sorted(slow):
        if k > 1:
            raw_points.append({"batch_size": int(b0), "concurrency": int(k),
                               "samples_s": _round(base_samples[b0] * slow[k]),
                               "origin": f"live run: slowdown {slow[k]:.4f} at {k} busy workers"})
    data = {
        "schema_version": UNDER_LOAD_SCHEMA, "source": "measured",
        "model": dict(base.model), "device": dict(base.device), "measured_at": base.measured_at,
        "method": {"path": "serving-under-load",
                   "description": "effective service times (worker unavailable: max(previous done, enqueue) "
                                  "-> response handed off) measured inside a live server under LoadGen "
                                  "Poisson load; see simulator.validate.calibration",
                   "calibration": {"arrival_rate": nearest.arrival_rate, "replicas": replicas,
                                   "utilization": nearest.utilization, "target_arrival_rate": arrival_rate,
                                   "mean_scale": scale, "overhead_s": nearest.overhead_s,
                                   "points": [{"arrival_rate": p.arrival_rate, "mean_s": p.mean(),
                                               "overhead_s": p.overhead_s} for p in points],
                                   **{k: v for k, v in nearest.meta.items() if _jsonable(v)}},
                   "isolated_profile": {"method": base.method.get("path"), "mean_s_batch1": iso_b0,
                                        "under_load_over_isolated": ratio}},
        "points": raw_points,
        "under_load": {"client_overhead_s": nearest.overhead_s, **_idle_block(nearest.warmup),
                       **_environment_block([nearest]),
                       "measured": f"live run under MLPerf LoadGen at {nearest.arrival_rate:.4g} req/s on "
                                   f"{replicas} replica(s); service times rescaled to {arrival_rate:.4g} req/s"},
    }
    return Profile.from_dict(data, origin=f"calibration at {arrival_rate:.4g} req/s"), nearest.overhead_s


def under_load_profile(base: Profile, points: list[LoadPoint], drift: bool = True, ordered: bool = False,
                       level: dict | None = None) -> Profile:
    """One profile for every load: service times under load with ``under_load.load_factors``.

    The live calibration runs (several loads, repeats) give one mean effective service time each; a
    least-squares line through (per-replica arrival rate, mean) averages out their run-to-run noise.
    The samples are those of the run nearest the median rate, and the factors follow the line at the
    lowest and highest measured rates (flat beyond, see :mod:`simulator.under_load`); the client-side
    overhead is the mean over the runs. ``simulate`` and ``plan`` read all of it from the file.

    ``drift``: also carry the runs' host drift (``under_load.environment``, every run's window factors
    pooled), with the samples deflated by it; False leaves the drift in the samples, drawn
    independently (the validation report publishes both).

    ``ordered`` (implies no ``environment``): the smallest batch size's samples are every run's
    :meth:`LoadPoint.series` one after another, each scaled so that its mean is the line's at the
    reference run's load (the order within a run is kept, its level against the others is not), with
    ``under_load.service_order``:
    ``simulate`` draws them in their measured order (:mod:`simulator.ordered`), so slow stretches keep
    their length. The block length is the longest any run's autocorrelation asks for
    (:func:`~simulator.ordered.block_length`).

    ``level``: :func:`host_level` of these ``points``, when the caller has it already (it refits every
    run); ``under_load.host_level`` is written from it.
    """
    if not points:
        raise InputError("an under-load profile needs at least one live load point")
    level = _host_level_block(points, level if level is not None else host_level(points))
    table = fit_warmup(points)  # pooled over every run: more idle batches per bin than one run has
    points = [refit_point(p, table, drift=drift and not ordered) for p in points]
    rates = np.array([p.per_replica_rate for p in points])
    means = np.array([p.mean() for p in points])
    ref = points[int(np.argsort(rates)[len(rates) // 2])]
    prof, _ = calibrated_profile(base, [ref], ref.arrival_rate, drift=drift and not ordered)
    data = prof.to_dict()
    lo, hi = float(rates.min()), float(rates.max())
    fitted = hi > lo * 1.01 and len(points) >= 2
    slope, intercept = np.polyfit(rates, means, 1) if fitted else (0.0, float(means.mean()))
    sample_mean = ref.mean()
    order_block = {}
    if ordered:
        # each run's mean onto the line at the reference load: the order within a run is kept, its level
        # against the other runs is not (a run a few percent slow is a replica at capacity near saturation)
        ref_level = max(intercept + slope * ref.per_replica_rate, 1e-9)
        series = [x * (ref_level / x.mean()) for x in (p.series() for p in points)]
        samples = np.concatenate(series)
        b0 = min(b for b, _ in ref.groups)
        if b0 != prof.batch_sizes[0]:
            raise InputError(f"an ordered under-load profile needs the live runs' smallest batch size ({b0}) to be "
                             f"the profile's smallest ({prof.batch_sizes[0]}): the order is read from it")
        for raw in data["points"]:
            if raw["batch_size"] == b0 and raw["concurrency"] == 1:
                raw["samples_s"] = _round(samples)
                raw["origin"] = f"{len(points)} live runs in measured order, each scaled to the line's mean at this load"
        sample_mean = float(samples.mean())
        order_block = {"service_order": {"block": int(max(block_length(x) for x in series))}}
    if fitted:
        line = [(r, max(intercept + slope * r, 1e-9) / sample_mean) for r in (lo, hi)]
    else:
        line = [(ref.per_replica_rate, float(means.mean() / sample_mean))]
    data["under_load"] = {
        "client_overhead_s": float(np.mean([p.overhead_s for p in points])),
        "load_factors": [{"per_replica_rate": round(r, 4), "factor": round(f, 6)} for r, f in line],
        **_idle_block(table), **_environment_block(points), **order_block, **level, **_overhead_block(points),
        "measured": f"{len(points)} live runs under MLPerf LoadGen on {ref.replicas} replica(s), "
                    f"{lo * ref.replicas:.4g}-{hi * ref.replicas:.4g} req/s; load factors from a least-squares "
                    "line of mean back-to-back effective service time against per-replica arrival rate; idle "
                    "factors from every run's batches binned by the worker's idle time (fit_warmup)"
                    + ("; service times in measured order" if ordered else ""),
    }
    data["method"]["calibration"]["points"] = [
        {"arrival_rate": p.arrival_rate, "mean_s": p.mean(), "overhead_s": p.overhead_s} for p in points]
    return Profile.from_dict(data, origin=f"under load, {len(points)} live runs")


LEVEL_EPISODE_SD = 3.0  # a run further than this many robust sd from the others is an episode, not a level


def host_level(points: list[LoadPoint]) -> dict:
    """How much the host's level changes from one run to the next, beyond each run's sampling noise.

    Each run's mean back-to-back service (:meth:`LoadPoint.series`, drift left in) over the least-squares
    line against the per-replica arrival rate (the load's own effect) is its level. ``sd``: their relative
    standard deviation, with the line's two parameters (n / (n − 2)) and the runs' mean sampling variance
    (:meth:`LoadPoint.mean_noise`) taken out, over the runs within ``LEVEL_EPISODE_SD`` robust sd (1.4826
    × median absolute deviation) of the median (a run beyond is an *episode*, listed: a few runs cannot
    say how often those come); None with fewer than 4 typical runs or no variation beyond the noise.
    A prediction from these runs may be off by that much in service time on another run; the validation
    report states it beside each load's measured level (:func:`levels_against`).
    """
    out: dict = {"runs": len(points), "sd": None}
    if len(points) < 4:
        return out | {"reason": "fewer than 4 runs"}
    levels = np.array(levels_against(points, points))
    med = float(np.median(levels))
    robust = 1.4826 * float(np.median(np.abs(levels - med)))
    typical = np.abs(levels - med) <= LEVEL_EPISODE_SD * robust if robust > 0 else np.ones(levels.size, bool)
    n = int(typical.sum())
    out["episodes"] = [round(float(v), 4) for v in levels[~typical]]
    if n < 4:
        return out | {"reason": "fewer than 4 typical runs"}
    noise = float(np.mean([p.mean_noise() for p, ok in zip(points, typical) if ok]))
    raw = float(np.mean(np.square(levels[typical] - levels[typical].mean()))) * n / (n - 2)
    out |= {"raw_sd": round(math.sqrt(raw), 5), "noise_sd": round(math.sqrt(noise), 5)}
    if raw <= noise:
        return out | {"reason": "no variation beyond the runs' sampling noise"}
    return out | {"sd": round(math.sqrt(raw - noise), 5)}


def levels_against(calibration: list[LoadPoint], runs: list[LoadPoint]) -> list[float]:
    """Each of ``runs``' mean service time over the ``calibration`` runs' least-squares line against the
    per-replica arrival rate, minus 1: how much slower (> 0) or faster the host was in that run than the
    calibration says at its load. Every run is deflated by the calibration runs' pooled warm-up table
    (:func:`fit_warmup`) with its drift left in, as the under-load profile's samples are."""
    table = fit_warmup(calibration)
    cal = [refit_point(p, table, drift=False) for p in calibration]
    rates = np.array([p.per_replica_rate for p in cal])
    means = np.array([float(p.series().mean()) for p in cal])
    slope, intercept = np.polyfit(rates, means, 1) if len(cal) >= 2 and np.ptp(rates) > 0 else (0.0, means.mean())
    out = []
    for p in runs:
        q = refit_point(p, table, drift=False)
        out.append(float(q.series().mean() / max(intercept + slope * q.per_replica_rate, 1e-12) - 1.0))
    return out


def _overhead_block(points: list[LoadPoint]) -> dict:
    """The ``client_overhead_by_load`` entry of an ``under_load`` block: per load (the runs aimed at one
    utilization), the mean per-replica rate and the mean of each run's LoadGen-minus-server difference in
    the mean and each percentile (nothing unless every run has them)."""
    if not points or any("overhead_by_key_s" not in p.meta for p in points):
        return {}
    rows = []
    for u in sorted({p.utilization for p in points}):
        group = [p for p in points if p.utilization == u]
        rate = float(np.mean([p.per_replica_rate for p in group]))
        if rows and rate <= rows[-1]["per_replica_rate"] * 1.001:
            continue  # two targets that ended at the same rate: the table needs increasing rates
        rows.append({"per_replica_rate": round(rate, 4)} | {
            k: round(float(np.mean([p.meta["overhead_by_key_s"][k] for p in group])), 9)
            for k in ("mean", *OVERHEAD_KEYS)})
    return {"client_overhead_by_load": rows}


def _host_level_block(points: list[LoadPoint], level: dict) -> dict:
    """The ``host_level`` entry of an ``under_load`` block from ``level`` (:func:`host_level` of the runs;
    sd 0 when they vary no more than their sampling noise; nothing when too few runs say)."""
    sd = level["sd"] if level["sd"] is not None else (0.0 if "raw_sd" in level else None)
    if sd is None:
        return {}
    return {"host_level": {"sd": sd, "run_s": round(float(np.median([p.duration_s for p in points])), 3),
                           "runs": level["runs"]}}


def _idle_block(table: tuple[tuple[float, ...], tuple[float, ...]]) -> dict:
    """The ``idle_factors`` entry of an ``under_load`` block (nothing without a table)."""
    xs, fs = table
    return {"idle_factors": [{"idle_s": x, "factor": f} for x, f in zip(xs, fs)]} if xs else {}


def _environment_block(points: list[LoadPoint]) -> dict:
    """The ``environment`` entry of an ``under_load`` block: every run's window factors pooled."""
    factors = [f for p in points for f in p.environment[1]]
    if not factors:
        return {}
    return {"environment": {"window_s": max(p.environment[0] for p in points), "factors": factors}}


def _round(x: np.ndarray) -> list[float]:
    return [round(float(v), 9) for v in x if math.isfinite(v) and v > 0]


def _jsonable(v: object) -> bool:
    return isinstance(v, (str, int, float, bool, type(None), list, dict))
