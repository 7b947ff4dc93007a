"""Fork-join queue: each request splits into K sub-tasks, one per M/M/1 branch, and leaves with the last.

Poisson arrivals (rate λ) are copied to all K branches; branch k serves its sub-tasks FCFS with
exponential times of rate μ. Every branch alone is an M/M/1 queue with sojourn R1 = 1/(μ - λ), but
the branches share the arrival stream, so their sojourns are positively correlated and the request's
response time, the maximum of the K, has no known closed-form distribution for K ≥ 2.

- K = 1: M/M/1, exact (distribution included).
- K = 2: Flatto & Hahn (1984) / Nelson & Tantawi (1988), exact mean: R2 = (12 - ρ)/8 · R1.
- 2 < K ≤ 32: Nelson & Tantawi (1988) approximation
  R_K ≈ [H_K/H_2 + (4/11)(1 - H_K/H_2) ρ] · R2, with H_K the K-th harmonic number.
  They fitted it up to K = 32 and report errors within about 5 %; K > 32 is refused.

Bounds (Nelson & Tantawi): the branch sojourns are associated random variables, so the response time
is stochastically smaller than the maximum of K *independent* M/M/1 sojourns (mean H_K · R1), and no
smaller than one branch's sojourn (mean R1). R_K lies between, and so do its quantiles:
``sojourn_quantile_bounds``.

Measured against a seeded simulation (tests/theory/test_analytic_batching_forkjoin_cache.py: Lindley
recursion per branch, 4 runs of 4e5 requests after 4e4 warm-up; standard error 0.15-0.2 % at ρ=0.5,
0.6-1.1 % at ρ=0.8), relative error of the mean response time:

======  ===============  ===============
K       ρ = 0.5          ρ = 0.8
======  ===============  ===============
1       +0.02 % (exact)  +0.19 % (exact)
2       -0.01 % (exact)  +0.32 % (exact)
4       -1.39 %          -2.43 %
8       -1.38 %          -2.74 %
16      -0.80 %          -2.26 %
32      -0.11 %          -1.68 %
======  ===============  ===============

so Nelson–Tantawi slightly *under*-estimates (at most ~3 % here, within their stated 5 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError
from ..validation import check_integer, check_positive, check_quantile, check_stable
from .base import QueueMetrics, finite_or_raise

__all__ = ["MAX_FORK_JOIN_BRANCHES", "ForkJoinMetrics", "fork_join"]

MAX_FORK_JOIN_BRANCHES = 32


def _harmonic(k: int) -> float:
    return math.fsum(1.0 / i for i in range(1, k + 1))


@dataclass(frozen=True, kw_only=True)
class ForkJoinMetrics(QueueMetrics):
    """Figures of a K-branch fork-join system of M/M/1 queues (seconds, requests/second).

    Beyond :class:`~simulator.analytic.base.QueueMetrics` (where ``servers`` = K branches,
    ``utilization`` = ρ of every branch, ``sojourn_mean`` = mean response time of a request, i.e. until
    its last sub-task finishes, ``wait_mean`` = ``sojourn_mean`` minus the mean of the bare job time
    E[max of K service times] = H_K/μ, and ``p_wait`` = probability that a sub-task waits at its
    branch, = ρ):

    Attributes
    ----------
    service_rate : float
        μ of each branch (1/s).
    branch_sojourn_mean : float
        One branch's M/M/1 mean sojourn R1 = 1/(μ - λ) (s); a lower bound on ``sojourn_mean``.
    branch_wait_mean : float
        One branch's M/M/1 mean wait ρ/(μ - λ) (s).
    job_service_mean : float
        E[max of K service times] = H_K/μ (s), the response time with no queueing at all.
    sojourn_mean_upper_bound : float
        H_K · R1 (s), the mean of the maximum of K independent M/M/1 sojourns.
    """

    service_rate: float
    branch_sojourn_mean: float
    branch_wait_mean: float
    job_service_mean: float
    sojourn_mean_upper_bound: float

    @property
    def branches(self) -> int:
        """Number of parallel sub-tasks K."""
        return self.servers

    def _branch_decay(self) -> float:
        return self.service_rate - self.arrival_rate

    def wait_cdf(self, t: float) -> float:
        if self.servers != 1:
            raise NotImplementedError(
                f"{self.model} ({self.method}): the fork-join waiting-time distribution has no closed form "
                "for K >= 2")
        if t < 0:
            return 0.0
        return 1.0 - self.utilization * math.exp(-self._branch_decay() * t)

    def wait_quantile(self, q: float) -> float:
        if self.servers != 1:
            # the base class would answer 0 below 1 - p_wait, but p_wait here is per sub-task
            raise NotImplementedError(
                f"{self.model} ({self.method}): no waiting-time distribution for K >= 2")
        return super().wait_quantile(q)

    def sojourn_cdf(self, t: float) -> float:
        if self.servers != 1:
            raise NotImplementedError(
                f"{self.model} ({self.method}): the response-time distribution of a fork-join queue has no "
                "closed form for K >= 2; use sojourn_quantile_bounds(q)")
        if t < 0:
            return 0.0
        return -math.expm1(-self._branch_decay() * t)

    def wait_moment(self, k: int) -> float:
        k = check_integer("k", k, minimum=1)
        if self.servers == 1:
            # M/M/1: W_q is 0 w.p. 1-ρ, else Exp(μ-λ).
            return self.utilization * math.factorial(k) / self._branch_decay() ** k
        return super().wait_moment(k)

    def sojourn_quantile_bounds(self, q: float) -> tuple[float, float]:
        """Bounds (s) on the q-quantile of the response time, valid for every K.

        Lower: the q-quantile of one branch's M/M/1 sojourn, ``-ln(1-q)/(μ-λ)``. Upper: the q-quantile of
        the maximum of K independent M/M/1 sojourns, ``-ln(1 - q**(1/K))/(μ-λ)`` (the branch sojourns are
        associated, so the true maximum is stochastically smaller; Nelson & Tantawi 1988).
        """
        q = check_quantile("q", q)
        d = self._branch_decay()
        lower = -math.log1p(-q) / d
        upper = -math.log1p(-(q ** (1.0 / self.servers))) / d
        return lower, upper


def fork_join(arrival_rate: float, service_rate: float, branches: int) -> ForkJoinMetrics:
    """Mean response time of a fork-join system of K M/M/1 branches.

    Parameters
    ----------
    arrival_rate : float
        Poisson arrival rate λ of requests (requests/s); every request forks into ``branches`` sub-tasks.
    service_rate : float
        Exponential service rate μ of each branch server (1/s, = 1/mean service time in seconds).
    branches : int
        Number of parallel sub-tasks K, 1 ≤ K ≤ 32.

    Returns
    -------
    ForkJoinMetrics
        ``exact`` is True for K = 1 (M/M/1) and K = 2 (Flatto–Hahn); False for K > 2 (Nelson–Tantawi).

    Raises
    ------
    InputError
        A rate that is not a finite positive number; K not an integer in [1, 32].
    UnstableSystemError
        ρ = λ/μ ≥ 1 at each branch.

    Notes
    -----
    Measured error of the mean response against simulation (table in the module docstring): K ≤ 2
    within noise; Nelson–Tantawi -0.1 % to -2.7 % for 4 ≤ K ≤ 32 and ρ ∈ {0.5, 0.8}.
    """
    lam = check_positive("arrival_rate", arrival_rate)
    mu = check_positive("service_rate", service_rate)
    k = check_integer("branches", branches, minimum=1)
    if k > MAX_FORK_JOIN_BRANCHES:
        raise InputError(f"branches must be an integer >= 1 and <= {MAX_FORK_JOIN_BRANCHES} (the range the "
                         f"Nelson-Tantawi approximation was fitted on), got {k}")
    rho = lam / mu
    check_stable(rho, what="fork-join branch (M/M/1)")
    r1 = 1.0 / (mu - lam)
    h_k = _harmonic(k)
    if k == 1:
        r_k, exact, method = r1, True, "M/M/1 (single branch)"
    else:
        r2 = (12.0 - rho) / 8.0 * r1
        if k == 2:
            r_k, exact, method = r2, True, "Flatto-Hahn exact mean (K=2)"
        else:
            ratio = h_k / 1.5
            r_k = (ratio + 4.0 / 11.0 * (1.0 - ratio) * rho) * r2
            exact, method = False, "Nelson-Tantawi approximation"
    r_k = finite_or_raise("fork-join response time", r_k)
    job_service = h_k / mu
    wait = r_k - job_service
    return ForkJoinMetrics(
        model=f"fork-join {k} x M/M/1", arrival_rate=lam, servers=k, utilization=rho, p_wait=rho,
        wait_mean=wait, sojourn_mean=r_k, queue_length_mean=lam * wait, system_length_mean=lam * r_k,
        exact=exact, method=method,
        notes=(f"bounds on the mean response: {r1:.6g} s (one branch) <= R <= {h_k * r1:.6g} s "
               "(independent branches)",),
        service_rate=mu, branch_sojourn_mean=r1, branch_wait_mean=rho * r1, job_service_mean=job_service,
        sojourn_mean_upper_bound=h_k * r1,
    )
