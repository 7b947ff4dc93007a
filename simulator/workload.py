"""Arrival processes and key popularity. Every generator takes its own ``numpy.random.Generator``.

Each process returns absolute arrival times (seconds from 0, non-decreasing). The distributions are
exactly the named ones: nothing is clipped or truncated.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .errors import InputError
from .scenario import Arrivals

__all__ = ["Trace", "arrival_times", "load_trace", "mean_rate", "zipf_keys", "zipf_popularity"]


class Trace:
    """A replayed trace: timestamps (s, from the file's first arrival) and optional integer keys."""

    def __init__(self, times: np.ndarray, keys: np.ndarray | None, origin: str):
        self.times, self.keys, self.origin = times, keys, origin

    @property
    def rate(self) -> float:
        span = self.times[-1] - self.times[0]
        return (self.times.size - 1) / span if span > 0 else float("inf")


def load_trace(path: str | Path) -> Trace:
    """Read a trace: one timestamp (s) per line, or CSV with a ``timestamp_s`` column and optional ``key``.

    Timestamps must be finite, ≥ 0 and non-decreasing; the error names the line.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"trace file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"trace file {str(p)!r} cannot be read: {exc}") from None
    rows = list(csv.reader(line for line in text.splitlines() if line.strip() and not line.startswith("#")))
    if not rows:
        raise InputError(f"trace file {str(p)!r} holds no timestamps")
    header = [h.strip() for h in rows[0]]
    t_col, k_col, start = 0, None, 0
    if any(not _is_number(h) for h in header):
        if "timestamp_s" not in header:
            raise InputError(f"trace file {str(p)!r}: header must name a 'timestamp_s' column, got {header}")
        t_col = header.index("timestamp_s")
        k_col = header.index("key") if "key" in header else None
        start = 1
    times, keys = [], []
    for lineno, row in enumerate(rows[start:], start=start + 1):
        try:
            t = float(row[t_col])
        except (ValueError, IndexError):
            raise InputError(f"trace file {str(p)!r} line {lineno}: timestamp {row!r} is not a number") from None
        if not (math.isfinite(t) and t >= 0):
            raise InputError(f"trace file {str(p)!r} line {lineno}: timestamp must be finite and >= 0, got {t}")
        if times and t < times[-1]:
            raise InputError(f"trace file {str(p)!r} line {lineno}: timestamps must be non-decreasing "
                             f"({t} after {times[-1]})")
        times.append(t)
        if k_col is not None:
            try:
                keys.append(int(row[k_col]))
            except (ValueError, IndexError):
                raise InputError(f"trace file {str(p)!r} line {lineno}: key must be an integer") from None
    if len(times) < 2:
        raise InputError(f"trace file {str(p)!r} needs at least 2 timestamps, got {len(times)}")
    arr = np.asarray(times) - times[0]
    return Trace(arr, np.asarray(keys, dtype=np.int64) if k_col is not None else None, str(p))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def mean_rate(arrivals: Arrivals) -> float:
    """Long-run mean arrival rate (requests/s) of the process."""
    if arrivals.process == "trace":
        return load_trace(arrivals.trace).rate if arrivals.rate is None else arrivals.rate
    return float(arrivals.rate)


def arrival_times(arrivals: Arrivals, n: int, rng: np.random.Generator, *, trace: Trace | None = None,
                  start: float = 0.0) -> np.ndarray:
    """The first ``n`` arrival times (s) after ``start``.

    * poisson: exponential gaps with mean 1/rate.
    * gamma: gamma gaps with mean 1/rate and the given CV (renewal process).
    * mmpp: two-state Markov-modulated Poisson process; burst state rate = burst_ratio × calm rate,
      long-run fraction ``burst_fraction`` in the burst state with mean length ``burst_mean_s``; the
      calm rate is set so that the long-run mean rate equals ``rate``.
    * diurnal: non-homogeneous Poisson with rate(t) = rate·(1 + amplitude·sin(2πt/period)), by thinning.
    * trace: the file's timestamps, cycled (shifted by the trace span) when n exceeds its length; with
      ``rate`` given, time is rescaled so the trace's mean rate equals it.
    """
    p = arrivals.process
    if p == "poisson":
        return start + np.cumsum(rng.standard_exponential(n) / arrivals.rate)
    if p == "gamma":
        shape = 1.0 / arrivals.cv**2
        return start + np.cumsum(rng.standard_gamma(shape, n) / (shape * arrivals.rate))
    if p == "mmpp":
        return start + _mmpp(arrivals, n, rng)
    if p == "diurnal":
        return start + _diurnal(arrivals, n, rng)
    tr = trace if trace is not None else load_trace(arrivals.trace)
    return start + _cycle_trace(tr, n, arrivals.rate)


def _mmpp(a: Arrivals, n: int, rng: np.random.Generator) -> np.ndarray:
    f, ratio = a.burst_fraction, a.burst_ratio
    calm_rate = a.rate / (1.0 - f + f * ratio)
    rates = (calm_rate, calm_rate * ratio)
    mean_len = (a.burst_mean_s * (1.0 - f) / f, a.burst_mean_s)  # calm, burst sojourn means
    out = np.empty(n)
    filled, t, state = 0, 0.0, 0 if rng.random() >= f else 1
    while filled < n:
        end = t + rng.exponential(mean_len[state])
        # Arrivals in [t, end) are a Poisson process of rate rates[state]: draw their count and
        # positions at once (uniform order statistics), exact and vectorised.
        k = rng.poisson(rates[state] * (end - t))
        if k:
            pts = np.sort(rng.uniform(t, end, k))
            take = min(k, n - filled)
            out[filled:filled + take] = pts[:take]
            filled += take
        t, state = end, 1 - state
    return out


def _diurnal(a: Arrivals, n: int, rng: np.random.Generator) -> np.ndarray:
    peak = a.rate * (1.0 + a.amplitude)
    out = np.empty(n)
    filled, t = 0, 0.0
    while filled < n:
        m = max(1024, int(1.3 * (n - filled) * (1.0 + a.amplitude)))
        cand = t + np.cumsum(rng.standard_exponential(m) / peak)
        lam = a.rate * (1.0 + a.amplitude * np.sin(2.0 * np.pi * cand / a.period_s))
        keep = cand[rng.random(m) * peak < lam]
        take = min(keep.size, n - filled)
        out[filled:filled + take] = keep[:take]
        filled += take
        t = cand[-1]
    return out


def _cycle_trace(tr: Trace, n: int, rate: float | None) -> np.ndarray:
    times = tr.times
    span = times[-1] + (times[-1] - times[0]) / max(times.size - 1, 1)  # period incl. one mean gap
    reps = -(-n // times.size)
    out = (times[None, :] + span * np.arange(reps)[:, None]).ravel()[:n]
    if rate is not None:
        out = out * (tr.rate / rate)
    return out


def zipf_popularity(alpha: float, n: int) -> np.ndarray:
    """p_i ∝ i^-alpha for i = 1..n, normalised (computed in log space, stable for large n)."""
    ranks = np.arange(1, n + 1, dtype=float)
    logw = -alpha * np.log(ranks)
    w = np.exp(logw - logw.max())
    return w / w.sum()


def zipf_keys(alpha: float, n_keys: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n keys in [0, n_keys) with Zipf(alpha) popularity (key 0 most popular), by inverse CDF."""
    cdf = np.cumsum(zipf_popularity(alpha, n_keys))
    cdf[-1] = 1.0
    return np.searchsorted(cdf, rng.random(n), side="right").astype(np.int64)
