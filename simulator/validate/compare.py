"""Prediction against measurement: relative errors, the real system's own spread, the acceptance rule.

Definitions (percent, per latency statistic):

* measured value = the mean of the statistic over the repeated real runs;
* error = (predicted − measured) / measured × 100 (positive: the prediction is too high);
* spread = the largest deviation of one real run from the mean of the runs, max_r |m_r − m̄| / m̄ × 100:
  how far a single real run strays from the average, the same yardstick as the error;
* goal: |error| ≤ 10 for mean, p50 and p90, ≤ 15 for p99 (and p95, p97), and |error| ≤ spread + 5.

What the measurement itself allows: the measured value is a mean of k runs, each a random realisation
(Poisson arrivals, service times, host drift), so even an exact prediction errs by that mean's sampling
noise. With a run's relative sd σ (from the simulation, whose replications are runs as long as the real
ones), the measured mean's is σ/√k, and an exact prediction meets the limit L with probability
``chance_within_limit`` = P(|N(0, σ/√k)| ≤ L) = erf(L / (σ/√k · √2)) (normal approximation of the
relative error; a p99's run-to-run distribution is skewed right, so the figure is approximate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["ERROR_LIMITS", "METRICS", "chance_within_limit", "meets_goal", "relative_error", "run_sd_pct", "spread"]

METRICS = ("mean", "p50", "p90", "p99")
ERROR_LIMITS = {"mean": 10.0, "p50": 10.0, "p90": 10.0, "p95": 15.0, "p97": 15.0, "p99": 15.0}
SPREAD_MARGIN = 5.0


def relative_error(predicted: float | None, measured: float | None) -> float:
    """(predicted − measured) / measured in percent; NaN when either is missing or measured ≤ 0."""
    if predicted is None or measured is None:
        return math.nan
    if not (math.isfinite(predicted) and math.isfinite(measured)) or measured <= 0:
        return math.nan
    return (predicted - measured) / measured * 100.0


def spread(values: Sequence[float]) -> float:
    """Largest deviation of one run from the runs' mean, in percent of the mean (NaN for fewer than 2 runs)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size < 2 or x.mean() <= 0:
        return math.nan
    return float(np.max(np.abs(x - x.mean())) / x.mean() * 100.0)


def run_sd_pct(values: Sequence[float]) -> float:
    """Sample standard deviation of the runs' values (ddof 1), in percent of their mean (NaN for < 2 runs)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size < 2 or x.mean() <= 0:
        return math.nan
    return float(x.std(ddof=1) / x.mean() * 100.0)


def chance_within_limit(metric: str, mean_sd_pct: float) -> float:
    """Probability that an exact prediction meets the metric's limit when the measured value's relative
    sampling sd is ``mean_sd_pct`` (percent); NaN when that sd is unknown."""
    if not math.isfinite(mean_sd_pct) or mean_sd_pct < 0:
        return math.nan
    if mean_sd_pct == 0:
        return 1.0
    return math.erf(ERROR_LIMITS.get(metric, 15.0) / (mean_sd_pct * math.sqrt(2.0)))


def meets_goal(metric: str, error: float, run_spread: float) -> dict[str, bool | None]:
    """Which parts of the goal an error meets: ``limit`` (absolute bound), ``spread`` (≤ spread + 5).

    ``spread`` is None when the spread is unknown (a single real run).
    """
    limit = ERROR_LIMITS.get(metric, 15.0)
    ok_limit = math.isfinite(error) and abs(error) <= limit
    if not math.isfinite(run_spread):
        return {"limit": ok_limit, "spread": None}
    ok_spread = math.isfinite(error) and abs(error) <= run_spread + SPREAD_MARGIN
    return {"limit": ok_limit, "spread": ok_spread}
