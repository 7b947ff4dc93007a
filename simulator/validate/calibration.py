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
  pure delay (a deterministic post-processing stage of the scenario).

A calibration point pools the short live runs at one load that precede the run to predict (see
:func:`simulator.validate.harness.evaluate`); a prediction at another load uses the nearest point's
samples with their mean interpolated linearly in the per-replica arrival rate. The samples keep their
start order, so that a block bootstrap can keep their autocorrelation (:mod:`.ordered`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..profiles import Profile
from .ordered import ServiceOrder
from .server import ServerRecords

__all__ = ["LoadPoint", "busy_fraction", "calibrated_profile", "effective_batches", "load_point",
           "under_load_profile"]

UNDER_LOAD_SCHEMA = "1.1"  # profiles with an under_load block (simulator.under_load)
MIN_GROUP = 30  # fewest samples for a (batch size, busy workers) group to stand on its own


def effective_batches(records: ServerRecords, batch_timeout_s: float = 0.0) -> dict[str, np.ndarray]:
    """One row per batch: effective service time (s), batch size, busy workers at its start, start time,
    and whether its worker was idle when the batch's oldest request arrived (``found_idle``).

    With a batch timeout the worker may wait for its batch to fill; that wait is queueing (the simulator's
    batcher models it), so the effective start is the batch's ``started`` itself.
    """
    if records.n == 0:
        return {"service_s": np.zeros(0), "batch_size": np.zeros(0, np.int64), "busy": np.zeros(0, np.int64),
                "started": np.zeros(0), "found_idle": np.zeros(0, bool)}
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
    service, sizes, busy, started, idle = [], [], [], [], []
    for b in batches:
        w = b["worker"]
        free_at = prev_done.get(w, -math.inf)
        if batch_timeout_s > 0:
            begin = b["started"]
        else:
            begin = min(max(free_at, b["first_enq"]), b["started"])
        prev_done[w] = b["done"]
        service.append(b["done"] - begin)
        sizes.append(b["batch_size"])
        busy.append(b["busy"])
        started.append(b["started"])
        idle.append(free_at <= b["first_enq"])
    return {"service_s": np.asarray(service), "batch_size": np.asarray(sizes, np.int64),
            "busy": np.asarray(busy, np.int64), "started": np.asarray(started), "found_idle": np.asarray(idle)}


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
    """

    arrival_rate: float
    replicas: int
    utilization: float
    groups: dict[tuple[int, int], np.ndarray]
    overhead_s: float
    meta: dict = field(default_factory=dict)
    rows: list[tuple[int, int, float]] = field(default_factory=list, repr=False)

    @property
    def per_replica_rate(self) -> float:
        return self.arrival_rate / self.replicas

    def base_samples(self) -> dict[int, np.ndarray]:
        """Per batch size: samples deflated to one busy worker (divided by the measured slowdown)."""
        slow = self.slowdown()
        out: dict[int, list] = {}
        for (b, k), s in self.groups.items():
            out.setdefault(b, []).append(s / slow.get(k, 1.0))
        return {b: np.concatenate(v) for b, v in out.items()}

    def slowdown(self) -> dict[int, float]:
        """busy workers k → mean effective service at k over the mean at 1 (smallest batch size)."""
        b0 = min(b for b, _ in self.groups)
        at = {k: s for (b, k), s in self.groups.items() if b == b0 and s.size >= MIN_GROUP}
        if 1 not in at:
            return {k: 1.0 for k in at}
        base = at[1].mean()
        return {k: max(float(s.mean() / base), 1.0) if k > 1 else 1.0 for k, s in at.items()}

    def order(self) -> ServiceOrder:
        """The smallest batch size's effective service times in start order, deflated to one busy worker
        (the values of ``base_samples()``), as bootstrap levels that keep their autocorrelation."""
        slow = self.slowdown()
        b0 = min(b for b, _ in self.groups)
        series = np.asarray([s / slow.get(k, 1.0) for b, k, s in self.rows if b == b0])
        return ServiceOrder.from_series(series)

    def mean(self) -> float:
        """Mean effective service of the smallest batch size at one busy worker (s)."""
        return float(self.base_samples()[min(b for b, _ in self.groups)].mean())


def load_point(records: ServerRecords, loadgen_mean_latency_s: float, arrival_rate: float, replicas: int,
               utilization: float, batch_timeout_s: float = 0.0, meta: dict | None = None) -> LoadPoint:
    """Build a :class:`LoadPoint` from one live run's server records and LoadGen's mean latency."""
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
    rows = [(int(b), key_of[(int(b), int(k))], float(s))
            for s, b, k in zip(eff["service_s"], eff["batch_size"], eff["busy"])]
    overhead = loadgen_mean_latency_s - float(records.sojourn_s.mean())
    return LoadPoint(arrival_rate, replicas, utilization, merged, max(overhead, 0.0),
                     dict(meta or {}, overhead_raw_s=overhead, requests=records.n), rows)


def _interpolated_scale(points: list[LoadPoint], rate_per_replica: float, nearest: LoadPoint) -> float:
    """Factor that moves ``nearest``'s mean to the mean interpolated at ``rate_per_replica``."""
    pts = sorted(points, key=lambda p: p.per_replica_rate)
    if len(pts) == 1:
        return 1.0
    xs = np.array([p.per_replica_rate for p in pts])
    ys = np.array([p.mean() for p in pts])
    target = float(np.interp(rate_per_replica, xs, ys))  # flat beyond the measured range
    return target / nearest.mean()


def calibrated_profile(base: Profile, points: list[LoadPoint], arrival_rate: float) -> tuple[Profile, float]:
    """A profile of service times *under load* at ``arrival_rate``, and the overhead (s) to add.

    Uses the calibration point nearest in per-replica arrival rate; its samples are rescaled so that
    their mean follows the line through all points' means (clamped at the ends). Batch sizes that the
    live run did not see with enough samples come from ``base`` (the isolated profile), scaled by the
    under-load / isolated ratio of the smallest batch size. The returned profile has one point per
    batch size at concurrency 1 and the busy-worker groups as concurrency points, so that
    ``contention = shared`` reproduces the measured slow-down; ``method.path`` is ``serving-under-load``.
    """
    if not points:
        raise InputError("calibration needs at least one live load point")
    replicas = points[0].replicas
    per_replica = arrival_rate / replicas
    nearest = min(points, key=lambda p: abs(p.per_replica_rate - per_replica))
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
        "under_load": {"client_overhead_s": nearest.overhead_s,
                       "measured": f"live run under MLPerf LoadGen at {nearest.arrival_rate:.4g} req/s on "
                                   f"{replicas} replica(s); service times rescaled to {arrival_rate:.4g} req/s"},
    }
    return Profile.from_dict(data, origin=f"calibration at {arrival_rate:.4g} req/s"), nearest.overhead_s


