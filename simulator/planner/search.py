"""Per-configuration searches: fewest replicas meeting the SLO, highest load a fleet sustains.

Every function here is a pure function of its task (a picklable dataclass), so the same task gives
the same answer whether it runs in this process, a thread, or a Dask worker on another machine.

Judging a candidate: a configuration *meets* the SLO when the upper end of the 95% confidence interval
of its simulated percentile is ≤ the SLO (so a "pass" is a pass with 97.5% one-sided confidence), it is
stable and drops nothing. Where the closed form is exact (M/M/c) or the analytic engine is asked for,
the analytic figure is the judge and its interval has zero width.

Search for the fewest replicas (bracket, then bisection): the lower end is the stability bound
(proved), the upper end the fewest replicas the analytic estimate says pass with a 20% margin; that end
is verified by simulation and doubled until it passes (or max_replicas fails); then bisection between
them. Bisection assumes that adding a replica never makes p99 worse, which holds path by path for
FCFS multi-server queues under common random numbers (a request's wait is non-increasing in the
number of servers) and in practice with batching and caching.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, replace

from ..errors import InputError
from ..scenario import Arrivals, Batching, Cache, Run, Scenario
from .catalog import ServiceSpec
from .screening import Screen, hit_ratio, service_model, under_load
from .space import Config, config_seed

__all__ = ["CapacityTask", "Evaluator", "Point", "SearchOutcome", "SearchTask", "Settings", "find_capacity",
           "search_replicas", "simulation_available"]

QUANTILE_KEYS = {0.5: "p50", 0.9: "p90", 0.95: "p95", 0.99: "p99", 0.999: "p999"}
SCREEN_MARGIN = 0.8


def simulation_available() -> bool:
    """Whether the simulation engines (simulator.simulate) are importable in this process."""
    try:
        from ..simulate import simulate  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Settings:
    """Everything about a plan that is the same for all candidates."""

    quantile: float
    slo_s: float
    engine: str = "auto"              # auto | analytic | fast | simpy
    requests: int = 20_000
    replications: int = 5
    seed: int = 12345
    max_replicas: int = 64
    zipf_alpha: float = 0.8
    keys: int = 10_000
    cache_hit_s: float = 0.0
    arrivals: Arrivals | None = None  # process template (rate replaced); None = Poisson

    @property
    def quantile_key(self) -> str:
        for frac, key in QUANTILE_KEYS.items():
            if abs(frac - self.quantile) < 1e-12:
                return key
        raise InputError(f"slo percentile must be one of p50, p90, p95, p99, p999; got {self.quantile}")

    @property
    def arrival_scv(self) -> float:
        a = self.arrivals
        if a is None or a.process == "poisson":
            return 1.0
        if a.process == "gamma":
            return a.cv ** 2
        return 1.0  # mmpp / diurnal / trace: no two-moment summary; the simulation judges these

    @property
    def poisson(self) -> bool:
        return self.arrivals is None or self.arrivals.process == "poisson"


@dataclass
class Point:
    """One evaluated candidate: a configuration with ``replicas`` replicas at ``rate`` requests/s."""

    replicas: int
    rate: float
    judge: str                        # "simulation (fast)", "closed form (Erlang C)", "analytic ..."
    stable: bool
    passes: bool
    p99_ms: float | None = None
    p99_ms_ci95: list[float] | None = None
    utilization: float | None = None
    hit_ratio: float | None = None
    mean_batch: float | None = None
    requests: int = 0
    verdict: str | None = None

    def to_dict(self) -> dict:
        return {"replicas": self.replicas, "rate": self.rate, "judge": self.judge, "stable": self.stable,
                "meets_slo": self.passes, "p99_ms": self.p99_ms, "p99_ms_ci95": self.p99_ms_ci95,
                "utilization": self.utilization, "cache_hit_ratio": self.hit_ratio,
                "mean_batch_size": self.mean_batch, "requests_simulated": self.requests,
                "verdict": self.verdict}


@dataclass(frozen=True)
class SearchTask:
    """Find the fewest replicas of ``config`` meeting the SLO at ``rate``."""

    spec: ServiceSpec
    config: Config
    rate: float
    settings: Settings


@dataclass
class SearchOutcome:
    """Result of one search. ``replicas`` is None when no count up to max_replicas meets the SLO."""

    config: Config
    rate: float
    status: str
    replicas: int | None
    best: Point | None
    fewer: Point | None
    min_replicas_stable: int | None
    screen_replicas: int | None
    judge: str
    hit_ratio: float
    points: list[Point] = field(default_factory=list)
    analytic_evaluations: int = 0
    note: str | None = None

    @property
    def simulations(self) -> int:
        return sum(1 for p in self.points if p.judge.startswith("simulation"))


@dataclass(frozen=True)
class CapacityTask:
    """Highest arrival rate that ``replicas`` replicas of ``config`` carry within the SLO."""

    spec: ServiceSpec
    config: Config
    replicas: int
    rate: float          # a rate known to pass (the planned one)
    settings: Settings
    rel_tol: float = 0.02


# -- evaluation ----------------------------------------------------------------------------------------
class Evaluator:
    """Judges candidates of one configuration: analytic screen, closed form or simulation."""

    def __init__(self, task_spec: ServiceSpec, config: Config, settings: Settings):
        self.spec = _materialize(task_spec)
        self.config = config
        self.settings = settings
        if config.batch_size > 1 and self.spec.profile_path is None and self.spec.batch_time_s is None:
            raise InputError(f"{config.label()}: batching needs a batch-time line (batch_time_ms) or a profile")
        self.model = service_model(self.spec, config.batch_size)
        self.hit = hit_ratio(config.cache_policy, config.cache_capacity, settings.zipf_alpha, settings.keys)
        exact = (self.spec.profile_path is None and self.spec.dist == "exponential" and config.batch_size == 1
                 and config.cache is None and settings.poisson)
        self.exact_mmc = exact
        self.engine = self._engine()
        self.analytic_calls = 0

    def _engine(self) -> str:
        engine = self.settings.engine
        if engine == "analytic":
            return "analytic"
        if engine == "auto":
            if self.exact_mmc:
                return "analytic"
            return "fast" if simulation_available() else "analytic"
        if not simulation_available():
            raise InputError(f"engine {engine!r} needs the simulation engines (simulator.simulate), "
                             "which are not installed; use --engine analytic")
        return engine

    @property
    def judge(self) -> str:
        if self.engine != "analytic":
            return f"simulation ({self.engine})"
        if self.exact_mmc:
            return "closed form (Erlang C)"
        return "analytic approximation (Allen-Cunneen G/G/c, Che cache, batching estimate)"

    def screen(self, rate: float) -> Screen:
        s = self.settings
        return Screen(self.model, rate, s.quantile, self.config.batch_size, self.config.batch_timeout_ms * 1e-3,
                      self.hit, s.cache_hit_s if self.config.cache else 0.0, s.arrival_scv, self.exact_mmc,
                      under_load(self.spec))

    def scenario(self, replicas: int, rate: float) -> Scenario:
        s, c = self.settings, self.config
        arrivals = replace(s.arrivals, rate=rate) if s.arrivals is not None else Arrivals(rate=rate)
        cache = Cache(policy=c.cache_policy, capacity=c.cache_capacity, zipf_alpha=s.zipf_alpha, keys=s.keys,
                      hit_latency_s=s.cache_hit_s) if c.cache else Cache()
        return Scenario(arrivals=arrivals, service=self.spec.service(), replicas=replicas,
                        batching=Batching(c.batch_size, c.batch_timeout_ms * 1e-3), cache=cache,
                        run=Run(requests=s.requests, replications=s.replications, seed=self.seed))

    @property
    def seed(self) -> int:
        return config_seed(self.settings.seed, self.config.hardware, self.config.variant)

    def evaluate(self, replicas: int, rate: float) -> Point:
        scr = self.screen(rate)
        if replicas < scr.min_replicas:
            self.analytic_calls += 1
            util = scr.miss_rate / (replicas * scr.per_replica_capacity)
            return Point(replicas, rate, "stability bound", False, False, utilization=util, hit_ratio=self.hit,
                         verdict=f"unstable: offered load needs at least {scr.min_replicas} replicas "
                                 f"(utilization {util:.3g} >= 1 even with full batches)")
        if self.engine == "analytic":
            self.analytic_calls += 1
            p = scr.p99(replicas)
            ms = p * 1e3 if math.isfinite(p) else None
            ok = ms is not None and p <= self.settings.slo_s
            util = (scr.miss_rate * self.model.mean(1) * scr.factor(replicas) / replicas
                    if self.config.batch_size == 1 else None)
            return Point(replicas, rate, self.judge, ms is not None, ok, ms, [ms, ms] if ms is not None else None,
                         utilization=util, hit_ratio=self.hit)
        return self._simulate(replicas, rate)

    def _simulate(self, replicas: int, rate: float) -> Point:
        from ..simulate import simulate

        res = simulate(self.scenario(replicas, rate), engine=self.engine, seed=self.seed)
        key = self.settings.quantile_key
        if not res.stable:
            return Point(replicas, rate, self.judge, False, False, utilization=res.utilization,
                         verdict=res.verdict or "unstable")
        p = res.latency_ms.get(key)
        ci = res.latency_ms_ci95.get(key) or ([p, p] if p is not None else None)
        drops = res.drop_rate or 0.0
        ok = p is not None and ci is not None and ci[1] <= self.settings.slo_s * 1e3 and drops == 0.0
        return Point(replicas, rate, self.judge, True, ok, p, [float(ci[0]), float(ci[1])] if ci else None,
                     utilization=res.utilization, hit_ratio=res.cache_hit_ratio, mean_batch=res.mean_batch_size,
                     requests=int(res.requests_simulated), verdict=None if drops == 0 else f"drop rate {drops:.3g}")


def _materialize(spec: ServiceSpec) -> ServiceSpec:
    """On a worker without the catalog's files, write the shipped profile text to a private temp file."""
    if spec.profile_path is None or os.path.exists(spec.profile_path) or spec.profile_text is None:
        return spec
    folder = os.path.join(tempfile.gettempdir(), f"simulator-plan-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{spec.key()}.json")
    if not os.path.exists(path):
        from ..io import atomic_write_text

        atomic_write_text(path, spec.profile_text)
    return replace(spec, profile_path=path)


