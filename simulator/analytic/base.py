"""The metrics object every analytic queue model returns.

Subclasses fill in the figures they know; what a model cannot give (a percentile of an approximation
with no distribution, a blocking probability of an infinite queue) raises ``NotImplementedError`` with
the reason rather than returning a made-up number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy import optimize

from ..validation import check_integer, check_quantile


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state figures of one queue model (seconds, requests/second, counts).

    Attributes
    ----------
    model : str
        Kendall name, e.g. ``"M/M/4"``.
    arrival_rate : float
        Offered arrival rate λ (requests/s). For loss systems see ``effective_arrival_rate``.
    servers : int
        Number of servers c.
    utilization : float
        Per-server busy fraction (for loss systems: of the *carried* load).
    p_wait : float
        Probability an (admitted) arrival has to wait.
    wait_mean : float
        Mean time in queue W_q (s).
    sojourn_mean : float
        Mean time in system W = W_q + E[S] (s).
    queue_length_mean : float
        Mean number waiting L_q.
    system_length_mean : float
        Mean number in system L.
    exact : bool
        Whether the figures are exact for the model or an approximation.
    method : str
        How they were computed (e.g. ``"Erlang C"``, ``"Allen-Cunneen approximation"``).
    """

    model: str
    arrival_rate: float
    servers: int
    utilization: float
    p_wait: float
    wait_mean: float
    sojourn_mean: float
    queue_length_mean: float
    system_length_mean: float
    exact: bool
    method: str
    effective_arrival_rate: float | None = None
    notes: tuple[str, ...] = field(default=())

    # -- distributional figures: subclasses override what they know -------------------------------
    def wait_cdf(self, t: float) -> float:
        """P(W_q ≤ t)."""
        raise NotImplementedError(f"{self.model} ({self.method}) has no waiting-time distribution")

    def sojourn_cdf(self, t: float) -> float:
        """P(W ≤ t), time in system."""
        raise NotImplementedError(f"{self.model} ({self.method}) has no sojourn-time distribution")

    def wait_moment(self, k: int) -> float:
        """E[W_q^k], the k-th raw moment of the waiting time (s^k)."""
        k = check_integer("k", k, minimum=1)
        if k == 1:
            return self.wait_mean
        raise NotImplementedError(f"{self.model} ({self.method}) gives only the mean waiting time")

    def wait_quantile(self, q: float) -> float:
        """Smallest t with P(W_q ≤ t) ≥ q (s); 0 when q ≤ P(W_q = 0)."""
        q = check_quantile("q", q)
        if q <= 1.0 - self.p_wait:
            return 0.0
        return _invert_cdf(self.wait_cdf, q, scale=max(self.wait_mean, 1e-300))

    def sojourn_quantile(self, q: float) -> float:
        """Smallest t with P(W ≤ t) ≥ q (s)."""
        q = check_quantile("q", q)
        return _invert_cdf(self.sojourn_cdf, q, scale=max(self.sojourn_mean, 1e-300))

    @property
    def blocking_probability(self) -> float:
        """Probability an arrival is turned away; 0 for queues without a limit."""
        return 0.0

    def state_probability(self, n: int) -> float:
        """P(N = n), the stationary probability of n requests in the system."""
        raise NotImplementedError(f"{self.model} ({self.method}) has no state distribution")

    def as_dict(self) -> dict:
        """Plain figures for JSON output (seconds)."""
        return {
            "model": self.model, "method": self.method, "exact": self.exact,
            "arrival_rate": self.arrival_rate, "servers": self.servers,
            "utilization": self.utilization, "p_wait": self.p_wait,
            "wait_mean": self.wait_mean, "sojourn_mean": self.sojourn_mean,
            "queue_length_mean": self.queue_length_mean, "system_length_mean": self.system_length_mean,
            "blocking_probability": self.blocking_probability,
        }


def _invert_cdf(cdf, q: float, scale: float) -> float:
    """Solve cdf(t) = q for t ≥ 0 by bracketing then Brent's method (cdf monotone)."""
    lo, hi = 0.0, scale
    for _ in range(2000):
        if cdf(hi) >= q:
            break
        lo, hi = hi, hi * 2.0
    else:  # pragma: no cover - a proper CDF reaches q long before 2**2000 * scale
        raise ArithmeticError("could not bracket the quantile")
    if cdf(lo) >= q:
        return lo
    return optimize.brentq(lambda t: cdf(t) - q, lo, hi, xtol=1e-15 * max(hi, 1e-300), rtol=1e-15,
                           maxiter=500)


def finite_or_raise(name: str, x: float) -> float:
    """Guard against a formula producing nan/inf silently (a bug, not a user error)."""
    if not math.isfinite(x):
        raise ArithmeticError(f"{name} evaluated to {x}; this is a bug in the analytic model")
    return x