def under_load_profile(base: Profile, points: list[LoadPoint]) -> Profile:
    """One profile for every load: service times under load with ``under_load.load_factors``.

    The live calibration runs (several loads, repeats) give one mean effective service time each; a
    least-squares line through (per-replica arrival rate, mean) averages out their run-to-run noise.
    The samples are those of the run nearest the median rate, and the factors follow the line at the
    lowest and highest measured rates (flat beyond, see :mod:`simulator.under_load`); the client-side
    overhead is the mean over the runs. ``simulate`` and ``plan`` read all of it from the file.
    """
    if not points:
        raise InputError("an under-load profile needs at least one live load point")
    rates = np.array([p.per_replica_rate for p in points])
    means = np.array([p.mean() for p in points])
    ref = points[int(np.argsort(rates)[len(rates) // 2])]
    prof, _ = calibrated_profile(base, [ref], ref.arrival_rate)
    data = prof.to_dict()
    lo, hi = float(rates.min()), float(rates.max())
    if hi > lo * 1.01 and len(points) >= 2:
        slope, intercept = np.polyfit(rates, means, 1)
        line = [(r, max(intercept + slope * r, 1e-9) / ref.mean()) for r in (lo, hi)]
    else:
        line = [(ref.per_replica_rate, float(means.mean() / ref.mean()))]
    data["under_load"] = {
        "client_overhead_s": float(np.mean([p.overhead_s for p in points])),
        "load_factors": [{"per_replica_rate": round(r, 4), "factor": round(f, 6)} for r, f in line],
        "measured": f"{len(points)} live runs under MLPerf LoadGen on {ref.replicas} replica(s), "
                    f"{lo * ref.replicas:.4g}-{hi * ref.replicas:.4g} req/s; factors from a least-squares line "
                    "of mean effective service time against per-replica arrival rate",
    }
    data["method"]["calibration"]["points"] = [
        {"arrival_rate": p.arrival_rate, "mean_s": p.mean(), "overhead_s": p.overhead_s} for p in points]
    return Profile.from_dict(data, origin=f"under load, {len(points)} live runs")


def _round(x: np.ndarray) -> list[float]:
    return [round(float(v), 9) for v in x if math.isfinite(v) and v > 0]


def _jsonable(v: object) -> bool:
    return isinstance(v, (str, int, float, bool, type(None), list, dict))