# -- searches ------------------------------------------------------------------------------------------
def search_replicas(task: SearchTask) -> SearchOutcome:
    """Fewest replicas of ``task.config`` whose percentile meets the SLO at ``task.rate`` (see module notes)."""
    ev = Evaluator(task.spec, task.config, task.settings)
    s = task.settings
    scr = ev.screen(task.rate)
    c_lo = scr.min_replicas
    guess = scr.replicas_for(s.slo_s, s.max_replicas, margin=SCREEN_MARGIN if ev.engine != "analytic" else 1.0)
    points: list[Point] = []

    def outcome(status, best=None, fewer=None, note=None):
        return SearchOutcome(task.config, task.rate, status, best.replicas if best else None, best, fewer, c_lo,
                             guess, ev.judge, ev.hit, points, ev.analytic_calls, note)

    if c_lo > s.max_replicas:
        return outcome("unstable at max_replicas",
                       note=f"stability needs at least {c_lo} replicas > max_replicas {s.max_replicas}")

    def check(c: int) -> Point:
        pt = ev.evaluate(c, task.rate)
        points.append(pt)
        return pt

    if ev.engine == "analytic":
        # The analytic figure is the judge and decreases with replicas: the screen's answer is the answer.
        if guess is None:
            pt = check(s.max_replicas)
            return outcome("misses SLO at max_replicas",
                           note=f"{s.max_replicas} replicas: {s.quantile_key} {_fmt_ci(pt)} > SLO {s.slo_s * 1e3:g} ms")
        best = check(guess)
        return outcome("ok", best, check(guess - 1) if guess > 1 else None)
    hi = guess if guess is not None else s.max_replicas
    hi_pt = check(hi)
    while not hi_pt.passes:
        if hi >= s.max_replicas:
            return outcome("misses SLO at max_replicas",
                           note=f"{s.max_replicas} replicas: {s.quantile_key} {_fmt_ci(hi_pt)} > SLO "
                                f"{s.slo_s * 1e3:g} ms")
        hi = min(s.max_replicas, hi * 2)
        hi_pt = check(hi)
    lo = max(c_lo - 1, 0)
    lo_pt = None
    # lo fails (unstable below c_lo, or simulated and missing), hi passes.
    passing = {p.replicas: p for p in points if p.passes}
    failing = [p.replicas for p in points if not p.passes and p.replicas < hi]
    if failing:
        lo = max(lo, max(failing))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        pt = check(mid)
        if pt.passes:
            hi, passing[mid] = mid, pt
        else:
            lo = mid
    best = passing.get(hi) or hi_pt
    if hi > 1:
        lo_pt = next((p for p in points if p.replicas == hi - 1), None) or check(hi - 1)
    return outcome("ok", best, lo_pt)


