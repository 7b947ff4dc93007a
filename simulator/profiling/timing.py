"""Timing harness: warm-up, a stopping rule on the mean's confidence interval, concurrent requests.

A *runner* is any callable ``runner(x) -> numpy array`` that returns only when the result is ready
(TensorFlow results are materialised with ``.numpy()``, CUDA work is synchronised). A *runner factory*
``factory() -> runner`` gives each worker thread its own runner, because a TFLite interpreter must not be
shared between threads.

Stopping rule (per point): keep sampling until at least ``min_samples`` samples are in and the 95%
confidence half-width of the mean is ≤ ``rel_ci`` × mean, or until ``max_seconds`` or ``max_samples``
runs out. The half-width uses batch means (20 batches) once there are ≥ 100 samples, because successive
timings on a shared machine are correlated (a noisy neighbour slows a run of calls, not one call) and an
i.i.d. interval would be too narrow. Which of these ended sampling is recorded as the point's outcome.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from ..validation import check_integer, check_positive
from .environment import loadavg

__all__ = ["Measurement", "StoppingRule", "ci_half_width", "measure_concurrent", "sample_concurrently",
           "stop_outcome", "warm_up"]

Runner = Callable[[np.ndarray], np.ndarray]
RunnerFactory = Callable[[], Runner]

_BATCHES = 20


@dataclass(frozen=True)
class StoppingRule:
    """When to stop sampling one measurement point.

    Parameters
    ----------
    min_samples : int
        Fewest samples before the precision test may stop sampling (unless a budget runs out first).
    max_samples : int
        Hard cap on samples per point.
    max_seconds : float
        Wall-clock budget per point in seconds, warm-up excluded.
    rel_ci : float
        Target 95% CI half-width of the mean, as a fraction of the mean (0.01 = ±1%).
    warmup_calls : int
        Fewest warm-up calls per worker (excluded from the samples).
    warmup_seconds : float
        Warm-up continues until this many seconds have passed (capped at 10 × warmup_calls calls), so that
        a fast model warms its caches and a slow one (or an XLA compile) is not held for long.
    """

    min_samples: int = 500
    max_samples: int = 100_000
    max_seconds: float = 60.0
    rel_ci: float = 0.01
    warmup_calls: int = 5
    warmup_seconds: float = 1.0

    def __post_init__(self) -> None:
        check_integer("min_samples", self.min_samples, minimum=2)
        check_integer("max_samples", self.max_samples, minimum=2)
        check_positive("max_seconds", self.max_seconds)
        check_positive("rel_ci", self.rel_ci)
        check_integer("warmup_calls", self.warmup_calls, minimum=0)
        if not (math.isfinite(self.warmup_seconds) and self.warmup_seconds >= 0):
            check_positive("warmup_seconds", self.warmup_seconds)

    def describe(self) -> dict:
        d = asdict(self)
        d["rule"] = ("sample until n >= min_samples and the 95% CI half-width of the mean (batch means, "
                     f"{_BATCHES} batches once n >= 100) <= rel_ci * mean, or until max_seconds / max_samples")
        return d


def ci_half_width(samples: np.ndarray) -> float:
    """95% confidence half-width of the mean (seconds); batch means for n ≥ 100, i.i.d. t otherwise."""
    x = np.asarray(samples, dtype=float)
    n = x.size
    if n < 2:
        return math.inf
    if n >= 100:
        size = n // _BATCHES
        means = x[n - size * _BATCHES:].reshape(_BATCHES, size).mean(axis=1)
        return float(stats.t.ppf(0.975, _BATCHES - 1) * means.std(ddof=1) / math.sqrt(_BATCHES))
    return float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))


class LoadSampler:
    """1-minute load average sampled during a point, at most once a second (cheap: one syscall)."""

    def __init__(self) -> None:
        self.start = loadavg()
        self.one_minute: list[float] = [self.start[0]] if self.start else []
        self._last = time.perf_counter()

    def poll(self) -> None:
        now = time.perf_counter()
        if now - self._last >= 1.0:
            self._last = now
            la = loadavg()
            if la:
                self.one_minute.append(la[0])

    def record(self) -> dict:
        end = loadavg()
        values = self.one_minute + ([end[0]] if end else [])
        return {"start": self.start, "end": end,
                "max_1min": max(values) if values else None,
                "mean_1min": round(sum(values) / len(values), 2) if values else None,
                "samples": len(values)}


@dataclass
class Measurement:
    """Samples of one point and how sampling ended.

    ``samples_s`` are service times in seconds in completion order. ``handoff_s`` (serving path only)
    is the rest of each request's end-to-end time: enqueue → dequeue plus response-ready → client wakes.
    """

    samples_s: np.ndarray
    outcome: str
    wall_s: float
    warmup_calls: int
    handoff_s: np.ndarray | None = None
    loadavg: dict = field(default_factory=dict)

    @property
    def throughput_rps(self) -> float:
        """Completed requests per second of wall time across all workers."""
        return self.samples_s.size / self.wall_s if self.wall_s > 0 else math.nan

    def summary(self) -> dict:
        s = self.samples_s
        mean = float(s.mean())
        hw = ci_half_width(s)
        out = {"n": int(s.size), "mean_s": mean, "ci95_half_width_s": hw,
               "ci95_rel": hw / mean if mean > 0 else math.inf,
               "p50_s": float(np.quantile(s, 0.5)), "p99_s": float(np.quantile(s, 0.99)),
               "cv": float(s.std(ddof=1) / mean) if s.size > 1 else 0.0,
               "stopping_outcome": self.outcome, "wall_s": self.wall_s, "warmup_calls": self.warmup_calls,
               "throughput_rps": self.throughput_rps, "loadavg": self.loadavg}
        if self.handoff_s is not None:
            out["handoff_mean_s"] = float(self.handoff_s.mean())
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def warm_up(runner: Runner, x: np.ndarray, rule: StoppingRule) -> int:
    """Call ``runner`` until the warm-up rule is met; return the number of calls."""
    return _warm_up(lambda: runner(x), rule)


def _warm_up(call: Callable[[], object], rule: StoppingRule) -> int:
    calls = 0
    start = time.perf_counter()
    cap = max(10 * rule.warmup_calls, 1)
    while calls < rule.warmup_calls or (time.perf_counter() - start < rule.warmup_seconds and calls < cap):
        call()
        calls += 1
    return calls


def stop_outcome(samples: np.ndarray, rule: StoppingRule, elapsed: float) -> str | None:
    """Why sampling should stop now (``converged``, ``time_budget``, ``sample_budget``), or None."""
    n = samples.size
    if n >= rule.max_samples:
        return "sample_budget"
    if elapsed >= rule.max_seconds and n >= 2:
        return "time_budget"
    if n >= rule.min_samples:
        mean = samples.mean()
        if ci_half_width(samples) <= rule.rel_ci * mean:
            return "converged"
    return None


def measure_concurrent(factory: RunnerFactory, make_input: Callable[[int], np.ndarray], concurrency: int,
                       rule: StoppingRule) -> Measurement:
    """Bare-call timing with ``concurrency`` requests in flight on as many worker threads.

    Each worker owns a runner and an input and times each of its calls (``perf_counter`` around the call);
    all workers start together after their own warm-up. With concurrency 1 the caller's thread does the
    work, so nothing else competes with it.
    """
    concurrency = check_integer("concurrency", concurrency, minimum=1)
    if concurrency == 1:
        runner = factory()
        x = make_input(0)
        warm = warm_up(runner, x, rule)
        load = LoadSampler()
        buf: list[float] = []
        start = last_check = time.perf_counter()
        outcome = None
        while outcome is None:
            t0 = time.perf_counter()
            runner(x)
            t1 = time.perf_counter()
            buf.append(t1 - t0)
            # Checking the rule costs O(n); do it a few times a second, not after every call.
            if t1 - last_check > 0.2 or len(buf) >= rule.max_samples:
                last_check = t1
                outcome = stop_outcome(np.asarray(buf), rule, t1 - start)
                load.poll()
        wall = time.perf_counter() - start
        return Measurement(np.asarray(buf), outcome, wall, warm, loadavg=load.record())

    def start_worker(i: int) -> Callable[[], tuple[float]]:
        runner = factory()
        x = make_input(i)

        def one_sample() -> tuple[float]:
            t0 = time.perf_counter()
            runner(x)
            return (time.perf_counter() - t0,)

        return one_sample

    return sample_concurrently(start_worker, concurrency, rule)


def sample_concurrently(start_worker: Callable[[int], Callable[[], tuple[float, ...]]], concurrency: int,
                        rule: StoppingRule, *, handoff: bool = False) -> Measurement:
    """Sample on ``concurrency`` threads at once until ``rule`` stops the point.

    ``start_worker(i)`` runs in worker thread ``i`` and returns its ``one_sample()``, which makes one timed
    request and returns ``(service_s,)``, or ``(service_s, handoff_s)`` when ``handoff`` is set. Each worker
    warms up with ``one_sample()`` calls (the warm-up rule of :func:`warm_up`, samples discarded); then all
    start together and sample until the stopping rule, polled on the pooled service times, ends the point
    or a worker fails. The first error of a worker is raised here.
    """
    columns: list[list[list[float]]] = [[[] for _ in range(2 if handoff else 1)] for _ in range(concurrency)]
    warm_counts = [0] * concurrency
    errors: list[BaseException] = []
    ready = threading.Barrier(concurrency + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        try:
            one_sample = start_worker(i)
            warm_counts[i] = _warm_up(one_sample, rule)
        except BaseException as exc:
            errors.append(exc)
            ready.abort()
            return
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        out = columns[i]
        try:
            while not stop.is_set():
                for column, value in zip(out, one_sample()):
                    column.append(value)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    def pooled(k: int) -> np.ndarray:
        return np.concatenate([np.asarray(w[k]) for w in columns])

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        for t in threads:
            t.join()
        raise errors[0] from None
    load = LoadSampler()
    start = time.perf_counter()
    outcome = None
    while outcome is None and not stop.is_set():
        time.sleep(0.05 if concurrency == 1 else 0.2)
        outcome = stop_outcome(pooled(0), rule, time.perf_counter() - start)
        load.poll()
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    wall = time.perf_counter() - start
    return Measurement(pooled(0), outcome, wall, min(warm_counts), handoff_s=pooled(1) if handoff else None,
                       loadavg=load.record())
