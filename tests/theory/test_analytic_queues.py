"""Queue models against independent references.

* Exact formulas vs 50-digit mpmath evaluations of the textbook definitions (factorial sums, Erlang's
  alternating sum, convolution integrals), to 1e-9 relative, including 1,000 and 10,000 servers at
  ρ = 0.99. These references share no code with the implementation.
* M/D/c (Crommelin, Lambert-W roots, FFT inversion) vs a direct float64 solve of the truncated
  embedded Markov chain, vs M/D/1 closed forms, and vs simulation.
* Approximations (Allen–Cunneen, Kingman–KLB, Whitt, Cosmetatos, M/G/1 gamma-fitted percentiles) vs
  exact values where they exist and vs long seeded simulations otherwise; each assertion states the
  measured error and the reason for its tolerance. The measured errors are quoted in the docstrings
  of :func:`simulator.analytic.ggc`, :func:`~simulator.analytic.cosmetatos_mdc` and
  :func:`~simulator.analytic.mg1`.

The simulation is the Kiefer–Wolfowitz workload-vector recursion for FCFS G/G/c (J. Kiefer,
J. Wolfowitz, "On the theory of queues with many servers", Trans. AMS 78 (1955)): an arrival joins
the server with the least remaining work and waits for that work.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from numba import njit
from scipy import optimize

from simulator.analytic import (
    cosmetatos_mdc,
    erlang_b,
    erlang_c,
    ggc,
    md1,
    mdc,
    mg1,
    mm1,
    mmc,
    mmck,
)

REL = 1e-9  # the bar for exact formulas vs high-precision references


def rel_err(x: float, ref) -> float:
    return abs(x - float(ref)) / abs(float(ref))


# ---------------------------------------------------------------------------------------------------
# mpmath references (50 digits): direct factorial sums, no recursion shared with the implementation
# ---------------------------------------------------------------------------------------------------
def mp_poisson_terms(a, n_max):
    """a^k/k! for k = 0..n_max at the current mpmath precision."""
    terms = [mp.mpf(1)]
    for k in range(1, n_max + 1):
        terms.append(terms[-1] * a / k)
    return terms


def mp_erlang(c: int, a: float):
    """(Erlang B, Erlang C) from the textbook sums B = (a^c/c!)/Σ_{k≤c} a^k/k!, C = (a^c/c!)/(1-ρ) / (...)."""
    with mp.workdps(50):
        a = mp.mpf(a)
        t = mp_poisson_terms(a, c)
        b = t[c] / mp.fsum(t)
        rho = a / c
        top = t[c] / (1 - rho)
        erl_c = top / (mp.fsum(t[:c]) + top)
        return b, erl_c


ERLANG_CASES = [(1, 0.5), (2, 1.8), (10, 9.9), (50, 45.0), (100, 60.0), (1000, 990.0), (1000, 999.0),
                (10000, 9900.0), (10000, 9990.0), (10000, 9000.0)]


@pytest.mark.parametrize(("c", "a"), ERLANG_CASES)
def test_erlang_b_and_c_match_50_digit_factorial_sums(c, a):
    b_ref, c_ref = mp_erlang(c, a)
    assert rel_err(erlang_b(c, a), b_ref) < REL
    assert rel_err(erlang_c(c, a), c_ref) < REL


def test_erlang_b_overloaded_and_tiny_values():
    # Erlang B needs no stability: a = 1.5c is fine. Small loads give tiny but representable values.
    for c, a in [(100, 150.0), (10000, 15000.0), (200, 20.0)]:
        assert rel_err(erlang_b(c, a), mp_erlang(c, a)[0]) < REL


@pytest.mark.parametrize(("c", "a"), [(1, 0.7), (4, 3.2), (1000, 990.0), (10000, 9900.0)])
def test_mmc_means_quantiles_and_states_match_mpmath(c, a):
    mu = 2.0
    m = mmc(a * mu, mu, c)
    _, c_ref = mp_erlang(c, a)
    with mp.workdps(50):
        wq_ref = c_ref / (mu * (c - mp.mpf(a)))
        # p99 of W_q from P(W_q > t) = C e^{-(cμ-λ)t}
        p99_ref = mp.log(c_ref / mp.mpf("0.01")) / (mu * (c - mp.mpf(a)))
        t = mp_poisson_terms(mp.mpf(a), c)
        rho = mp.mpf(a) / c
        norm = mp.fsum(t[:c]) + t[c] / (1 - rho)
        p_states = {n: t[n] / norm for n in (0, c // 2, c - 1)}
        p_states[c + 5] = t[c] * rho ** 5 / norm
    assert rel_err(m.p_wait, c_ref) < REL
    assert rel_err(m.wait_mean, wq_ref) < REL
    assert rel_err(m.queue_length_mean, wq_ref * a * mu) < REL
    assert rel_err(m.wait_quantile(0.99), p99_ref) < REL
    for n, ref in p_states.items():
        if ref > 1e-300:
            assert rel_err(m.state_probability(n), ref) < REL


@pytest.mark.parametrize(("lam", "mu", "c"), [
    (9.0, 5.0, 2),         # cμ - λ = 1 ≠ μ
    (1.0, 1.0, 2),         # cμ - λ = μ exactly: the Erlang-2 special case
    (1.0 - 1e-7, 1.0, 2),  # within 1e-7 of the special case: no cancellation allowed
    (990.0, 1.0, 1000),
])
def test_mmc_sojourn_distribution_matches_numerical_convolution(lam, mu, c):
    m = mmc(lam, mu, c)
    with mp.workdps(30):
        c_ref = mp.mpf(m.p_wait)
        theta = c * mp.mpf(mu) - mp.mpf(lam)

        def sf_ref(t):
            # P(T > t) = (1-C) e^{-μt} + C ∫_0^t θ e^{-θs} e^{-μ(t-s)} ds + C e^{-θt}, integrated numerically.
            t = mp.mpf(t)
            conv = mp.quad(lambda s: theta * mp.exp(-theta * s - mu * (t - s)), [0, t])
            return (1 - c_ref) * mp.exp(-mu * t) + c_ref * (conv + mp.exp(-theta * t))

        for t in (0.01, 0.5, 2.0, 10.0):
            assert rel_err(m.sojourn_survival(t), sf_ref(t)) < REL
        for q in (0.5, 0.99, 0.99999):
            t_q = m.sojourn_quantile(q)
            assert rel_err(float(sf_ref(t_q)), 1 - q) < 1e-8  # root found to ~1e-15 in t
    assert m.sojourn_mean == pytest.approx(m.wait_mean + 1 / mu, rel=1e-15)


def test_mm1_moments_and_quantile_closed_forms():
    # M/M/1: P(W_q > t) = ρ e^{-(μ-λ)t}; E[W_q^k] = ρ k!/(μ-λ)^k (Kleinrock, Queueing Systems I, §3.2).
    m = mm1(0.9, 1.0)
    for k in range(1, 6):
        assert rel_err(m.wait_moment(k), 0.9 * math.factorial(k) / 0.1 ** k) < 1e-13
    assert m.wait_quantile(0.99) == pytest.approx(math.log(0.9 / 0.01) / 0.1, rel=1e-14)
    assert m.sojourn_quantile(0.99) == pytest.approx(math.log(100) / 0.1, rel=1e-12)  # T ~ Exp(μ - λ)


def mp_mmck(lam, mu, c, k_cap):
    """p_n of M/M/c/K from the product form with exact factorials (50 digits)."""
    with mp.workdps(50):
        a = mp.mpf(lam) / mu
        t = mp_poisson_terms(a, c)
        w = t + [t[c] * (a / c) ** (n - c) for n in range(c + 1, k_cap + 1)]
        total = mp.fsum(w)
        return [x / total for x in w]


@pytest.mark.parametrize(("lam", "mu", "c", "k_cap"), [
    (3.0, 2.0, 2, 5), (40.0, 30.0, 3, 7), (15.0, 1.0, 10, 30), (990.0, 1.0, 1000, 1100), (1.0, 1.0, 5, 5)])
def test_mmck_matches_product_form_at_50_digits(lam, mu, c, k_cap):
    m = mmck(lam, mu, c, k_cap)
    p = mp_mmck(lam, mu, c, k_cap)
    with mp.workdps(50):
        lam_eff = lam * (1 - p[-1])
        ell = mp.fsum(n * x for n, x in enumerate(p))
        lq = mp.fsum((n - c) * x for n, x in enumerate(p) if n > c)
        admitted = [x / (1 - p[-1]) for x in p[:-1]]

        def wait_sf(t):
            # An admitted arrival finding n ≥ c waits Erlang(n-c+1, cμ); its tail is a Poisson sum.
            return mp.fsum(admitted[n] * mp.gammainc(n - c + 1, c * mu * mp.mpf(t), mp.inf, regularized=True)
                           for n in range(c, k_cap))
    assert rel_err(m.blocking_probability, p[-1]) < REL
    for n in (0, c // 2, c, k_cap - 1):
        if p[n] > 1e-300:  # below that the float answer is an underflowed 0 (p_0 = 8e-431 for c = 1000)
            assert rel_err(m.state_probability(n), p[n]) < REL
    assert rel_err(m.system_length_mean, ell) < REL
    assert rel_err(m.effective_arrival_rate, lam_eff) < REL
    assert rel_err(m.sojourn_mean, ell / lam_eff) < REL
    if k_cap > c:
        assert rel_err(m.queue_length_mean, lq) < REL
        assert rel_err(m.wait_mean, lq / lam_eff) < REL
        for t in (0.1 / mu, 1.0 / mu):
            ref = wait_sf(t)
            if ref > 1e-12:
                assert rel_err(1 - m.wait_cdf(t), ref) < 1e-7  # 1 - cdf in float64: ~1e-16 absolute


def test_mmck_sojourn_cdf_integrates_to_the_little_mean():
    # E[T] = ∫ P(T > t) dt must equal L/λ_eff: checks the Erlang ⊛ Exp convolution independently.
    from scipy import integrate
    for c in (1, 3):
        m = mmck(4.0, 2.0, c, 9)
        integral, _ = integrate.quad(lambda t, m=m: 1 - m.sojourn_cdf(t), 0, 60, limit=400, epsabs=1e-13)
        assert integral == pytest.approx(m.sojourn_mean, rel=1e-8)


# ---------------------------------------------------------------------------------------------------
# M/D/1 and M/D/c
# ---------------------------------------------------------------------------------------------------
def mp_md1_wait_cdf(lam, d, t):
    """Erlang's formula P(W_q ≤ t) = (1-ρ) Σ_{k=0}^{⌊t/D⌋} (λ(kD-t))^k/k! e^{-λ(kD-t)} (Erlang 1909).

    Its terms alternate in sign and reach e^{2λt}, so it is evaluated with 40 digits beyond the
    ~2λt/ln10 that cancel.
    """
    with mp.workdps(40 + int(2 * lam * t / math.log(10))):
        lam, d, t = mp.mpf(lam), mp.mpf(d), mp.mpf(t)
        total = mp.fsum((lam * (k * d - t)) ** k / mp.factorial(k) * mp.exp(-lam * (k * d - t))
                        for k in range(int(mp.floor(t / d)) + 1))
        return (1 - lam * d) * total


@pytest.mark.parametrize("rho", [0.3, 0.8, 0.95, 0.99])
def test_md1_wait_cdf_matches_erlang_alternating_sum_in_mpmath(rho):
    d = 0.002  # 2 ms service: the scale must not matter
    m = md1(rho / d, d)
    for x in (0.0, 0.37, 1.0, 2.5, 7.9, 20.0, 60.0, 150.0):
        t = x * d
        ref = mp_md1_wait_cdf(rho / d, d, t)
        assert rel_err(m.wait_cdf(t), ref) < REL, (x, m.wait_cdf(t), ref)
    # percentiles: the CDF of the mpmath reference at the returned quantile is q
    for q in (0.9, 0.99, 0.999):
        t_q = m.wait_quantile(q)
        assert float(mp_md1_wait_cdf(rho / d, d, t_q)) == pytest.approx(q, rel=1e-9)
        assert m.sojourn_quantile(q) == pytest.approx(t_q + d, rel=1e-15)


def test_md1_is_pollaczek_khinchine_and_matches_mdc_with_one_server():
    m = md1(0.8, 1.0)
    assert m.p_wait == pytest.approx(0.8, rel=1e-15)
    assert m.wait_mean == pytest.approx(0.8 / (2 * 0.2), rel=1e-15)  # ρD/(2(1-ρ))
    assert mdc(0.8, 1.0, 1).wait_mean == m.wait_mean
    assert mg1(0.8, (1.0, 1.0, 1.0)).wait_mean == pytest.approx(m.wait_mean, rel=1e-15)


def truncated_chain_reference(c: int, a: float, n_max: int) -> np.ndarray:
    """Stationary law of N' = (N - c)^+ + Poisson(a), truncated at n_max, by a dense float64 solve.

    Independent of the roots/FFT method; truncation error is below 1e-16 for the sizes used.
    """
    from scipy import stats
    j = np.arange(n_max)
    start = np.maximum(j - c, 0)
    trans = stats.poisson.pmf(j[None, :] - start[:, None], a)
    trans[:, -1] += 1.0 - trans.sum(axis=1)  # keep rows stochastic; the lost mass is < 1e-16
    system = trans.T - np.eye(n_max)
    system[-1, :] = 1.0
    rhs = np.zeros(n_max)
    rhs[-1] = 1.0
    return np.linalg.solve(system, rhs)


@pytest.mark.parametrize(("c", "rho"), [(2, 0.5), (3, 0.8), (5, 0.9), (8, 0.7)])
def test_mdc_crommelin_matches_direct_chain_solution(c, rho):
    d = 0.5
    a = c * rho
    m = mdc(a / d, d, c)
    p = truncated_chain_reference(c, a, 800)
    q = np.concatenate(([p[: c + 1].sum()], p[c + 1:]))  # Q = (N - c)^+
    assert rel_err(m.p_wait, 1 - p[:c].sum()) < REL
    assert rel_err(m.queue_length_mean, float(np.dot(np.arange(q.size), q))) < REL
    assert rel_err(m.wait_mean, float(np.dot(np.arange(q.size), q)) / (a / d)) < REL
    from scipy import special
    for x in (0.0, 0.3, 1.0, 2.7, 6.1):
        k, u = divmod(x, 1.0)
        m_max = int((k + 1) * c - 1)
        ref = float(np.dot(q[: m_max + 1], special.pdtr(m_max - np.arange(m_max + 1), a * (1 - u))))
        assert rel_err(m.wait_cdf(x * d), ref) < REL


def mp_crommelin_series(c: int, a: float, dps: int = 40):
    """P(wait) and L_q of M/D/c at 40 digits from Crommelin's series (Crommelin 1932; Tijms 2003):
    P(W = 0) = exp(-Σ_n P(Pois(na) ≥ nc)/n), L_q = Σ_n E[(Pois(na) - nc)^+]/n, with Poisson terms
    summed one by one from their definition.
    """
    with mp.workdps(dps):
        a = mp.mpf(a)
        rate = c * (a / c - 1 - mp.log(a / c))
        n_terms = int(45 / rate) + 2
        tail_sum, lq = mp.mpf(0), mp.mpf(0)
        for n in range(1, n_terms + 1):
            mean, m = n * a, n * c
            term = mp.exp(-mean) * mean ** m / mp.factorial(m)
            j, excess, at_least = m, mp.mpf(0), mp.mpf(0)
            while True:
                excess += (j - m) * term
                at_least += term
                j += 1
                term *= mean / j
                if j > mean and term < mp.mpf(10) ** (-dps) * at_least:
                    break
            tail_sum += at_least / n
            lq += excess / n
        return -mp.expm1(-tail_sum), lq


@pytest.mark.parametrize(("c", "rho"), [(2, 0.5), (4, 0.2), (8, 0.3), (32, 0.5), (64, 0.3), (64, 0.7), (16, 0.8)])
def test_mdc_matches_crommelin_series_at_40_digits(c, rho):
    # Light loads included: there P(wait) and L_q are tiny and the root formulas would cancel.
    m = mdc(c * rho, 1.0, c)
    p_wait, lq = mp_crommelin_series(c, c * rho)
    assert rel_err(m.p_wait, p_wait) < REL
    assert rel_err(m.queue_length_mean, lq) < REL


@pytest.mark.slow
def test_mdc_root_formulas_agree_with_the_series_at_10000_servers():
    # Two float64 routes (Lambert-W root sums vs Crommelin's positive series) at c = 10,000, ρ = 0.99.
    from simulator.analytic.md import _crommelin_series
    m = mdc(9900.0, 1.0, 10000)
    p_wait, lq = _crommelin_series(10000, 9900.0)
    assert rel_err(m.p_wait, p_wait) < REL
    assert rel_err(m.queue_length_mean, lq) < REL


@pytest.mark.parametrize(("c", "rho"), [(1000, 0.99), (10000, 0.99)])
def test_mdc_many_servers_is_finite_and_self_consistent(c, rho):
    # c = 10,000: c - 1 Lambert-W roots; the mean from the root sum and the mean of the FFT-inverted
    # queue-length law are computed by different routes and must agree.
    m = mdc(c * rho, 1.0, c)
    assert 0.0 < m.p_wait < erlang_c(c, c * rho)  # deterministic service waits less often than M/M/c
    assert 0.0 < m.wait_mean < mmc(c * rho, 1.0, c).wait_mean
    pmf = m.queue_pmf
    assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
    assert float(np.dot(np.arange(pmf.size), pmf)) == pytest.approx(m.queue_length_mean, rel=1e-8)
    assert m.wait_cdf(0.0) == pytest.approx(1 - m.p_wait, abs=1e-10)
    assert m.wait_cdf(m.wait_quantile(0.99)) == pytest.approx(0.99, abs=1e-10)


def test_takacs_moments_match_closed_forms():
    # M/M/1: E[W_q^k] = ρ k!/(μ-λ)^k (Kleinrock §3.2), service moments E[S^j] = j!/μ^j.
    lam, mu = 0.7, 1.3
    g = mg1(lam, [math.factorial(j) / mu ** j for j in range(1, 7)])
    for k in range(1, 6):
        assert rel_err(g.wait_moment(k), (lam / mu) * math.factorial(k) / (mu - lam) ** k) < 1e-12
    # M/D/1: E[W_q^2] = ρD²(2+ρ)/(6(1-ρ)²) (Gross & Harris, Fundamentals of Queueing Theory, §5.1.1).
    rho, d = 0.8, 2.0
    g = mg1(rho / d, (d, d * d, d ** 3))
    assert rel_err(g.wait_moment(2), rho * d * d * (2 + rho) / (6 * (1 - rho) ** 2)) < 1e-13


def test_takacs_moments_match_the_exact_md1_distribution():
    # Independent route: E[W^k] = ∫ k t^{k-1} P(W > t) dt over the exact (FFT/Crommelin) M/D/1 law.
    # The CDF is analytic between multiples of D (kinks at kD), so 30-point Gauss-Legendre per unit
    # interval is exact to rounding; beyond t = 120 D the tail is below 1e-17.
    m = md1(0.7, 1.0)
    nodes, weights = np.polynomial.legendre.leggauss(30)
    t = (np.arange(120)[:, None] + (nodes[None, :] + 1) / 2).ravel()
    w = np.tile(weights / 2, 120)
    survival = np.array([1 - m.wait_cdf(x) for x in t])
    for k in (2, 3):
        assert rel_err(float(np.sum(w * k * t ** (k - 1) * survival)), m.wait_moment(k)) < 1e-9


# ---------------------------------------------------------------------------------------------------
# Simulation (Kiefer–Wolfowitz) for the approximations
# ---------------------------------------------------------------------------------------------------
@njit(cache=False)
def _kiefer_wolfowitz(interarrivals, services, servers):
    work = np.zeros(servers)  # remaining work at each server just after the last arrival
    waits = np.empty(services.size)
    for i in range(services.size):
        j = 0
        for k in range(1, servers):
            if work[k] < work[j]:
                j = k
        waits[i] = work[j]
        work[j] += services[i]
        dt = interarrivals[i]
        for k in range(servers):
            work[k] = work[k] - dt if work[k] > dt else 0.0
    return waits


def simulate_waits(interarrivals: np.ndarray, services: np.ndarray, servers: int) -> np.ndarray:
    """FCFS G/G/c waiting times, the first 2% dropped as warm-up (the run starts empty)."""
    w = _kiefer_wolfowitz(interarrivals, services, servers)
    return w[w.size // 50:]


def batch_mean_ci(x: np.ndarray, batches: int = 40) -> tuple[float, float]:
    """Mean and 95% half-width from batch means (batches of 50,000+ customers are ~independent)."""
    means = x[: x.size // batches * batches].reshape(batches, -1).mean(axis=1)
    return float(means.mean()), float(1.96 * means.std(ddof=1) / math.sqrt(batches))


def lognormal(rng, mean: float, scv: float, n: int) -> np.ndarray:
    s2 = math.log1p(scv)
    return rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2), n)


def rng_for(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([20261127, *key]))


N_SIM = 4_000_000


@pytest.mark.slow
def test_simulation_reproduces_exact_mmc_and_mdc():
    """The simulator itself against exact figures, so the approximation checks below can trust it."""
    rng = rng_for(1)
    w = simulate_waits(rng.exponential(1 / 3.2, N_SIM), rng.exponential(1.0, N_SIM), 4)
    mean, half = batch_mean_ci(w)
    exact = mmc(3.2, 1.0, 4)
    # 4 half-widths: a false alarm has probability < 1e-4 for a correct simulator.
    assert abs(mean - exact.wait_mean) < 4 * half
    assert abs(np.mean(w > 0) - exact.p_wait) < 0.005  # binomial sd with correlation ~0.001
    w = simulate_waits(rng.exponential(1 / 3.2, N_SIM), np.ones(N_SIM), 4)
    mean, half = batch_mean_ci(w)
    exact = mdc(3.2, 1.0, 4)  # Crommelin, via Lambert-W roots and FFT
    assert abs(mean - exact.wait_mean) < 4 * half
    assert abs(np.mean(w > 0) - exact.p_wait) < 0.005
    for q in (0.9, 0.99):
        # the exact quantile sits where the empirical CDF is q (± a few 1e-3 of sampling error)
        assert abs(np.mean(w <= exact.wait_quantile(q)) - q) < 0.003


def gamma_m1_exact(lam: float, mu: float, shape: float) -> float:
    """Exact GI/M/1 mean wait σ/(μ(1-σ)), σ the root in (0,1) of σ = A*(μ(1-σ)) (Gross & Harris §6.2)."""
    def lst(s):
        return (shape * lam / (shape * lam + s)) ** shape
    sigma = optimize.brentq(lambda s: s - lst(mu * (1 - s)), 1e-12, 1 - 1e-12, xtol=1e-15)
    return sigma / (mu * (1 - sigma))


def test_ggc_methods_against_exact_gi_m_1_and_m_d_c():
    # Gamma(c_a² = 0.5)/M/1 at ρ = 0.8: exact W_q = 2.8578 (GI/M/1 root).
    exact = gamma_m1_exact(0.8, 1.0, 2.0)
    errors = {meth: ggc(0.8, 1, 1.0, 1.0, 0.5, method=meth).wait_mean / exact - 1
              for meth in ("allen-cunneen", "kingman", "whitt")}
    # measured: Allen-Cunneen +5.0%, Kingman-KLB +2.1%, Whitt -1.1%; tolerance 0.5% around them
    # (deterministic formulas: this pins the implementation of each correction factor).
    assert errors["allen-cunneen"] == pytest.approx(0.050, abs=0.005)
    assert errors["kingman"] == pytest.approx(0.021, abs=0.005)
    assert errors["whitt"] == pytest.approx(-0.011, abs=0.005)
    # M/D/4 at ρ = 0.8 against Crommelin: Allen-Cunneen/Kingman -3.4%, Whitt -0.2%.
    exact = mdc(3.2, 1.0, 4).wait_mean
    assert ggc(3.2, 4, 1.0, 0.0, method="allen-cunneen").wait_mean / exact - 1 == pytest.approx(-0.034, abs=0.005)
    assert ggc(3.2, 4, 1.0, 0.0, method="whitt").wait_mean / exact - 1 == pytest.approx(-0.002, abs=0.005)


@pytest.mark.slow
def test_simulated_gamma_m_1_agrees_with_exact_root():
    rng = rng_for(2)
    w = simulate_waits(rng.gamma(2.0, 1.25 / 2.0, N_SIM), rng.exponential(1.0, N_SIM), 1)
    mean, half = batch_mean_ci(w)
    assert abs(mean - gamma_m1_exact(0.8, 1.0, 2.0)) < 4 * half  # 4 half-widths: false alarm < 1e-4


SIM_CASES = {
    # name: (interarrival sampler, service sampler, ggc keyword arguments)
    "M/LN/4 rho=0.8 cs2=2": (lambda r, n: r.exponential(1 / 3.2, n), lambda r, n: lognormal(r, 1.0, 2.0, n),
                             dict(arrival_rate=3.2, servers=4, service_mean=1.0, service_scv=2.0)),
    "LN/M/4 rho=0.8 ca2=2": (lambda r, n: lognormal(r, 1 / 3.2, 2.0, n), lambda r, n: r.exponential(1.0, n),
                             dict(arrival_rate=3.2, servers=4, service_mean=1.0, service_scv=1.0, arrival_scv=2.0)),
    "Gamma/LN/2 rho=0.85": (lambda r, n: r.gamma(2.0, 1 / 1.7 / 2.0, n), lambda r, n: lognormal(r, 1.0, 2.0, n),
                            dict(arrival_rate=1.7, servers=2, service_mean=1.0, service_scv=2.0, arrival_scv=0.5)),
}
# Relative error of the approximate mean wait measured on 3 × 10^7 customers per case (three seeds of
# 10^7; 95% CI of the simulated mean ±0.5 to ±0.8%), quoted in the docstring of ggc().
MEASURED = {
    "M/LN/4 rho=0.8 cs2=2": {"allen-cunneen": 0.076, "kingman": 0.076, "whitt": 0.027},
    "LN/M/4 rho=0.8 ca2=2": {"allen-cunneen": 0.028, "kingman": -0.006, "whitt": 0.056},
    "Gamma/LN/2 rho=0.85": {"allen-cunneen": 0.067, "kingman": 0.055, "whitt": 0.021},
}
N_APPROX = 8_000_000


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SIM_CASES))
def test_ggc_approximation_errors_against_simulation(case):
    arrivals, services, kwargs = SIM_CASES[case]
    rng = rng_for(3, sorted(SIM_CASES).index(case))
    w = simulate_waits(arrivals(rng, N_APPROX), services(rng, N_APPROX), kwargs["servers"])
    mean, half = batch_mean_ci(w)
    assert half / mean < 0.025  # the run is long enough to say something (typically ±1.3%)
    for method, measured in MEASURED[case].items():
        err = ggc(method=method, **kwargs).wait_mean / mean - 1
        # The documented error comes from independent runs 4x as long; this run's own 95% sampling
        # error is `half`, so the documented value must lie within 3 half-widths (false alarm < 0.3%).
        assert abs(err - measured) < 3 * half / mean, (method, err, measured, half / mean)


def test_cosmetatos_against_exact_mdc():
    worst = 0.0
    for c in (2, 4, 8, 16, 32):
        for rho in (0.5, 0.7, 0.8, 0.9, 0.95):
            exact = mdc(c * rho, 1.0, c).wait_mean
            worst = max(worst, abs(cosmetatos_mdc(c * rho, 1.0, c).wait_mean / exact - 1))
    # Deterministic comparison: the worst error over this grid is 2.6% (c = 32, ρ = 0.7, where W_q is
    # tiny); for c ≤ 8 it is below 0.8%. Quoted in the docstring of cosmetatos_mdc.
    assert worst == pytest.approx(0.026, abs=0.001)
    assert cosmetatos_mdc(0.8, 1.0, 1).wait_mean == pytest.approx(md1(0.8, 1.0).wait_mean, rel=1e-14)


def test_mg1_gamma_fit_percentiles_against_exact_md1():
    # M/D/1 at ρ = 0.8: exact percentiles from md1 (validated above against mpmath).
    exact = md1(0.8, 1.0)
    approx = mg1(0.8, (1.0, 1.0, 1.0))
    # Deterministic comparison; errors quoted in the docstring of mg1 (tolerance: rounding of the quote).
    for q, wait_err, sojourn_err in [(0.9, 0.0075, 0.011), (0.99, -0.0126, -0.054), (0.999, -0.0235, -0.089)]:
        assert approx.wait_quantile(q) / exact.wait_quantile(q) - 1 == pytest.approx(wait_err, abs=5e-4)
        assert approx.sojourn_quantile(q) / exact.sojourn_quantile(q) - 1 == pytest.approx(sojourn_err, abs=5e-4)


def quantile_ci(x: np.ndarray, q: float, batches: int = 20) -> float:
    """95% half-width of an empirical quantile, from the spread of batch quantiles."""
    per_batch = np.quantile(x[: x.size // batches * batches].reshape(batches, -1), q, axis=1)
    return float(1.96 * per_batch.std(ddof=1) / math.sqrt(batches))


@pytest.mark.slow
def test_mg1_gamma_fit_percentiles_against_simulated_m_ln_1():
    rng = rng_for(4)
    s = lognormal(rng, 1.0, 2.0, N_APPROX)
    w = simulate_waits(rng.exponential(1 / 0.8, N_APPROX), s, 1)
    t = w + s[-w.size:]  # time in system of the same customers
    s2 = math.log(3.0)
    moments = tuple(math.exp(-k * s2 / 2 + k * k * s2 / 2) for k in (1, 2, 3))  # E[S^k] of the lognormal
    approx = mg1(0.8, moments)
    # Errors measured on 3 × 10^7 customers (quoted in mg1's docstring): wait +2.7%, +0.5%, -1.6%;
    # time in system +2.4%, +0.2%, -1.9% at p90, p99, p99.9. This run's quantiles carry their own
    # sampling error (±1-3% at p99.9 for autocorrelated waits), so allow 3 batch half-widths + 0.5%.
    for q, wait_err, sojourn_err in [(0.9, 0.027, 0.024), (0.99, 0.005, 0.002), (0.999, -0.016, -0.019)]:
        for sample, fitted, documented in [(w, approx.wait_quantile(q), wait_err),
                                           (t, approx.sojourn_quantile(q), sojourn_err)]:
            empirical = np.quantile(sample, q)
            tol = 3 * quantile_ci(sample, q) / empirical + 0.005
            assert abs(fitted / empirical - 1 - documented) < tol, (q, fitted / empirical - 1, tol)
