"""Replications, warm-up deletion, confidence intervals and the precision rule.

* Replication r runs on ``replication_seeds(seed, ·)[r]`` (``SeedSequence.spawn``): independent streams,
  and adding replications never changes the earlier ones.
* Warm-up: MSER-5 (White 1997; batch means of 5 over the latency series of answered requests in arrival
  order, truncation point minimising the marginal standard error, searched over the first half), a fixed
  fraction, or none. Everything that arrived before the cut is deleted; the count is reported.
* Confidence intervals: each replication gives one estimate of the mean and of each percentile; the
  95 % interval is Student's t across replications, mean ± t(0.975, R-1)·s/√R (replications are i.i.d.,
  their estimates near normal for long runs). Percentile point estimates are the average of the
  per-replication percentiles.
* Precision rule (when ``run.replications`` is None): run ``min_replications``, then add one at a time
  until the 95 % half-width of p99 over p99 is at most ``target_rel_halfwidth`` or ``max_replications``
  is spent. Only one replication's per-request arrays are alive at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .replication import ReplicationOutput, ReplicationSummary
from .result import PERCENTILES
from .scenario import Run
from .variates import replication_seeds

__all__ = ["MonteCarlo", "little_l", "mser5", "run_replications", "summarize", "t_interval", "warmup_cut"]

QUANTILES = tuple(PERCENTILES.values())
BREAKDOWN_KEYS = ("cache", "batching_wait", "queueing_wait", "service", "stages")


def mser5(series: np.ndarray, batch: int = 5) -> int:
    """Observations to delete from the start of ``series`` by the MSER-5 rule.

    The series is cut into batch means Z_1..Z_m of ``batch`` observations; the truncation d (in
    batches, 0 ≤ d ≤ m/2) minimises Σ_{j>d} (Z_j - Z̄_d)² / (m - d)². Returns ``batch * d``.
    """
    x = np.asarray(series, dtype=np.float64)
    m = x.size // batch
    if m < 4:
        return 0
    z = x[: m * batch].reshape(m, batch).mean(axis=1)
    z = z - z.mean()  # centring keeps the suffix sums well conditioned
    s1 = np.cumsum(z[::-1])[::-1]
    s2 = np.cumsum((z * z)[::-1])[::-1]
    d = np.arange(m // 2 + 1)
    k = (m - d).astype(np.float64)
    sse = np.maximum(s2[d] - s1[d] ** 2 / k, 0.0)
    stat = sse / (k * k)
    # the earliest truncation among those equal up to rounding (a flat tail would otherwise pick noise)
    best = int(np.flatnonzero(stat <= stat.min() + 1e-9 * stat.max())[0])
    return batch * best


def warmup_cut(output: ReplicationOutput, run: Run) -> int:
    """Index (arrival order) of the first request kept after warm-up deletion."""
    n = output.n
    if run.warmup == "none":
        return 0
    if run.warmup == "fraction":
        return math.floor(run.warmup_fraction * n)
    answered = np.flatnonzero(~np.isnan(output.latency))
    k = mser5(output.latency[answered])
    return int(answered[k]) if 0 < k < answered.size else 0


def little_l(arrival: np.ndarray, departure: np.ndarray) -> float:
    """Time-average number in system over [first arrival, last departure], from the sojourn intervals.

    A sweep over the arrival (+1) and departure (-1) instants integrates the step function N(t); it
    does not use the sojourn sum, so L = λ·W is a real check of the engine's bookkeeping.
    """
    if arrival.size == 0:
        return math.nan
    t = np.concatenate([arrival, departure])
    step = np.concatenate([np.ones(arrival.size), -np.ones(departure.size)])
    order = np.argsort(t, kind="stable")
    t, step = t[order], step[order]
    level = np.cumsum(step)[:-1]
    area = float(np.sum(level * np.diff(t)))
    span = float(t[-1] - t[0])
    return area / span if span > 0 else math.nan


def summarize(output: ReplicationOutput, run: Run) -> ReplicationSummary:
    """Reduce one replication to its estimates after warm-up deletion (seconds, requests/s)."""
    cut = warmup_cut(output, run)
    lat = output.latency[cut:]
    dropped = output.dropped[cut:]
    answered = ~np.isnan(lat) & ~dropped
    x = lat[answered]
    hits = output.cache_hit[cut:][answered]
    completed = int(x.size)
    if completed:
        q = np.quantile(x, QUANTILES)
        quantiles = {p: float(v) for p, v in zip(QUANTILES, q)}
        mean = float(x.mean())
    else:
        quantiles = dict.fromkeys(QUANTILES, math.nan)
        mean = math.nan
    b = output.batch_size[cut:][answered]
    in_batch = b > 0
    batches_f = float(np.sum(1.0 / b[in_batch])) if in_batch.any() else 0.0
    breakdown = {k: math.nan for k in BREAKDOWN_KEYS}
    if completed:
        breakdown = {
            "cache": float(np.where(hits, x, 0.0).mean()),
            "batching_wait": float(output.batch_wait[cut:][answered].mean()),
            "queueing_wait": float(output.queue_wait[cut:][answered].mean()),
            "service": float(output.service[cut:][answered].mean()),
            "stages": float(output.stage_time[cut:][answered].mean()),
        }
    all_answered = ~np.isnan(output.latency) & ~output.dropped
    t0 = float(output.arrival[0]) if output.n else 0.0
    span_all = output.end_time - t0
    span_kept = output.end_time - float(output.arrival[cut]) if cut < output.n else math.nan
    util = output.busy_time / (output.servers * span_all) if output.servers and span_all > 0 else math.nan
    arr_all = output.arrival[all_answered]
    return ReplicationSummary(
        completed=completed,
        dropped=int(np.count_nonzero(dropped)),
        latency_mean=mean,
        quantiles=quantiles,
        cache_hits=int(np.count_nonzero(hits)),
        batches=round(batches_f),
        batch_size_mean=float(np.count_nonzero(in_batch) / batches_f) if batches_f else math.nan,
        breakdown=breakdown,
        utilization=float(util),
        throughput=completed / span_kept if span_kept and span_kept > 0 else math.nan,
        warmup_deleted=cut,
        little_l=little_l(arr_all, arr_all + output.latency[all_answered]),
    )


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (lo, hi) of i.i.d. replication estimates (nan if R < 2)."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan
    hw = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - hw, mean + hw


def _rel_halfwidth(values) -> float:
    mean, lo, hi = t_interval(values)
    if not (math.isfinite(lo) and mean > 0):
        return math.inf
    return (hi - lo) / 2 / mean


@dataclass
class MonteCarlo:
    """Replication summaries and the precision reached."""

    summaries: list[ReplicationSummary]
    precision: dict
    notes: list[str] = field(default_factory=list)

    @property
    def replications(self) -> int:
        return len(self.summaries)

    def estimate(self, get: Callable[[ReplicationSummary], float]) -> tuple[float, float, float]:
        """Mean and 95 % t-interval of one figure across replications."""
        return t_interval([get(s) for s in self.summaries])


def run_replications(replicate: Callable[[np.random.SeedSequence], ReplicationSummary], run: Run,
                     seed: int, progress=None, *, workers: int = 1) -> MonteCarlo:
    """Run replications until ``run``'s count or precision rule is satisfied.

    ``replicate(seed_seq)`` simulates one replication on its own streams and returns its summary.
    ``progress`` (a tqdm-like object) gets ``update(1)`` per replication.

    ``workers`` > 1 runs replications in threads (worth it only for engines that release the GIL, like
    the compiled one). The stopping rule is still applied one replication at a time, in seed order, and
    replications computed beyond the stopping point are discarded, so a parallel run returns exactly the
    summaries, and hence the JSON, of a serial one.
    """
    fixed = run.replications
    budget = fixed if fixed is not None else run.max_replications
    seeds = replication_seeds(seed, budget)
    first = fixed if fixed is not None else run.min_replications
    p99 = PERCENTILES["p99"]
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def compute(indices: range) -> list[ReplicationSummary]:
        batch = [seeds[r] for r in indices]
        out = list(pool.map(replicate, batch)) if pool is not None else [replicate(sq) for sq in batch]
        if progress is not None:
            progress.update(len(out))
        return out

    try:
        summaries: list[ReplicationSummary] = compute(range(first))
        rel = _rel_halfwidth([s.quantiles[p99] for s in summaries])
        pending: list[ReplicationSummary] = []
        while fixed is None and rel > run.target_rel_halfwidth and len(summaries) < budget:
            if not pending:
                start = len(summaries)
                pending = compute(range(start, min(budget, start + max(workers, 1))))
            summaries.append(pending.pop(0))
            rel = _rel_halfwidth([s.quantiles[p99] for s in summaries])
    finally:
        if pool is not None:
            pool.shutdown()
    rel_mean = _rel_halfwidth([s.latency_mean for s in summaries])
    precision = {
        "rule": "fixed replications" if fixed is not None else "sequential: add replications until p99's "
                "95% CI relative half-width <= target",
        "interval": "Student t across replications (95%)",
        "target_rel_halfwidth": run.target_rel_halfwidth,
        "p99_rel_halfwidth": rel if math.isfinite(rel) else None,
        "mean_rel_halfwidth": rel_mean if math.isfinite(rel_mean) else None,
        "met": bool(rel <= run.target_rel_halfwidth),
        "replications": len(summaries),
    }
    notes = []
    if fixed is None and not precision["met"]:
        notes.append(f"precision target not met: p99 relative half-width {rel:.3g} > "
                     f"{run.target_rel_halfwidth:g} after {len(summaries)} replications (max_replications)")
    return MonteCarlo(summaries, precision, notes)
