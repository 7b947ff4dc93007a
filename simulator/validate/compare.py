"""Prediction against measurement: relative errors, the real system's own spread, the acceptance rule.

Definitions (percent, per latency statistic):

* measured value = the mean of the statistic over the repeated real runs;
* error = (predicted − measured) / measured × 100 (positive: the prediction is too high);
* spread = the largest deviation of one real run from the mean of the runs, max_r |m_r − m̄| / m̄ × 100:
  how far a single real run strays from the average, the same yardstick as the error;
* goal: |error| ≤ 10 for mean, p50 and p90, ≤ 15 for p99 (and p95, p97), and |error| ≤ spread + 5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["ERROR_LIMITS", "METRICS", "meets_goal", "relative_error", "spread"]

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