def find_capacity(task: CapacityTask) -> dict:
    """Highest arrival rate (requests/s) ``task.replicas`` replicas carry within the SLO (bisection on rate).

    The bracket is [the planned rate (passes), the stability limit (fails)]; bisection stops when the
    bracket is narrower than ``rel_tol`` relative. Returns the capacity and the evaluation at it.
    """
    ev = Evaluator(task.spec, task.config, task.settings)
    lo = task.rate
    hi = ev.screen(task.rate).capacity(task.replicas)
    if not math.isfinite(hi):
        hi = task.rate * 1e3
    lo_pt = None
    evaluations = 0
    while hi / lo > 1.0 + task.rel_tol and evaluations < 16:
        mid = math.sqrt(lo * hi)
        pt = ev.evaluate(task.replicas, mid)
        evaluations += 1
        if pt.passes:
            lo, lo_pt = mid, pt
        else:
            hi = mid
    return {"capacity_rps": lo, "bracket_rps": [lo, hi], "at_capacity": lo_pt.to_dict() if lo_pt else None,
            "evaluations": evaluations, "judge": ev.judge}


def _fmt_ci(p: Point) -> str:
    if p.p99_ms_ci95:
        return f"{p.p99_ms:.3g} ms (95% CI {p.p99_ms_ci95[0]:.3g}-{p.p99_ms_ci95[1]:.3g})"
    return p.verdict or "unstable"
