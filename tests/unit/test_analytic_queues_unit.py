"""Queue models: input validation, labels, identities between models, and Little's law."""

from __future__ import annotations

import math

import pytest

from simulator.analytic import (
    GGC_METHODS,
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
from simulator.errors import InputError, UnstableSystemError

BAD_POSITIVE = [float("nan"), float("inf"), -float("inf"), -1.0, 0.0, "3", None, True]
BAD_SERVERS = [0, -2, 2.5, float("nan"), "4", True, None]


def all_models():
    """One stable instance of every model (λ = 0.8 per server, mean service 1 s)."""
    return {
        "mm1": mm1(0.8, 1.0),
        "mmc": mmc(3.2, 1.0, 4),
        "mmck": mmck(3.2, 1.0, 4, 10),
        "md1": md1(0.8, 1.0),
        "mdc": mdc(3.2, 1.0, 4),
        "mg1": mg1(0.8, (1.0, 3.0, 27.0)),
        "ggc-ac": ggc(3.2, 4, 1.0, 2.0, 0.5, method="allen-cunneen"),
        "ggc-kingman": ggc(3.2, 4, 1.0, 2.0, 0.5, method="kingman"),
        "ggc-whitt": ggc(3.2, 4, 1.0, 2.0, 0.5, method="whitt"),
        "cosmetatos": cosmetatos_mdc(3.2, 1.0, 4),
    }


# --- validation ------------------------------------------------------------------------------------
CALLS = {
    "mm1.arrival_rate": lambda v: mm1(v, 1.0),
    "mm1.service_rate": lambda v: mm1(0.5, v),
    "mmc.arrival_rate": lambda v: mmc(v, 1.0, 2),
    "mmc.service_rate": lambda v: mmc(0.5, v, 2),
    "mmck.arrival_rate": lambda v: mmck(v, 1.0, 2, 4),
    "mmck.service_rate": lambda v: mmck(0.5, v, 2, 4),
    "md1.arrival_rate": lambda v: md1(v, 1.0),
    "md1.service_time": lambda v: md1(0.5, v),
    "mdc.arrival_rate": lambda v: mdc(v, 1.0, 2),
    "mdc.service_time": lambda v: mdc(0.5, v, 2),
    "mg1.arrival_rate": lambda v: mg1(v, (1.0, 2.0)),
    "mg1.service_moments[0]": lambda v: mg1(0.5, (v, 2.0)),
    "ggc.arrival_rate": lambda v: ggc(v, 2, 1.0, 1.0),
    "ggc.service_mean": lambda v: ggc(0.5, 2, v, 1.0),
    "cosmetatos_mdc.service_time": lambda v: cosmetatos_mdc(0.5, v, 2),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("value", BAD_POSITIVE, ids=repr)
def test_bad_positive_inputs_are_refused_naming_the_field(call, value):
    field = call.split(".", 1)[1]
    with pytest.raises(InputError) as info:
        CALLS[call](value)
    assert field.split("[")[0] in str(info.value)


@pytest.mark.parametrize("value", BAD_SERVERS, ids=repr)
@pytest.mark.parametrize("make", [
    lambda c: mmc(0.5, 1.0, c), lambda c: mmck(0.5, 1.0, c, 8), lambda c: mdc(0.5, 1.0, c),
    lambda c: ggc(0.5, c, 1.0, 1.0), lambda c: cosmetatos_mdc(0.5, 1.0, c), lambda c: erlang_b(c, 1.0),
    lambda c: erlang_c(c, 0.5)])
def test_bad_server_counts_are_refused(make, value):
    with pytest.raises(InputError, match="servers"):
        make(value)


def test_integral_float_server_count_is_accepted():
    assert mmc(0.5, 1.0, 2.0).servers == 2


@pytest.mark.parametrize("make", [
    lambda: mm1(1.0, 1.0), lambda: mmc(4.0, 1.0, 4), lambda: mmc(5.0, 1.0, 4), lambda: md1(2.0, 0.5),
    lambda: mdc(4.0, 1.0, 3), lambda: mg1(1.0, (1.0, 2.0)), lambda: ggc(4.0, 4, 1.0, 1.0),
    lambda: cosmetatos_mdc(4.0, 1.0, 4), lambda: erlang_c(4, 4.0)])
def test_unstable_systems_are_refused_with_rho_in_the_message(make):
    with pytest.raises(UnstableSystemError, match="rho") as info:
        make()
    assert info.value.utilization >= 1.0
    assert info.value.min_servers is not None


def test_unstable_error_suggests_enough_servers():
    with pytest.raises(UnstableSystemError) as info:
        mmc(10.0, 1.0, 8)
    assert info.value.min_servers == 11
    assert "11 servers" in str(info.value)


def test_mmck_accepts_overload_and_checks_capacity():
    m = mmck(50.0, 1.0, 4, 20)  # ρ = 12.5: a finite room keeps it stable
    assert 0.9 < m.blocking_probability < 1.0
    assert m.utilization == pytest.approx(m.effective_arrival_rate / 4)
    assert m.utilization < 1.0
    with pytest.raises(InputError, match="capacity"):
        mmck(1.0, 1.0, 4, 3)
    with pytest.raises(InputError, match="capacity"):
        mmck(1.0, 1.0, 4, 5.5)


@pytest.mark.parametrize("q", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.9"], ids=repr)
@pytest.mark.parametrize("name", sorted(all_models()))
def test_quantile_level_must_be_strictly_between_0_and_1(name, q):
    m = all_models()[name]
    for method in (m.wait_quantile, m.sojourn_quantile):
        with pytest.raises(InputError, match="q must be"):
            method(q)


@pytest.mark.parametrize("k", [0, -1, 1.5, "2"], ids=repr)
def test_wait_moment_order_is_validated(k):
    with pytest.raises(InputError, match="k must be"):
        mmc(1.0, 1.0, 2).wait_moment(k)


def test_state_probability_index_is_validated():
    for m in (mmc(1.0, 1.0, 2), mmck(1.0, 1.0, 2, 4)):
        with pytest.raises(InputError, match="n must be"):
            m.state_probability(-1)
    assert mmck(1.0, 1.0, 2, 4).state_probability(5) == 0.0


def test_negative_time_is_refused_by_cdfs():
    for m in (mmc(1.0, 1.0, 2), mmck(1.0, 1.0, 2, 4), md1(0.5, 1.0)):
        with pytest.raises(InputError, match="t must be"):
            m.wait_cdf(-1.0)


def test_erlang_inputs():
    assert erlang_b(5, 0.0) == 0.0
    assert erlang_c(1, 0.3) == pytest.approx(0.3, rel=1e-15)  # M/M/1: P(wait) = ρ
    for bad in (-1.0, float("nan"), float("inf"), "2"):
        with pytest.raises(InputError, match="offered_load"):
            erlang_b(4, bad)
    assert erlang_c(10, 8.0) > erlang_b(10, 8.0)


# --- M/G/1 moments ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("moments", "match"), [
    ((1.0,), "at least"),
    ((), "at least"),
    ("1,2", "sequence"),
    (3.0, "sequence"),
    ((1.0, 0.5), "impossible"),             # E[S^2] < E[S]^2: negative variance
    ((1.0, 2.0, 3.0), "impossible"),        # E[S^3] E[S] < E[S^2]^2
    ((1.0, float("nan")), "E\\[S\\^2\\]"),
    ((1.0, -2.0), "E\\[S\\^2\\]"),
])
def test_mg1_moments_are_validated(moments, match):
    with pytest.raises(InputError, match=match):
        mg1(0.5, moments)


def test_mg1_refuses_moments_it_was_not_given():
    g = mg1(0.5, (1.0, 2.0, 6.0))
    assert g.wait_moment(2) > 0
    with pytest.raises(InputError, match=r"E\[S\^4\]"):
        g.wait_moment(3)
    two = mg1(0.5, (1.0, 2.0))
    with pytest.raises(InputError, match=r"E\[S\^3\]"):
        two.sojourn_quantile(0.99)
    with pytest.raises(InputError, match=r"E\[S\^3\]"):
        two.wait_moment(2)
    assert two.wait_quantile(0.99) > 0  # exponential conditional fit needs only the mean


def test_mg1_deterministic_moments_pass_despite_rounding():
    d = 0.1  # 0.1**2 and 0.1**3 in floats are not exactly consistent
    assert mg1(5.0, (d, d * d, d ** 3)).wait_mean == pytest.approx(md1(5.0, d).wait_mean, rel=1e-14)


def test_ggc_method_and_scv_validation():
    with pytest.raises(InputError, match="allen-cunneen, whitt, kingman"):
        ggc(1.0, 2, 1.0, 1.0, method="erlang")
    with pytest.raises(InputError, match="service_scv"):
        ggc(1.0, 2, 1.0, -0.5)
    with pytest.raises(InputError, match="arrival_scv"):
        ggc(1.0, 2, 1.0, 1.0, arrival_scv=float("nan"))
    assert set(GGC_METHODS) == {"allen-cunneen", "whitt", "kingman"}


# --- labels -----------------------------------------------------------------------------------------
def test_exact_flags_and_method_names():
    models = all_models()
    assert models["mmc"].method == "Erlang C" and models["mmc"].exact
    assert models["mmck"].exact and "M/M/c/K" in models["mmck"].method
    assert models["mdc"].exact and "Crommelin" in models["mdc"].method
    assert models["md1"].exact
    assert models["mg1"].exact and "approximation" in models["mg1"].method  # percentiles are fitted
    assert any("approximation" in n for n in models["mg1"].notes)
    assert models["ggc-ac"].method == "Allen-Cunneen approximation"
    assert "Kramer-Langenbach-Belz" in models["ggc-kingman"].method
    assert models["ggc-whitt"].method == "Whitt (1993) approximation"
    assert models["cosmetatos"].method == "Cosmetatos approximation"
    for key in ("ggc-ac", "ggc-kingman", "ggc-whitt", "cosmetatos"):
        assert models[key].exact is False
    assert models["mmc"].model == "M/M/4" and models["mmck"].model == "M/M/4/10"


# --- identities -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(all_models()))
def test_littles_law_and_basic_ranges(name):
    m = all_models()[name]
    lam = m.effective_arrival_rate or m.arrival_rate
    assert m.queue_length_mean == pytest.approx(lam * m.wait_mean, rel=1e-12)
    assert m.system_length_mean == pytest.approx(lam * m.sojourn_mean, rel=1e-12)
    assert m.sojourn_mean == pytest.approx(m.wait_mean + 1.0, rel=1e-12)  # mean service time is 1 s
    assert 0.0 <= m.p_wait <= 1.0 and 0.0 < m.utilization < 1.0
    assert all(math.isfinite(v) and v >= 0 for v in
               (m.wait_mean, m.sojourn_mean, m.queue_length_mean, m.system_length_mean))
    d = m.as_dict()
    assert d["method"] == m.method and d["exact"] == m.exact


@pytest.mark.parametrize("name", sorted(set(all_models()) - {"cosmetatos"}))
def test_quantiles_invert_the_cdfs_and_increase(name):
    m = all_models()[name]
    previous = -1.0
    for q in (0.5, 0.9, 0.99, 0.999):
        t = m.wait_quantile(q)
        assert t >= previous
        previous = t
        if t > 0:
            assert m.wait_cdf(t) == pytest.approx(q, abs=1e-9)
        s = m.sojourn_quantile(q)
        assert s >= t
        assert m.sojourn_cdf(s) == pytest.approx(q, abs=1e-9)


def test_mm1_is_mmc_with_one_server():
    a, b = mm1(0.7, 1.1), mmc(0.7, 1.1, 1)
    assert (a.wait_mean, a.p_wait, a.sojourn_quantile(0.99)) == (b.wait_mean, b.p_wait, b.sojourn_quantile(0.99))
    assert a.p_wait == pytest.approx(0.7 / 1.1, rel=1e-15)


def test_mmck_limits():
    # K = c is the Erlang loss system; K → ∞ approaches M/M/c.
    assert mmck(3.0, 1.0, 4, 4).blocking_probability == pytest.approx(erlang_b(4, 3.0), rel=1e-13)
    assert mmck(3.0, 1.0, 4, 4).p_wait == 0.0
    big, inf = mmck(3.0, 1.0, 4, 400), mmc(3.0, 1.0, 4)
    assert big.wait_mean == pytest.approx(inf.wait_mean, rel=1e-12)
    assert big.p_wait == pytest.approx(inf.p_wait, rel=1e-12)
    assert big.wait_quantile(0.99) == pytest.approx(inf.wait_quantile(0.99), rel=1e-9)
    assert sum(big.state_probability(n) for n in range(401)) == pytest.approx(1.0, rel=1e-13)


def test_mmc_state_probabilities_sum_to_one():
    m = mmc(9.0, 1.0, 10)
    total = sum(m.state_probability(n) for n in range(3000))
    assert total == pytest.approx(1.0, rel=1e-12)
    assert sum(m.state_probability(n) for n in range(10, 3000)) == pytest.approx(m.p_wait, rel=1e-12)


def test_ggc_reduces_to_mmc_for_exponential_times():
    exact = mmc(3.0, 1.0, 4)
    for method in GGC_METHODS:
        g = ggc(3.0, 4, 1.0, 1.0, 1.0, method=method)
        assert g.wait_mean == pytest.approx(exact.wait_mean, rel=1e-14)
        assert g.wait_quantile(0.99) == pytest.approx(exact.wait_quantile(0.99), rel=1e-12)


def test_ggc_deterministic_everything_never_waits():
    g = ggc(3.0, 4, 1.0, 0.0, 0.0)
    assert g.wait_mean == 0.0 and g.p_wait == 0.0
    assert g.wait_quantile(0.99) == 0.0 and g.wait_cdf(0.0) == 1.0
    assert g.sojourn_quantile(0.99) == pytest.approx(1.0)


def test_mg1_with_exponential_moments_is_mm1_including_percentiles():
    # For M/M/1, W_q | W_q > 0 and the time in system are exponential, so the gamma fits are exact.
    mu, lam = 1.25, 1.0
    g = mg1(lam, [math.factorial(k) / mu ** k for k in (1, 2, 3)])
    e = mm1(lam, mu)
    assert g.wait_mean == pytest.approx(e.wait_mean, rel=1e-13)
    for q in (0.5, 0.99):
        assert g.wait_quantile(q) == pytest.approx(e.wait_quantile(q), rel=1e-9)
        assert g.sojourn_quantile(q) == pytest.approx(e.sojourn_quantile(q), rel=1e-9)


def test_md_models_agree_and_cosmetatos_is_close():
    assert md1(0.8, 1.0).p_wait == pytest.approx(0.8)
    assert mdc(0.8, 1.0, 1).wait_mean == pytest.approx(0.8 / (2 * 0.2), rel=1e-14)
    assert md1(0.8, 1.0).sojourn_quantile(0.99) == pytest.approx(md1(0.8, 1.0).wait_quantile(0.99) + 1.0)
    m, c = mdc(3.2, 1.0, 4), cosmetatos_mdc(3.2, 1.0, 4)
    assert c.wait_mean == pytest.approx(m.wait_mean, rel=0.01)
    assert m.wait_moment(1) == m.wait_mean
    with pytest.raises(NotImplementedError):
        m.wait_moment(2)
    with pytest.raises(NotImplementedError):
        c.wait_cdf(1.0)


def test_extreme_but_valid_inputs_stay_finite():
    cases = [mmc(1e-9, 1.0, 3), mmc(0.999999, 1.0, 1), mmc(9999.0, 1.0, 10000), md1(0.999, 1.0),
             mdc(9.0, 1e-3, 10000), mmck(1e6, 1.0, 2, 50), mg1(1e-6, (1.0, 1e6, 1e13))]
    for m in cases:
        for v in (m.wait_mean, m.p_wait, m.sojourn_mean, m.wait_quantile(0.999), m.sojourn_quantile(0.5)):
            assert math.isfinite(v) and v >= 0
