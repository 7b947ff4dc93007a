"""``simulate(scenario) -> Result``: pick an engine, check stability, run the replications.

Engines: ``"simpy"`` (:mod:`simulator.des`, every feature), ``"fast"`` (:mod:`simulator.fast`, the
compiled FCFS/batching/cache subset), ``"analytic"`` (closed forms where one covers the scenario) and
``"auto"`` (fast when it supports the scenario, else simpy; ``Result.notes`` says why).

An unstable scenario (offered load at or above capacity, with no queue limit or request timeout to
bound it) is detected before anything runs and returned as :meth:`Result.unstable`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError, UnstableSystemError
from .montecarlo import BREAKDOWN_KEYS, run_replications, summarize
from .ordered import ServiceOrder, is_ordered, ordered_model, profile_order
from .profiles import load_profile_cached
from .replication import ReplicationSummary
from .result import LATENCY_KEYS, PERCENTILES, Result
from .scenario import Scenario, Service, Stage
from .service import PARAMETRIC, ServiceModel
from .under_load import OVERHEAD_STAGE, scale_model
from .validation import check_choice, check_integer
from .variates import draw_variates, streams
from .workload import load_trace, mean_rate

__all__ = ["ENGINES", "HostBand", "analytic_reference", "host_level_band", "make_service_model", "simulate",
           "split_constant_delays", "stability"]

ENGINES = ("auto", "simpy", "fast", "analytic")
SIMPY_MAX_REQUESTS = 2_000_000   # per replication: above it only the streaming fast engine runs
FAST_MAX_REQUESTS = 20_000_000   # per-request arrays of the fast engine, when it cannot stream


# -- service model -----------------------------------------------------------------------------------
def make_service_model(scenario: Scenario, service: Service | None = None) -> ServiceModel:
    """The service law of the scenario's replicas (or of ``service``, e.g. a pool's), batches 1..B.

    Contention: ``"none"`` drops any slow-down; ``"shared"`` uses the profile's concurrency sweep (and
    refuses a profile without one); ``"auto"`` uses it when the profile has one.
    """
    svc = service if service is not None else (scenario.service or scenario.pools[0].service)
    big_b = scenario.batching.max_batch_size
    has_sweep = False
    if svc.profile is not None:
        prof = load_profile_cached(svc.profile)  # simulate reads it twice, a plan many times
        model = ServiceModel.from_profile(prof, max_batch=big_b)
        has_sweep = len(prof.concurrency_levels) >= 2 and model.slowdown.size > 2
        under = prof.under_load
        if under is not None and under.rates:
            model = scale_model(model, under.factor(_per_replica_rate(scenario)))
        if under is not None and under.idle_s:
            model = model.with_warmup(under.idle_s, under.idle_factors)
        if under is not None and under.env_factors:
            model = model.with_environment(under.env_window_s, under.env_factors)
        if under is not None and under.order_block:
            model = ordered_model(model, profile_order(prof, under.order_block))
    else:
        model = ServiceModel.parametric(svc.mean_s, svc.effective_cv, svc.dist, batch_time=svc.batch_time,
                                        max_batch=big_b)
    if svc.host_level != 1.0:
        model = scale_model(model, svc.host_level, f"the host level {svc.host_level:g} (service.host_level)")
    if svc.contention == "none" or (svc.contention == "auto" and not has_sweep):
        if np.any(model.slowdown != 1.0):
            model = model.with_slowdown(np.ones(2))
    elif svc.contention == "shared" and not has_sweep:
        raise InputError("contention 'shared' needs a profile with a concurrency sweep "
                         "(simulator profile ... --concurrency 1,2,4); use contention 'none' or 'auto'")
    return model


def _per_replica_rate(scenario: Scenario) -> float | None:
    """λ·(1 − expected hit ratio) / replicas: the load one replica sees (None for a trace, whose rate
    and keys are only known from the file)."""
    if scenario.arrivals.process == "trace" or scenario.arrivals.rate is None:
        return None
    replicas = sum(p.replicas for p in scenario.pools) if scenario.pools else scenario.replicas
    return mean_rate(scenario.arrivals) * (1.0 - float(_expected_hit_ratio(scenario))) / replicas


# -- pure delays -------------------------------------------------------------------------------------
def _is_pure_delay(stage: Stage) -> bool:
    return stage.servers is None and (stage.dist == "deterministic" or stage.cv == 0.0)


def _under_load(scenario: Scenario):
    """The ``under_load`` block of the scenario's profile (None without one)."""
    svc = scenario.service
    if svc is None or svc.profile is None:
        return None
    return load_profile_cached(svc.profile).under_load


