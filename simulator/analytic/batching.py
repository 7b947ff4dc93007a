"""Dynamic batching on one server: Poisson arrivals, batches of up to B requests, batch time a + b·n.

Model
-----
Requests arrive as a Poisson process (rate λ) and wait FCFS. A batch of n requests occupies the single
server for exactly ``a + b*n`` seconds; every request of the batch leaves when the batch ends.

- Greedy batching (``timeout=None`` or 0): the moment the server is free and the queue is non-empty it
  takes ``min(queue, B)`` requests; if the queue is empty it waits for the next arrival and starts a
  batch of 1 at once.
- With a timeout T (TF-Serving semantics): a batch starts when the server is free *and* either B
  requests wait or the oldest waiting request has waited T; it takes ``min(queue, B)`` requests.
  This is what TensorFlow Serving's ``SharedBatchScheduler`` does: a full batch is closed on enqueue,
  but the open (partial) batch is closed only by a free batch thread (``Queue::ScheduleBatch`` checks
  ``IsOpenBatchSchedulable``: full, or ``batch_timeout_micros`` since its first task), so it keeps
  accepting requests, up to B, while every thread is busy. A batcher that instead closes the partial
  batch the moment its timer fires, even while the server is busy, is a different system: with
  T < a + b B it serves small batches under load and can be unstable where this one is not.

Method (embedded Markov chain at batch-start epochs)
----------------------------------------------------
State = (n, m): the size n of the batch just started and the number m left waiting (m > 0 only when
n = B). During the batch A ~ Poisson(λ(a + b n)) arrive, so at its end q = m + A wait, and

- q ≥ B: a full batch starts at once, next state (B, q - B);
- q = 0: the server idles until the next arrival, which then waits for B - 1 more or for T;
- 1 ≤ q < B: the oldest waiting request has age V·(a + b n) when m = 0 (the q arrivals of a batch are
  uniform over it, so V is the maximum of q uniforms and V**q is uniform); the batch starts after
  ``min(residual timer, time of the (B-q)-th further arrival)``. Expectations over V use Gauss-Legendre
  quadrature (48 + B/2 nodes) on the smooth integrand; doubling the nodes changes W_q by < 1e-12.

Greedy batching is T = 0 and is solved *exactly*. With T ≤ a + b B it is exact as well: a request left
waiting behind a full batch (m > 0) has waited at least the whole batch, a + b B ≥ T, so its timer has
run out. With T > a + b B the age of such a request is taken as a + b B (a lower bound, so the timer
is assumed to run a little longer than it does): the only approximation, labelled ``exact=False``.

The chain is level-homogeneous above q = B; its stationary tail decays like z**-m where z > 1 solves
z**B = exp(λ(a + b B)(z - 1)). It is truncated where that tail is below 1e-20 and solved as a sparse
linear system; the mass beyond the truncation (estimated from the last level and z) is reported.

Cycle rewards (from one batch start to the next) give everything else: mean cycle length E[C] (batch
time + idle + time spent waiting for the batch to form), batch-size distribution, E[∫ queue dt]; then
W_q = E[∫ queue dt]/E[N] (each request accrues its own wait) and L_q = λ W_q (Little), utilization =
E[a + b N]/E[C], and W = W_q + E[N (a + b N)]/E[N] (a request's own batch is size-biased). For greedy
batching the waiting-time distribution is exact too: an arrival that finds the server busy with J
requests ahead and residual batch time R waits exactly R + floor(J/B)·(a + b B) (every batch ahead of
it is full), and (R, J) is integrated in closed form through
∫_0^x P(Poisson(λu) ≤ j) du = E[min(Poisson(λx), j + 1)]/λ.

Checks (tests/theory/test_analytic_batching_forkjoin_cache.py)
---------------------------------------------------------------
- B = 1, a = 0 is M/D/1: W_q = λ D**2/(2(1 - ρ)) to 1e-9 relative (measured ≤ 2e-13 up to ρ = 0.999),
  and the wait CDF equals Erlang's M/D/1 distribution to 1e-9.
- Against a seeded event simulation (8 runs of 3.2e5 requests), relative error of the mean wait
  (standard error of the simulation in brackets):

  =====================================  =====  ====================  ===========
  λ (1/s), a, b (s), B, timeout (s)      ρ      model                 W_q error
  =====================================  =====  ====================  ===========
  200, 0.002, 0.003, 4, greedy           0.70   exact                 +0.09 % (0.40)
  80, 0, 0.01, 2, greedy                 0.80   exact                 +0.36 % (0.83)
  500, 0.01, 0.0005, 8, greedy           0.875  exact                 -0.20 % (0.61)
  1000, 0.01, 0.0005, 32, 0.005          0.81   exact (T ≤ a + bB)    +0.00 % (0.13)
  400, 0.005, 0.001, 8, 0.02             0.65   approximation         +0.16 % (0.05)
  1100, 0.002, 0.0005, 8, 0.008          0.825  approximation         +0.76 % (0.28)
  =====================================  =====  ====================  ===========

  Further approximate cases (T > a + b B) measured -0.3 % to +0.13 %, within noise. The approximation
  errs on the high side (a conservative timer), by under 1 % in every case tried. Greedy wait
  quantiles (p50, p90, p99) agree with the simulated distribution within its 99.9 % interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse, special, stats
from scipy.sparse import csgraph
from scipy.sparse import linalg as sparse_linalg

from ..errors import InputError
from ..validation import check_integer, check_nonnegative, check_positive, check_quantile, check_stable
from .base import QueueMetrics, finite_or_raise

__all__ = ["MAX_BATCH_SIZE", "MAX_TIMEOUT_BATCH_SIZE", "BatchingMetrics", "batching"]

MAX_BATCH_SIZE = 4096
"""Largest max_batch_size accepted for greedy batching."""

MAX_TIMEOUT_BATCH_SIZE = 256
"""Largest max_batch_size accepted with a timeout (the timer averages cost O(B**4) flops)."""

MAX_STATES = 250_000
"""Largest truncated chain solved (reached for B = 1 at ρ ≈ 0.99991); nearer to 1 is refused."""

_TAIL_LOG_TOLERANCE = 46.0  # truncate where z**-m < exp(-46) ≈ 1e-20
_MAX_TRUNCATION_MASS = 1e-10  # the truncation level is chosen for ~1e-20; more means a bug
_TINY = 1e-150             # flushed to 0 before products: no product is subnormal
_NEGLIGIBLE = 1e-30        # Poisson terms below this, left of the mean, are dropped (they bloat the LU)
_POWER_STEPS = 16          # chain steps to find a likely anchor state
_ANCHOR_TRIES = 3
_TIMER_NODES_BASE = 48     # Gauss-Legendre nodes for the timer average: 48 + B/2


@dataclass(frozen=True, eq=False, kw_only=True)
class BatchingMetrics(QueueMetrics):
    """Steady-state figures of the dynamic-batching server (seconds, requests/second).

    ``utilization`` is the fraction of time the server is busy; ``p_wait`` the probability that a
    request waits at all (greedy: = utilization, by PASTA); ``wait_mean`` the time from arrival to the
    start of its batch; ``sojourn_mean`` adds its own batch's time; ``queue_length_mean`` counts
    requests not yet in a running batch and ``system_length_mean`` all of them.

    Attributes
    ----------
    batch_time : tuple of float
        (a, b): a batch of n takes a + b·n seconds.
    max_batch_size : int
        B.
    timeout : float or None
        Batching timeout T in seconds (None: greedy).
    offered_utilization : float
        ρ = λ(a + b B)/B, the load relative to the capacity with full batches (stability: ρ < 1).
    batch_size_pmf : numpy.ndarray
        ``batch_size_pmf[n-1]`` = P(a batch holds n requests), per batch.
    mean_batch_size : float
        E[N] per batch.
    request_batch_size_mean : float
        Mean size of the batch a random *request* is served in, E[N²]/E[N].
    batch_rate : float
        Batches started per second.
    throughput : float
        batch_rate · mean_batch_size (requests/s); equals λ up to the truncation and rounding
        (``throughput_relative_error``).
    service_mean : float
        Mean batch time seen by a request, E[N (a + b N)]/E[N] (s).
    formation_time_mean : float
        Mean time per batch the server is free while a batch waits for B requests or its timer (s).
    truncation_level : int
        Number of chain states solved.
    truncation_mass : float
        Estimated stationary mass beyond the truncation.
    """

    batch_time: tuple[float, float]
    max_batch_size: int
    timeout: float | None
    offered_utilization: float
    batch_size_pmf: np.ndarray
    mean_batch_size: float
    request_batch_size_mean: float
    batch_rate: float
    throughput: float
    throughput_relative_error: float
    service_mean: float
    formation_time_mean: float
    truncation_level: int
    truncation_mass: float
    _chain: dict = field(default_factory=dict, repr=False)

    @property
    def greedy(self) -> bool:
        """True when batches start as soon as the server is free (no timeout, timeout 0, or B = 1)."""
        return not self.timeout or self.max_batch_size == 1

    def batch_size_probability(self, n: int) -> float:
        """P(a batch holds exactly n requests), per batch."""
        n = check_integer("n", n, minimum=1)
        return float(self.batch_size_pmf[n - 1]) if n <= self.max_batch_size else 0.0

    # -- waiting-time distribution (greedy batching only) --------------------------------------------
    def wait_cdf(self, t: float) -> float:
        """P(W_q ≤ t), exact for greedy batching (see the module notes)."""
        if not self.greedy:
            raise NotImplementedError(
                f"{self.model} ({self.method}): the waiting-time distribution with a batching timeout is "
                "not derived; the mean is, and the des engine gives percentiles")
        t = float(t)
        if t < 0:
            return 0.0
        ch = self._chain
        lam, big_b, s = ch["lam"], self.max_batch_size, ch["service"]
        s_full = s[-1]
        k_star = math.floor(t / s_full)
        y0 = t - k_star * s_full
        lo, hi = big_b * k_star - 1, big_b * k_star + big_b - 1  # J <= lo: earlier batch; J <= hi: this one
        # batches that started with nobody left waiting (m = 0), one per size n = 1..B
        y = np.minimum(y0, s)
        terms = (_gint(lam, s, lo) + (_gint(lam, s, hi) - _gint(lam, s - y, hi))
                 - (_gint(lam, s, lo) - _gint(lam, s - y, lo)))
        acc = float(np.dot(ch["pi_n0"], terms))
        # full batches that left m >= 1 waiting
        pi_tail = ch["pi_tail"]
        if pi_tail.size:
            m = np.arange(1, pi_tail.size + 1)
            part = s_full - y0
            terms = (_gint(lam, s_full, lo - m) + (_gint(lam, s_full, hi - m) - _gint(lam, part, hi - m))
                     - (_gint(lam, s_full, lo - m) - _gint(lam, part, lo - m)))
            acc += float(np.dot(pi_tail, terms))
        value = (1.0 - self.utilization) + acc / ch["cycle_mean"]
        return min(max(value, 0.0), 1.0)

    def _sojourn_shift(self) -> float | None:
        """Batch time every request gets when it is the same for all (B = 1 or b = 0), else None."""
        a, b = self.batch_time
        if self.max_batch_size == 1 or b == 0.0:
            return a + b
        return None

    def sojourn_cdf(self, t: float) -> float:
        """P(W ≤ t): exact for greedy batching when every batch takes the same time (B = 1 or b = 0)."""
        shift = self._sojourn_shift()
        if shift is None or not self.greedy:
            raise NotImplementedError(
                f"{self.model} ({self.method}): the sojourn distribution depends on the size of the "
                "request's own batch, which is not derived; sojourn_quantile_bounds(q) brackets the "
                "quantile (greedy batching)")
        return self.wait_cdf(t - shift)

    def sojourn_quantile_bounds(self, q: float) -> tuple[float, float]:
        """Bounds (s) on the sojourn q-quantile for greedy batching: wait quantile + (a + b), + (a + b B).

        A request's own batch takes between a + b and a + b B seconds, so its sojourn lies between its
        wait plus those.
        """
        q = check_quantile("q", q)
        a, b = self.batch_time
        w = self.wait_quantile(q)
        return w + a + b, w + a + b * self.max_batch_size


def _gint(lam: float, x, j):
    """∫_0^x P(Poisson(λu) ≤ j) du = E[min(K, j + 1)]/λ with K ~ Poisson(λx); vectorised, 0 for j < 0.

    E[min(K, c)] = c P(K ≥ c) + μ P(K ≤ c - 2), μ = λx (from i·pmf(i; μ) = μ·pmf(i - 1; μ)).
    """
    mu = lam * np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    c = np.asarray(j) + 1
    cc = np.maximum(c, 1).astype(np.float64)
    # pdtr/pdtrc are nan for a negative count: P(K <= -1) = 0 is written out
    below = np.where(cc >= 2.0, special.pdtr(np.maximum(cc - 2.0, 0.0), mu), 0.0)
    value = cc * special.pdtrc(cc - 1.0, mu) + mu * below
    return np.where(c > 0, value, 0.0) / lam


def _poisson_pmf_upto(mean: float) -> np.ndarray:
    """Poisson pmf on 0..kmax (upper tail beyond below ~1e-20; negligible lower-tail terms set to 0)."""
    kmax = int(mean + 12.0 * math.sqrt(mean) + 40.0)
    k = np.arange(kmax + 1)
    pmf = stats.poisson.pmf(k, mean)
    pmf[(k < mean) & (pmf < _NEGLIGIBLE)] = 0.0
    return pmf


def _expected_pmf(lam: float, taus: np.ndarray, weights: np.ndarray, kmax: int) -> np.ndarray:
    """Σ_g weights[..., g] · P(Poisson(λ τ_g) = k) for k < kmax; τ ≥ 0 of shape (G,)."""
    x = lam * taus
    k = np.arange(kmax)
    with np.errstate(divide="ignore", invalid="ignore"):
        logpmf = k * np.log(x)[:, None] - x[:, None] - special.gammaln(k + 1)
    pmf = np.exp(logpmf)
    pmf[:, 0] = np.exp(-x)
    pmf = np.where(((x[:, None] == 0.0) & (k > 0)) | (pmf < _TINY), 0.0, pmf)
    # subnormal numbers make the product ~100x slower and carry nothing
    return np.where(weights < _TINY, 0.0, weights) @ pmf


def _formation_table(lam: float, big_b: int, epmf: np.ndarray):
    """What happens between a batch end with q waiting (1 ≤ q < B) and the next batch start.

    ``epmf[q-1, k]`` is the expected pmf (k < B) of N, the arrivals while the residual timer runs
    (the timer is random, the pmf its average). Returns, per q: the distribution of the next batch size
    (``nxt[q-1, n'-1]``), E[time the free server waits for the batch to form], E[∫ queue dt] over that
    time, and P(the B-th request arrives during it: that one waits 0). All are linear in the pmf.
    """
    n_q = big_b - 1
    q = np.arange(1, big_b)[:, None]
    k = np.arange(big_b)[None, :]
    sf = 1.0 - np.cumsum(epmf, axis=1)          # P(N > k)
    need = k < (big_b - q)                       # k below the arrivals still needed to fill the batch
    sf_used = np.where(need, sf, 0.0)
    duration = sf_used.sum(axis=1) / lam
    area = (sf_used * (q + k)).sum(axis=1) / lam
    fill = np.clip(sf[np.arange(n_q), big_b - 1 - np.arange(1, big_b)], 0.0, 1.0)
    nxt = np.zeros((n_q, big_b))
    rr, kk = np.nonzero(need)
    nxt[rr, rr + kk] = epmf[rr, kk]              # n' = q + k, column n' - 1 = (q - 1) + k
    nxt[:, big_b - 1] = fill
    return nxt, duration, area, fill


def _check_batch_time(batch_time) -> tuple[float, float]:
    if isinstance(batch_time, str) or not isinstance(batch_time, Sequence) or len(batch_time) != 2:
        raise InputError(f"batch_time must be a pair (a, b) of seconds (a batch of n takes a + b*n), "
                         f"got {batch_time!r}")
    a = check_nonnegative("batch_time[0] (a, fixed seconds per batch)", batch_time[0])
    b = check_nonnegative("batch_time[1] (b, seconds per request)", batch_time[1])
    if a + b <= 0:
        raise InputError(f"batch_time must give a batch of 1 a time > 0 (a + b > 0), got a={a}, b={b}")
    return a, b


def _tail_root(big_b: int, load: float) -> float:
    """z > 1 with z**B = exp(load (z - 1)), load = λ(a + b B) < B: the tail decay of the chain."""
    c = load / big_b
    if c <= 0.0:
        return math.inf
    w = special.lambertw(-c * math.exp(-c), k=-1)
    z = float(-w.real / c)
    if not math.isfinite(z) or z <= 1.0:
        z = 1.0 + 2.0 * (1.0 - c) / c
    return z


def _pad(pmf: np.ndarray, size: int) -> np.ndarray:
    """pmf[:size], zero-padded to ``size``."""
    out = np.zeros(size)
    k = min(size, pmf.size)
    out[:k] = pmf[:k]
    return out


def _solve_anchored(system, closed: np.ndarray, anchor: int) -> np.ndarray:
    """Stationary vector with π[anchor] = 1 (unnormalised), 0 off the closed class.

    ``system`` is (I - P)^T. The anchor's balance equation is replaced by π[anchor] = 1 and those of
    transient states by π = 0, keeping the matrix sparse (no Σπ = 1 row, which costs digits near ρ = 1).
    """
    n = system.shape[0]
    keep = closed.astype(np.float64)
    keep[anchor] = 0.0
    lhs = (sparse.diags(keep) @ system + sparse.diags(1.0 - keep)).tocsc()
    rhs = np.zeros(n)
    rhs[anchor] = 1.0
    return sparse_linalg.spsolve(lhs, rhs)


def _stationary(p_mat, start: int) -> np.ndarray:
    """Normalised stationary distribution of a finite chain with one closed class (others get 0).

    Timeouts or underflowing Poisson terms can make some states transient (e.g. no batch of 1 is ever
    started), so the closed class is found first (strongly connected components with no exit). The
    system is solved anchored at a likely state (a few chain steps from ``start``), and again anchored
    at the most likely state if the first anchor was far less likely, so that no probability is computed
    as a huge multiple of a tiny one.
    """
    n = p_mat.shape[0]
    graph = p_mat.copy()
    graph.eliminate_zeros()
    n_comp, labels = csgraph.connected_components(graph, directed=True, connection="strong")
    if n_comp == 1:
        closed = np.ones(n, dtype=bool)
    else:
        coo = graph.tocoo()
        leaves = labels[coo.row] != labels[coo.col]
        open_comp = np.zeros(n_comp, dtype=bool)
        open_comp[labels[coo.row[leaves]]] = True
        closed_comp = np.flatnonzero(~open_comp)
        if closed_comp.size != 1:  # pragma: no cover - a Poisson-fed queue has a single closed class
            raise ArithmeticError(f"batching chain has {closed_comp.size} closed classes; this is a bug")
        closed = labels == closed_comp[0]
    states = np.flatnonzero(closed)
    # a first guess of a likely state: a few steps of the chain from the class state nearest ``start``
    p_t = p_mat.T.tocsr()
    v = np.zeros(n)
    v[states[np.argmin(np.abs(states - start))]] = 1.0
    for _ in range(_POWER_STEPS):
        v = p_t @ v
    anchor = int(states[np.argmax(v[states])])
    system = sparse.identity(n, format="csr") - p_t
    for _ in range(_ANCHOR_TRIES):
        x = _solve_anchored(system, closed, anchor)
        best = int(np.argmax(x))
        if x[best] <= 1e3:  # anchor within 1e-3 of the most likely state: well conditioned
            break
        anchor = best
    pi = np.where(closed, np.maximum(x, 0.0), 0.0)
    return pi / math.fsum(pi)


def _too_close(rho: float, n_states: int) -> str:
    return (f"batching load rho = {rho:.8g} is too close to 1 for the chain solver (its stationary tail "
            f"needs {n_states} states, more than {MAX_STATES}); lower arrival_rate or raise max_batch_size")


def _timer_quadrature(n_nodes: int):
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    return (x + 1.0) / 2.0, w / 2.0


def batching(arrival_rate: float, batch_time: tuple[float, float], max_batch_size: int,
             timeout: float | None = None) -> BatchingMetrics:
    """Dynamic batching on one server with batch time a + b·n (see the module notes for the method).

    Parameters
    ----------
    arrival_rate : float
        Poisson arrival rate λ (requests/s).
    batch_time : (float, float)
        (a, b) in seconds: a batch of n requests takes exactly ``a + b*n`` seconds; a, b ≥ 0, a + b > 0.
    max_batch_size : int
        B, the most requests in one batch (1 ≤ B ≤ 4096; ≤ 256 with a timeout).
    timeout : float or None
        Batching timeout T in seconds (≥ 0). None or 0: greedy batching (start as soon as the server is
        free). With T > 0 a batch waits until B requests wait or the oldest has waited T.

    Returns
    -------
    BatchingMetrics
        ``exact`` is True for greedy batching and for T ≤ a + b B; False for T > a + b B (module notes).
        Greedy batching also has the exact waiting-time distribution (``wait_cdf``, ``wait_quantile``).

    Raises
    ------
    InputError
        An input out of range (the message names it).
    UnstableSystemError
        ρ = λ(a + b B)/B ≥ 1: even full batches cannot keep up.
    InputError
        ρ so close to 1 that the chain would need more than ``MAX_STATES`` states (ρ above about
        0.99991 for B = 1), rather than return a figure with a visible truncation error.

    Notes
    -----
    Measured against simulation (table in the module notes): exact cases within noise; the
    approximation (T > a + b B) +0.16 % to +0.76 % on the mean wait. M/D/1 (B = 1, a = 0) is
    reproduced to 2e-13 relative.
    """
    lam = check_positive("arrival_rate", arrival_rate)
    a, b = _check_batch_time(batch_time)
    big_b = check_integer("max_batch_size", max_batch_size, minimum=1, maximum=MAX_BATCH_SIZE)
    t_out = 0.0 if timeout is None else check_nonnegative("timeout", timeout)
    if t_out > 0 and big_b > MAX_TIMEOUT_BATCH_SIZE:
        raise InputError(f"max_batch_size must be an integer >= 1 and <= {MAX_TIMEOUT_BATCH_SIZE} when a "
                         f"timeout is set, got {big_b}")
    greedy = t_out == 0.0 or big_b == 1  # with B = 1 a lone request is a full batch: no timer
    service = a + b * np.arange(1, big_b + 1, dtype=np.float64)  # S_n, index n-1
    s_full = float(service[-1])
    load_full = lam * s_full
    rho = load_full / big_b
    check_stable(rho, what=f"batching server (max batch {big_b}, batch time a + b*n)")

    # -- chain size --------------------------------------------------------------------------------
    z = _tail_root(big_b, load_full)
    pmf_arr = [_poisson_pmf_upto(lam * float(s)) for s in service]
    k_full = pmf_arr[-1].size - 1
    tail_levels = math.ceil(_TAIL_LOG_TOLERANCE / math.log(z)) if math.isfinite(z) else 0
    n_states = max(big_b + tail_levels + 2 * k_full + big_b, 2 * big_b + 1)
    if n_states > MAX_STATES:
        raise InputError(_too_close(rho, n_states))

    # -- transitions out of the boundary states (n, 0), n = 1..B, and (B, m), m = 1..B-1 -----------
    # boundary[i, n'-1]: P(next batch is (n', 0)); the rest of row i goes to (B, q - B) for q >= B.
    n_bound = 2 * big_b - 1
    boundary = np.zeros((n_bound, big_b))
    form_dur = np.zeros(n_states)   # E[time the free server waits for the next batch to form]
    form_area = np.zeros(n_states)  # E[∫ queue dt] during that time
    zero_wait = np.zeros(n_states)  # E[# requests of the next batch that wait 0]
    idle_prob = np.zeros(n_states)  # P(nobody waits at the end of this batch)
    for n in range(1, big_b + 1):
        idle_prob[n - 1] = pmf_arr[n - 1][0]
    if not greedy:
        nodes, node_w = _timer_quadrature(_TIMER_NODES_BASE + big_b // 2)
        q_arr = np.arange(1, big_b, dtype=np.float64)
        idle_tab = _formation_table(lam, big_b, np.tile(
            _expected_pmf(lam, np.array([t_out]), np.array([1.0]), big_b), (big_b - 1, 1)))
        idle_next, idle_dur, idle_area, idle_fill = (x[0] for x in idle_tab)
        idle_zero_wait = idle_fill
        for n in range(1, big_b + 1):
            sn = float(service[n - 1])
            vmax = min(1.0, t_out / sn)
            v = vmax * nodes
            taus = np.maximum(t_out - sn * v, 0.0)
            # the oldest of q arrivals during the batch has age sn*V, P(V <= v) = v**q
            wts = vmax * node_w[None, :] * q_arr[:, None] * np.power(v[None, :], q_arr[:, None] - 1.0)
            epmf = _expected_pmf(lam, taus, wts, big_b)
            epmf[:, 0] += 1.0 - np.power(vmax, q_arr)  # timer already run out: the batch starts at once
            nxt, dur, area_q, fill = _formation_table(lam, big_b, epmf)
            p_q = _pad(pmf_arr[n - 1], big_b)[1:]      # P(A = q), q = 1..B-1
            boundary[n - 1] = p_q @ nxt
            form_dur[n - 1] = p_q @ dur
            form_area[n - 1] = p_q @ area_q
            zero_wait[n - 1] = p_q @ fill
        # a request left behind a full batch has waited >= a + b*B (exact when timeout <= a + b*B)
        carry_tau = max(t_out - s_full, 0.0)
        carry = _formation_table(lam, big_b, np.tile(
            _expected_pmf(lam, np.array([carry_tau]), np.array([1.0]), big_b), (big_b - 1, 1)))
        # rows (B, m), m = 1..B-1: q = m + A < B with probability P(A = q - m)
        p_full = _pad(pmf_arr[-1], big_b)
        m_idx = np.arange(1, big_b)[:, None]
        q_idx = np.arange(1, big_b)[None, :]
        w_mq = np.where(q_idx >= m_idx, p_full[np.clip(q_idx - m_idx, 0, None)], 0.0)
        boundary[big_b:] = w_mq @ carry[0]
        form_dur[big_b:n_bound] = w_mq @ carry[1]
        form_area[big_b:n_bound] = w_mq @ carry[2]
        zero_wait[big_b:n_bound] = w_mq @ carry[3]
    else:
        idle_next = np.zeros(big_b)
        idle_next[0] = 1.0
        idle_dur = idle_area = 0.0
        idle_zero_wait = 1.0
        # greedy: q waiting at a batch end (1 <= q < B) start a batch of q at once
        for n in range(1, big_b + 1):
            boundary[n - 1, :big_b - 1] = _pad(pmf_arr[n - 1], big_b)[1:]
        if big_b > 1:
            p_full = _pad(pmf_arr[-1], big_b)
            m_idx = np.arange(1, big_b)[:, None]
            q_idx = np.arange(1, big_b)[None, :]
            boundary[big_b:, :big_b - 1] = np.where(q_idx >= m_idx, p_full[np.clip(q_idx - m_idx, 0, None)],
                                                    0.0)
    # q = 0 at the end of a batch (only when m = 0): idle, then the next arrival starts forming a batch
    p0 = idle_prob[:big_b]
    boundary[:big_b] += p0[:, None] * idle_next[None, :]
    form_dur[:big_b] += p0 * idle_dur
    form_area[:big_b] += p0 * idle_area
    zero_wait[:big_b] += p0 * idle_zero_wait

    # -- transition matrix: boundary part plus the jumps to (B, q - B), q >= B ------------------------
    rows, cols, vals = [], [], []
    for i in range(n_bound):
        n = min(i + 1, big_b)
        m = max(i - big_b + 1, 0)
        pmf = pmf_arr[n - 1]
        q = m + np.arange(pmf.size)
        over = q >= big_b
        rows.append(np.full(int(over.sum()), i))
        cols.append(np.minimum(q[over] - 1, n_states - 1))
        vals.append(pmf[over])
    if n_states > n_bound:  # level-homogeneous part: (B, m), m >= B, goes to index i - B + A
        pmf = pmf_arr[-1]
        i_idx = np.arange(n_bound, n_states)
        tgt = i_idx[:, None] - big_b + np.arange(pmf.size)[None, :]
        rows.append(np.repeat(i_idx, pmf.size))
        cols.append(np.minimum(tgt, n_states - 1).ravel())
        vals.append(np.tile(pmf, i_idx.size))
    b_rows, b_cols = np.nonzero(boundary)
    rows.append(b_rows)
    cols.append(b_cols)
    vals.append(boundary[b_rows, b_cols])
    vals_all, rows_all, cols_all = np.concatenate(vals), np.concatenate(rows), np.concatenate(cols)
    kept = vals_all > 0.0
    p_mat = sparse.coo_matrix((vals_all[kept], (rows_all[kept], cols_all[kept])),
                              shape=(n_states, n_states)).tocsr()

    # -- stationary distribution ---------------------------------------------------------------------
    pi = _stationary(p_mat, start=min(max(round(load_full) - 1, 0), n_states - 1))
    residual = float(np.abs(p_mat.T @ pi - pi).sum())
    r_tail = 1.0 / z if math.isfinite(z) else 0.0
    truncation_mass = float(pi[-1] / (1.0 - r_tail)) if n_states > n_bound else 0.0

    # -- cycle rewards -----------------------------------------------------------------------------
    idx = np.arange(n_states)
    n_of = np.minimum(idx + 1, big_b)
    m_of = np.maximum(idx - big_b + 1, 0)
    s_of = service[n_of - 1]
    batch_pmf = np.bincount(n_of - 1, weights=pi, minlength=big_b)
    mean_n = float(np.dot(pi, n_of))
    mean_s = float(np.dot(pi, s_of))
    idle_mean = float(np.dot(pi, idle_prob)) / lam
    formation_mean = float(np.dot(pi, form_dur))
    cycle = mean_s + idle_mean + formation_mean
    area = float(np.dot(pi, m_of * s_of + 0.5 * lam * s_of * s_of + form_area))
    served_time = float(np.dot(pi, n_of * s_of))
    wait = finite_or_raise("batching mean wait", area / mean_n)
    service_mean = served_time / mean_n
    sojourn = wait + service_mean
    util = mean_s / cycle
    throughput = mean_n / cycle
    p_wait = 1.0 - float(np.dot(pi, zero_wait)) / mean_n
    exact = greedy or t_out <= s_full
    if greedy:
        method = "embedded Markov chain at batch starts (greedy batching), exact"
    elif exact:
        method = "embedded Markov chain at batch starts with timer quadrature, exact (timeout <= a + b*B)"
    else:
        method = ("embedded Markov chain at batch starts with timer quadrature; approximation: a request "
                  "left behind a full batch is taken to have waited a + b*B (timeout > a + b*B)")
    if truncation_mass > _MAX_TRUNCATION_MASS:  # pragma: no cover - the level above is chosen to avoid it
        raise ArithmeticError(f"batching chain truncation error {truncation_mass:.2g} at rho = {rho:.8g}; "
                              "this is a bug")
    notes = (f"offered utilization rho = lambda (a + b B)/B = {rho:.6g}",
             f"chain truncated at {n_states} states; estimated neglected mass {truncation_mass:.3g}; "
             f"balance residual {residual:.3g}")

    chain = {"lam": lam, "service": service, "cycle_mean": cycle, "pi_n0": pi[:big_b].copy(),
             "pi_tail": pi[big_b:].copy()}
    label = "greedy" if t_out == 0.0 else f"timeout {t_out:g} s"
    return BatchingMetrics(
        model=f"M/D^(1,{big_b})/1 dynamic batching ({label})", arrival_rate=lam, servers=1,
        utilization=util, p_wait=min(max(p_wait, 0.0), 1.0), wait_mean=wait, sojourn_mean=sojourn,
        queue_length_mean=lam * wait, system_length_mean=lam * sojourn, exact=exact, method=method,
        notes=notes, batch_time=(a, b), max_batch_size=big_b, timeout=timeout,
        offered_utilization=rho, batch_size_pmf=batch_pmf, mean_batch_size=mean_n,
        request_batch_size_mean=float(np.dot(pi, n_of * n_of)) / mean_n, batch_rate=1.0 / cycle,
        throughput=throughput, throughput_relative_error=throughput / lam - 1.0, service_mean=service_mean,
        formation_time_mean=formation_mean, truncation_level=n_states, truncation_mass=truncation_mass,
        _chain=chain,
    )