def _profile_overhead(scenario: Scenario) -> float:
    """Client-side overhead (s) that the scenario's profile carries in its ``under_load`` block, else 0."""
    under = _under_load(scenario)
    return under.client_overhead_s if under is not None else 0.0


@dataclass(frozen=True)
class _OverheadByStatistic:
    """What a profile's ``client_overhead_by_load`` adds to each statistic beyond the constant overhead (s):
    ``mean`` and, per percentile, ``at`` (interpolated linearly between the percentiles given, flat beyond)."""

    mean: float = 0.0
    qs: tuple[float, ...] = ()
    extra: tuple[float, ...] = ()

    def at(self, q: float) -> float:
        return float(np.interp(q, self.qs, self.extra)) if self.qs else 0.0


def _overhead_by_statistic(scenario: Scenario) -> tuple[_OverheadByStatistic, list[str]]:
    """The profile's overhead by statistic at the scenario's per-replica rate, relative to its constant."""
    under = _under_load(scenario)
    if under is None or not under.overhead_rates or scenario.request_timeout_s is not None:
        return _OverheadByStatistic(), []
    mean, by_q = under.overhead(_per_replica_rate(scenario))
    if not by_q:  # a trace's rate is only known from the file: the constant
        return _OverheadByStatistic(), []
    const = under.client_overhead_s
    qs = tuple(sorted(by_q))
    note = ("client overhead by statistic at this load (the profile's under_load.client_overhead_by_load), "
            f"instead of the constant {const * 1e3:.3g} ms: mean {mean * 1e3:.3g} ms, "
            + ", ".join(f"p{q * 100:g} {by_q[q] * 1e3:.3g} ms" for q in qs))
    return _OverheadByStatistic(mean - const, qs, tuple(by_q[q] - const for q in qs)), [note]


def split_constant_delays(scenario: Scenario) -> tuple[Scenario, float, list[str]]:
    """(the scenario without its constant pure delays, their total in seconds, notes).

    A stage with unlimited workers and a constant time, like the client-side overhead a profile measured
    under load carries (:mod:`simulator.under_load`), delays every request by the same amount and
    changes nothing else, so it is added to every latency instead of being simulated: exact, and within
    every engine's features. With a request timeout the stages are simulated (a pre-stage delays the
    timeout's clock).
    """
    overhead = _profile_overhead(scenario)
    if scenario.request_timeout_s is not None:
        if overhead > 0:
            stage = Stage(OVERHEAD_STAGE, overhead, 0.0, "deterministic", None)
            scenario = replace(scenario, post_stages=(*scenario.post_stages, stage))
        return scenario, 0.0, []
    pure = [st for st in (*scenario.pre_stages, *scenario.post_stages) if _is_pure_delay(st)]
    if not pure and overhead <= 0:
        return scenario, 0.0, []
    core = replace(scenario, pre_stages=tuple(st for st in scenario.pre_stages if not _is_pure_delay(st)),
                   post_stages=tuple(st for st in scenario.post_stages if not _is_pure_delay(st)))
    shift = overhead + sum(st.mean_s for st in pure)
    parts = [f"{st.name!r} {st.mean_s * 1e3:.4g} ms" for st in pure]
    if overhead > 0:
        parts.append(f"the profile's client-side overhead {overhead * 1e3:.4g} ms")
    return core, shift, [f"constant delays added to every latency: {', '.join(parts)}"]


def _shifted(summary: ReplicationSummary, shift: float,
             by_statistic: _OverheadByStatistic | None = None) -> ReplicationSummary:
    """A replication's figures with every latency ``shift`` seconds longer (a pure delay), and each
    statistic by what ``by_statistic`` adds to it beyond that."""
    extra = by_statistic or _OverheadByStatistic()
    if shift == 0.0 and not extra.qs:
        return summary
    breakdown = dict(summary.breakdown)
    breakdown["stages"] = breakdown.get("stages", 0.0) + shift + extra.mean
    return replace(summary, latency_mean=summary.latency_mean + shift + extra.mean,
                   quantiles={q: v + shift + extra.at(q) for q, v in summary.quantiles.items()}, breakdown=breakdown,
                   little_l=summary.little_l + summary.throughput * (shift + extra.mean))


# -- stability ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stability:
    """Offered load against capacity. ``utilization`` ρ ≥ 1 means no steady state."""

    arrival_rate: float
    hit_ratio: float
    utilization: float
    offered_load: float
    min_replicas: int | None
    where: str

    @property
    def stable(self) -> bool:
        return self.utilization < 1.0


def _expected_hit_ratio(scenario: Scenario, trace=None) -> float:
    c = scenario.cache
    if not c.enabled:
        return 0.0
    if trace is not None and trace.keys is not None:
        from .cachesim import hit_mask
        keys = np.tile(trace.keys, -(-scenario.run.requests // trace.keys.size))[: scenario.run.requests]
        return float(hit_mask(c.policy, c.capacity, keys).mean())
    from .analytic.cache import cache_hit_ratio, zipf
    return cache_hit_ratio(c.policy, c.capacity, zipf(c.zipf_alpha, c.keys))


def _slow(model: ServiceModel, k: int) -> float:
    return float(model.slowdown[min(k, model.slowdown.size - 1)])


def stability(scenario: Scenario, model: ServiceModel | None = None, *, trace=None) -> Stability:
    """ρ = λ·(1 - h)·E[S_B]·slowdown(c) / (B·c) with full batches of B (B = 1: λ(1-h)E[S]/c).

    h is the cache hit ratio (analytic, or replayed on the trace's keys). Pools add their capacities
    c_k·B/E[S_B,k]; fork-join groups each carry the full load; a stage with workers is a queue too.
    """
    model = model if model is not None else make_service_model(scenario)
    lam = float(trace.rate if trace is not None and scenario.arrivals.rate is None
                else mean_rate(scenario.arrivals))
    h = float(_expected_hit_ratio(scenario, trace))
    lam_m = lam * (1.0 - h)
    big_b = scenario.batching.max_batch_size
    if scenario.pools:
        models = [model] + [make_service_model(scenario, p.service) for p in scenario.pools[1:]]
        cap = sum(p.replicas * big_b / (m.mean(big_b) * _slow(m, p.replicas))
                  for p, m in zip(scenario.pools, models))
        rho = lam_m / cap
        offered = rho * sum(p.replicas for p in scenario.pools)
        out = Stability(lam, h, rho, offered, None, f"{len(scenario.pools)} pools")
    else:
        c = scenario.replicas
        s_b = model.mean(big_b)
        rho = lam_m * s_b * _slow(model, c) / (big_b * c)
        min_c = None
        for k in range(1, 100_001):
            if lam_m * s_b * _slow(model, k) / (big_b * k) < 1.0:
                min_c = k
                break
        out = Stability(lam, h, rho, lam_m * s_b / big_b, min_c, f"{c} replica(s)")
    for st in (*scenario.pre_stages, *scenario.post_stages):
        if st.servers is not None:
            r = lam_m * st.mean_s / st.servers
            if r >= 1.0 and r > out.utilization:
                out = Stability(lam, h, r, lam_m * st.mean_s, math.floor(lam_m * st.mean_s) + 1,
                                f"stage {st.name!r} with {st.servers} worker(s)")
    return out


def _verdict(st: Stability) -> str:
    need = f"; at least {st.min_replicas} are needed" if st.min_replicas else ""
    cache = f" after a cache hit ratio of {st.hit_ratio:.3g}" if st.hit_ratio else ""
    return (f"unstable: offered load {st.offered_load:.4g} Erlang at {st.arrival_rate:g} req/s{cache} "
            f"exceeds the capacity of {st.where} (rho = {st.utilization:.4g} >= 1){need}")


# -- analytic ----------------------------------------------------------------------------------------
def _analytic_model(scenario: Scenario, model: ServiceModel):
    """(metrics, hit ratio, notes) of the closed form covering the scenario, or InputError with reasons."""
    from . import analytic

    reasons = []
    a = scenario.arrivals
    if scenario.pools:
        reasons.append("heterogeneous pools")
    if scenario.pre_stages or scenario.post_stages:
        reasons.append("pipeline stages")
    if scenario.request_timeout_s is not None:
        reasons.append("request timeout (reneging)")
    busy = np.minimum(np.arange(1, scenario.replicas + 1), model.slowdown.size - 1)
    if np.any(model.slowdown[busy] != 1.0):
        reasons.append("replica contention")
    if model.has_warmup:
        reasons.append("warm-up after idle (the profile's under_load.idle_factors)")
    if model.has_environment:
        reasons.append("host environment drift (the profile's under_load.environment)")
    if is_ordered(model):
        reasons.append("service times in measured order (a service order or the profile's under_load.service_order)")
    if _overhead_by_statistic(scenario)[0].qs:
        reasons.append("client overhead by statistic (the profile's under_load.client_overhead_by_load)")
    if a.process not in ("poisson", "gamma"):
        reasons.append(f"{a.process} arrivals")
    if scenario.cache.enabled and a.process == "trace":
        reasons.append("trace keys")
    big_b, c, k = scenario.batching.max_batch_size, scenario.replicas, scenario.fork_branches
    exponential = model.mode == PARAMETRIC and model.family == "exponential"
    deterministic = model.mode == PARAMETRIC and model.family == "deterministic"
    poisson = a.process == "poisson"
    if big_b > 1:
        svc = scenario.service
        if c != 1:
            reasons.append("batching with more than one replica")
        if not (deterministic and svc is not None and svc.batch_time is not None):
            reasons.append("batching needs deterministic batch times a + b*n")
        if not poisson:
            reasons.append("batching with non-Poisson arrivals")
        if k > 1 or scenario.queue_limit is not None:
            reasons.append("batching combined with fork-join or a queue limit")
    if k > 1 and not (c == 1 and exponential and poisson):
        reasons.append("fork-join needs one exponential replica per branch and Poisson arrivals")
    if k > 1 and scenario.queue_limit is not None:
        reasons.append("fork-join with a queue limit")
    if scenario.queue_limit is not None and not (exponential and poisson):
        reasons.append("a queue limit needs exponential service and Poisson arrivals (M/M/c/K)")
    if reasons:
        raise InputError("no closed form covers this scenario: " + "; ".join(dict.fromkeys(reasons))
                         + ". Use --engine simpy")
    notes = []
    h = 0.0
    lam = a.rate
    if scenario.cache.enabled:
        from .analytic.cache import cache_model, zipf
        cm = cache_model(scenario.cache.policy, scenario.cache.capacity,
                         zipf(scenario.cache.zipf_alpha, scenario.cache.keys))
        h = cm.hit_ratio
        notes.append(f"cache hit ratio {h:.4g} ({cm.method}); misses thinned to (1-h)*lambda")
    lam_m = lam * (1.0 - h)
    mean = model.mean(1)
    if big_b > 1:
        # Both engines batch as the chain does (TF-Serving: a free replica starts a batch when B wait or
        # the oldest has waited T): exact for T <= a + bB, an approximation (exact=False) beyond.
        m = analytic.batching(lam_m, tuple(scenario.service.batch_time), big_b,
                              timeout=scenario.batching.timeout_s or None)
    elif k > 1:
        m = analytic.fork_join(lam_m, 1.0 / mean, k)
    elif scenario.queue_limit is not None:
        m = analytic.mmck(lam_m, 1.0 / mean, c, c + scenario.queue_limit)
    elif a.process == "gamma" or (scenario.cache.enabled and not poisson):
        ca2 = a.cv**2 if a.process == "gamma" else 1.0
        if h:
            ca2 = (1.0 - h) * ca2 + h  # Bernoulli thinning of a renewal process (approximation)
        m = analytic.ggc(lam_m, c, mean, model.scv(1), arrival_scv=ca2)
    elif exponential:
        m = analytic.mmc(lam_m, 1.0 / mean, c)
    elif deterministic:
        m = analytic.mdc(lam_m, mean, c)
    elif c == 1:
        m = analytic.mg1(lam_m, model.raw_moments(1, 3))
    else:
        m = analytic.ggc(lam_m, c, mean, model.scv(1))
    return m, h, notes


def _mixture_quantile(m, h: float, hit_latency: float, q: float) -> float | None:
    """Quantile of latency = hit latency w.p. h, else the queue's sojourn."""
    try:
        if h <= 0:
            return m.sojourn_quantile(q)
        if q / (1.0 - h) < 1.0:
            t1 = m.sojourn_quantile(q / (1.0 - h))
            if t1 < hit_latency:
                return t1
        if h + (1.0 - h) * m.sojourn_cdf(hit_latency) >= q:
            return hit_latency
        return m.sojourn_quantile((q - h) / (1.0 - h))
    except NotImplementedError:
        return None


def _analytic_figures(scenario: Scenario, model: ServiceModel) -> dict:
    scenario, shift, delay_notes = split_constant_delays(scenario)
    m, h, notes = _analytic_model(scenario, model)
    notes = [*notes, *delay_notes]
    hl = scenario.cache.hit_latency_s
    lat = {"mean": (h * hl + (1.0 - h) * m.sojourn_mean + shift) * 1e3}
    for key, q in PERCENTILES.items():
        v = _mixture_quantile(m, h, hl, q)
        lat[key] = None if v is None else (v + shift) * 1e3
    exact = bool(m.exact) and (not scenario.cache.enabled or scenario.cache.policy == "lfu")
    if scenario.cache.enabled and scenario.cache.policy == "lfu":
        notes.append("perfect-LFU hit ratio (the simulated LFU inserts every miss, so one slot churns)")
    return {"model": m.model, "method": m.method, "exact": exact, "latency_ms": lat,
            "utilization": m.utilization, "drop_rate": m.blocking_probability,
            "cache_hit_ratio": h if scenario.cache.enabled else None,
            "mean_batch_size": float(getattr(m, "mean_batch_size", 1.0)),
            "throughput_rps": scenario.arrivals.rate * (1.0 - m.blocking_probability * (1.0 - h)),
            "notes": notes}


def analytic_reference(scenario: Scenario, model: ServiceModel | None = None) -> dict | None:
    """Analytic figures to print beside simulated ones (ms), or None where no closed form applies.

    Keys: ``model``, ``method``, ``exact`` (False: an approximation, named by ``method``),
    ``latency_ms`` (mean and p50..p999; None where the model has no distribution), ``utilization``,
    ``drop_rate``, ``cache_hit_ratio``, ``notes``.
    """
    try:
        model = model if model is not None else make_service_model(scenario)
        return _analytic_figures(scenario, model)
    except (InputError, ImportError, NotImplementedError):
        return None


# -- engines -----------------------------------------------------------------------------------------
def _fast_module():
    try:
        from . import fast
    except ImportError:
        return None
    return fast if hasattr(fast, "supports") and hasattr(fast, "run_replication") else None


def _choose(scenario: Scenario, engine: str) -> tuple[str, str]:
    if engine == "simpy":
        return "simpy", "engine simpy: requested"
    fast = _fast_module()
    if engine == "fast":
        if fast is None:
            raise InputError("the fast engine is not available in this installation; use --engine simpy")
        reason = fast.supports(scenario)
        if reason is not None:
            raise InputError(f"the fast engine cannot run this scenario: {reason}; use --engine simpy")
        return "fast", "engine fast: requested"
    if fast is None:
        return "simpy", "engine simpy: the fast engine is not available"
    reason = fast.supports(scenario)
    if reason is None:
        return "fast", "engine fast: the scenario is within the compiled engine's features"
    return "simpy", f"engine simpy: the fast engine does not support {reason}"


def simulate(scenario: Scenario, engine: str = "auto", seed: int | None = None, progress=None,
             service_order: ServiceOrder | None = None) -> Result:
    """Predict the scenario's latency distribution.

    Parameters
    ----------
    scenario : Scenario
        Workload, serving system and run control (requests per replication, replications or precision).
    engine : {"auto", "simpy", "fast", "analytic"}
        ``auto``: fast when it supports the scenario, else simpy.
    seed : int, optional
        Root seed (default ``scenario.run.seed``); the same seed gives the same Result.
    progress : tqdm-like, optional
        Gets ``update(1)`` after each replication.
    service_order : ServiceOrder, optional
        Draw the service variates from measured service times in their measured order (a block
        bootstrap, :mod:`simulator.ordered`) instead of independently; a profile's service model only,
        not the analytic engine nor the streaming fast engine.

    Returns
    -------
    Result
        Latencies in ms with 95 % t-intervals across replications; ``Result.unstable`` when ρ ≥ 1.

    Raises
    ------
    InputError
        A bad engine name, an engine that cannot run the scenario, no closed form for ``analytic``.
    """
    check_choice("engine", engine, ENGINES)
    run = scenario.run
    seed = run.seed if seed is None else check_integer("seed", seed, minimum=0, maximum=2**63 - 1)
    full = scenario
    by_statistic, overhead_notes = _overhead_by_statistic(full)
    scenario, shift, delay_notes = split_constant_delays(scenario)
    delay_notes = delay_notes + overhead_notes
    model = make_service_model(scenario)
    if service_order is not None:  # the analytic engine refuses it with its other reasons (_analytic_model)
        model = ordered_model(model, service_order)
    trace = load_trace(scenario.arrivals.trace) if scenario.arrivals.process == "trace" else None
    if engine == "analytic":
        name, why = "analytic", "engine analytic: requested"
    else:
        name, why = _choose(scenario, engine)
    st = stability(scenario, model, trace=trace)
    lam = st.arrival_rate
    notes = [why]
    if not st.stable:
        if scenario.queue_limit is None and scenario.request_timeout_s is None:
            return Result.unstable(name, lam, st.utilization, st.offered_load, _verdict(st), seed=seed)
        notes.append(f"offered load exceeds capacity (rho = {st.utilization:.4g}); the queue limit / "
                     "request timeout keeps the system finite")
    if name == "analytic":
        return _analytic_result(full, model, lam, st.offered_load, seed, notes)
    notes += delay_notes

    n = run.requests
    fast = _fast_module() if name == "fast" else None
    if name == "simpy" and n > SIMPY_MAX_REQUESTS:
        raise InputError(f"requests = {n} per replication is more than the SimPy engine keeps in memory "
                         f"({SIMPY_MAX_REQUESTS}); use --engine fast or fewer requests")
    streaming = fast is not None and n > SIMPY_MAX_REQUESTS and hasattr(fast, "run_streaming")
    if streaming and is_ordered(model):
        raise InputError(f"requests = {n} per replication with a service order: the streaming engine draws "
                         f"its own variates; use at most {SIMPY_MAX_REQUESTS} requests and more replications")
    if streaming:
        notes.append(f"streaming fast engine ({n} requests per replication): statistics reduced on the fly, "
                     "warm-up by a fixed fraction, percentiles from a sketch (bounded relative error)")
    elif fast is not None and n > FAST_MAX_REQUESTS:
        raise InputError(f"requests = {n} per replication is more than {FAST_MAX_REQUESTS}; "
                         "use fewer requests and more replications")

    def replicate(seed_seq):
        if streaming:
            return _shifted(fast.run_streaming(scenario, model, n, seed_seq, trace=trace), shift, by_statistic)
        rngs = streams(seed_seq)
        variates = draw_variates(scenario, model, n, rngs, trace=trace)
        if fast is not None:
            out = fast.run_replication(scenario, model, variates)
        else:
            from .des import run_replication
            out = run_replication(scenario, model, variates, rngs)
        return _shifted(summarize(out, run), shift, by_statistic)

    t0 = time.perf_counter()
    # The compiled kernels release the GIL: replications run on all cores, identical to a serial run.
    workers = _fast_workers() if fast is not None else 1
    mc = run_replications(replicate, run, seed, progress, workers=workers)
    wall = time.perf_counter() - t0
    rule = run.warmup if run.warmup == "mser5" and not streaming else (
        "none" if run.warmup == "none" else f"fraction {run.warmup_fraction:g}")
    return _result(full, name, st, seed, mc, wall, rule, notes + list(model.notes) + mc.notes, model)


def _fast_workers() -> int:
    from .fast.parallel import default_workers
    return default_workers()


def _ms(x: float) -> float:
    return x * 1e3 if math.isfinite(x) else math.nan


def _result(scenario, name, st, seed, mc, wall, rule, notes, model) -> Result:
    latency, ci = {}, {}
    getters = {"mean": lambda s: s.latency_mean}
    getters.update({k: (lambda s, q=q: s.quantiles[q]) for k, q in PERCENTILES.items()})
    for key in LATENCY_KEYS:
        mean, lo, hi = mc.estimate(getters[key])
        latency[key] = _ms(mean)
        ci[key] = [_ms(lo), _ms(hi)] if math.isfinite(lo) else None

    def avg(get):
        return mc.estimate(get)[0]

    def total(s):
        return s.completed + s.dropped
    breakdown = {k: _ms(avg(lambda s, k=k: s.breakdown[k])) for k in BREAKDOWN_KEYS}
    mean_lat = latency["mean"]
    warm = [s.warmup_deleted for s in mc.summaries]
    return Result(
        engine=name, arrival_rate=st.arrival_rate, requests_simulated=scenario.run.requests * mc.replications,
        replications=mc.replications, wall_seconds=wall, latency_ms=latency, latency_ms_ci95=ci,
        throughput_rps=avg(lambda s: s.throughput), utilization=avg(lambda s: s.utilization),
        cache_hit_ratio=avg(lambda s: s.cache_hits / total(s)) if scenario.cache.enabled else None,
        drop_rate=avg(lambda s: s.dropped / total(s)),
        mean_batch_size=avg(lambda s: s.batch_size_mean),
        stable=True, offered_load=st.offered_load,
        breakdown_ms=breakdown,
        realtime_ratio=breakdown["service"] / mean_lat if mean_lat and math.isfinite(mean_lat) else None,
        warmup={"rule": rule,
                "deleted_per_replication": warm, "deleted_mean": float(np.mean(warm))},
        precision=mc.precision, analytic=analytic_reference(scenario, model), seed=seed, notes=notes)


def _analytic_result(scenario, model, lam, offered, seed, notes) -> Result:
    t0 = time.perf_counter()
    try:
        fig = _analytic_figures(scenario, model)
    except UnstableSystemError as exc:
        return Result.unstable("analytic", lam, exc.utilization, exc.offered_load or math.nan, str(exc),
                               seed=seed)
    wall = time.perf_counter() - t0
    none = dict.fromkeys(LATENCY_KEYS)
    return Result(engine="analytic", arrival_rate=lam, requests_simulated=0, replications=0,
                  wall_seconds=wall, latency_ms=fig["latency_ms"], latency_ms_ci95=none,
                  throughput_rps=fig["throughput_rps"], utilization=fig["utilization"],
                  cache_hit_ratio=fig["cache_hit_ratio"], drop_rate=fig["drop_rate"],
                  mean_batch_size=fig["mean_batch_size"], stable=True,
                  offered_load=offered, analytic=fig, seed=seed,
                  notes=[*notes, f"{fig['model']}: {fig['method']}"
                         + ("" if fig["exact"] else " (approximation)"), *fig["notes"]])


# -- how sure: the host's level -----------------------------------------------------------------------
HOST_BAND_SD = 2.0  # the band spans the host levels 1 ± 2 sd: about 95 % of runs if the level is normal


@dataclass(frozen=True)
class HostBand:
    """The scenario predicted at a slow and a fast host level (:func:`host_level_band`).

    ``sd``, ``run_s``, ``runs``: the profile's ``under_load.host_level`` (relative sd of the host's mean
    speed between runs of ``run_s`` seconds, over ``runs`` runs); ``levels``: the multipliers on service
    time simulated (the scenario's own host level times 1 ∓ z·sd); ``fast``, ``slow``: their Results (the
    slow one may be unstable: the host at that level cannot carry the load).
    """

    sd: float
    run_s: float
    runs: int
    z: float
    levels: tuple[float, float]
    fast: Result
    slow: Result

    def to_dict(self) -> dict:
        return {"sd": self.sd, "run_s": self.run_s, "runs": self.runs, "z": self.z, "levels": list(self.levels),
                "fast": self.fast.to_dict(), "slow": self.slow.to_dict()}


def host_level_band(scenario: Scenario, engine: str = "auto", z: float = HOST_BAND_SD, seed: int | None = None,
                    progress=None) -> HostBand | None:
    """The scenario at host levels 1 − z·sd and 1 + z·sd of its profile's ``under_load.host_level``.

    Near capacity the latency is steep in the service time (the wait grows like ρ/(1 − ρ)), so a host a
    few percent slower than on the day it was profiled is tens of percent in p99: this band says how far a
    prediction can move for that reason alone, beside the simulation's own confidence interval (which is
    about the model, not the host). None when the scenario's service has no profile or its profile does
    not say how its host's level varies (sd 0 or absent), and for a fleet of pools (each pool's service
    sets its own ``host_level``).
    """
    svc = scenario.service
    under = _under_load(scenario) if not scenario.pools else None
    if under is None or not under.host_level_sd > 0:
        return None
    sd = under.host_level_sd
    levels = tuple(float(np.clip(svc.host_level * (1.0 + k * z * sd), 0.1, 10.0)) for k in (-1, 1))
    fast, slow = (simulate(replace(scenario, service=replace(svc, host_level=level)), engine=engine, seed=seed,
                          progress=progress) for level in levels)
    return HostBand(sd, under.host_level_run_s, under.host_level_runs, z, levels, fast, slow)
