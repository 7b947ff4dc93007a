"""Scenario: the workload and the serving system, as frozen, validated dataclasses (seconds inside).

A Scenario comes from CLI flags or from a TOML file (:func:`load_scenario`) — the two are equivalent.
TOML keys that carry a time end in ``_ms`` (the user-facing unit); unknown keys are refused so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .errors import InputError
from .validation import (
    check_choice,
    check_integer,
    check_nonnegative,
    check_positive,
    check_probability,
)

ARRIVAL_PROCESSES = ("poisson", "gamma", "mmpp", "diurnal", "trace")
CACHE_POLICIES = ("lru", "lfu", "fifo")
ROUTING_POLICIES = ("round-robin", "join-shortest-queue", "random")
CONTENTION = ("auto", "none", "shared")
SERVICE_DISTS = ("exponential", "deterministic", "lognormal", "gamma")
WARMUP_RULES = ("mser5", "none", "fraction")

__all__ = ["Arrivals", "Batching", "Cache", "Pool", "Run", "Scenario", "Service", "Stage", "load_scenario"]


def _help(text: str, default=None, **kw):
    return field(default=default, metadata={"help": text}, **kw)


@dataclass(frozen=True)
class Arrivals:
    """How requests arrive."""

    process: str = _help("poisson | gamma | mmpp | diurnal | trace", "poisson")
    rate: float | None = _help("mean arrival rate, requests/s (for a trace: taken from the file)", None)
    cv: float = _help("gamma renewal: coefficient of variation of inter-arrival times", 1.0)
    burst_ratio: float = _help("mmpp: arrival rate in the burst state over the calm state (> 1)", 5.0)
    burst_fraction: float = _help("mmpp: long-run fraction of time in the burst state, in (0, 1)", 0.1)
    burst_mean_s: float = _help("mmpp: mean length of a burst (s)", 1.0)
    amplitude: float = _help("diurnal: rate(t) = rate·(1 + amplitude·sin(2πt/period)), in [0, 1)", 0.5)
    period_s: float = _help("diurnal: period of the daily cycle (s)", 86400.0)
    trace: str | None = _help("trace: path of a file of arrival timestamps (s), optional key column", None)

    def __post_init__(self):
        check_choice("arrival_process", self.process, ARRIVAL_PROCESSES)
        if self.trace is not None and (not isinstance(self.trace, str) or not self.trace):
            raise InputError(f"trace must be a file path, got {self.trace!r}")
        if self.process == "trace":
            if not self.trace:
                raise InputError("arrival_process trace needs a trace file (trace:FILE)")
        elif self.rate is None:
            raise InputError("arrival_rate is required (requests/s)")
        if self.rate is not None:
            check_positive("arrival_rate", self.rate)
        check_positive("arrival_cv", self.cv)
        if self.process == "mmpp":
            if not (math.isfinite(self.burst_ratio) and self.burst_ratio > 1):
                raise InputError(f"burst_ratio must be a finite number > 1, got {self.burst_ratio}")
            check_probability("burst_fraction", self.burst_fraction, open_low=True, open_high=True)
            check_positive("burst_mean_s", self.burst_mean_s)
        if self.process == "diurnal":
            check_probability("amplitude", self.amplitude, open_high=True)
            check_positive("period_s", self.period_s)


@dataclass(frozen=True)
class Service:
    """Service time of one replica: a profile, or a parametric distribution."""

    profile: str | None = _help("path of a profile JSON (empirical resampling)", None)
    mean_s: float | None = _help("mean service time (s) of one request, if no profile", None)
    cv: float | None = _help("coefficient of variation of the service time (None: the family's own)", None)
    dist: str = _help("exponential | deterministic | lognormal | gamma", "exponential")
    batch_time: tuple[float, float] | None = _help("(a, b): a batch of n takes a + b·n seconds", None)
    contention: str = _help("none | shared | auto. none: each replica is its own instance. shared: the "
                            "replicas are workers on ONE host and slow each other down by the profile's "
                            "concurrency sweep. auto: shared when the profile has a sweep", "none")
    host_level: float = _help("multiplier on every service time: the host this much slower (> 1) or faster "
                              "(< 1) than where the profile was measured. A shared host's level moves between "
                              "runs (a profile's under_load.host_level says by how much); simulate shows the "
                              "band it spans, plan can require the SLO at a slow level", 1.0)

    def __post_init__(self):
        check_choice("service_dist", self.dist, SERVICE_DISTS)
        check_choice("contention", self.contention, CONTENTION)
        if self.profile is not None and (not isinstance(self.profile, str) or not self.profile):
            raise InputError(f"profile must be a file path, got {self.profile!r}")
        if self.profile is None and self.mean_s is None and self.batch_time is None:
            raise InputError("service needs a profile or a mean service time (--service-time-ms)")
        if self.profile is not None and (self.mean_s is not None or self.batch_time is not None):
            raise InputError("give either a profile or a parametric service time, not both")
        if self.mean_s is not None and self.batch_time is not None:
            raise InputError("give either a mean service time or a batch time (a + b*n), not both")
        if isinstance(self.host_level, bool) or not isinstance(self.host_level, (int, float)) \
                or not (math.isfinite(self.host_level) and 0.1 <= self.host_level <= 10):
            raise InputError(f"host_level must be a number from 0.1 to 10 (a multiplier on service times), "
                             f"got {self.host_level!r}")
        if self.mean_s is not None:
            check_positive("service_time", self.mean_s)
        if self.cv is not None:
            check_nonnegative("service_cv", self.cv)
        if self.batch_time is not None:
            if not isinstance(self.batch_time, (tuple, list)) or len(self.batch_time) != 2:
                raise InputError(f"batch_time must be two numbers (a, b), got {self.batch_time!r}")
            check_nonnegative("batch_time a", self.batch_time[0])
            check_positive("batch_time b", self.batch_time[1])

    @property
    def effective_cv(self) -> float:
        if self.cv is not None:
            return self.cv
        return {"exponential": 1.0, "deterministic": 0.0}.get(self.dist, 1.0)


@dataclass(frozen=True)
class Batching:
    """Dynamic batching, TF-Serving semantics: a batch starts when max_batch_size requests wait or
    the oldest has waited ``timeout_s`` (and a replica is free)."""

    max_batch_size: int = _help("largest batch (1 = no batching)", 1)
    timeout_s: float = _help("longest the oldest request waits for a batch to fill (s); 0 = greedy", 0.0)

    def __post_init__(self):
        check_integer("batch_size", self.max_batch_size, minimum=1, maximum=4096)
        check_nonnegative("batch_timeout", self.timeout_s)

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1


@dataclass(frozen=True)
class Cache:
    """A result cache in front of the model; keys drawn from Zipf(α) over ``keys`` or from the trace."""

    policy: str | None = _help("lru | lfu | fifo, or None for no cache", None)
    capacity: int = _help("entries the cache holds", 0)
    zipf_alpha: float = _help("Zipf exponent of key popularity (>= 0)", 0.8)
    keys: int = _help("number of distinct request keys", 10_000)
    hit_latency_s: float = _help("latency of a cache hit (s)", 0.0)

    def __post_init__(self):
        if self.policy is not None:
            check_choice("cache_policy", self.policy, CACHE_POLICIES)
        check_integer("cache_capacity", self.capacity, minimum=0)
        check_nonnegative("zipf_alpha", self.zipf_alpha)
        check_integer("keys", self.keys, minimum=1)
        check_nonnegative("cache_hit_latency", self.hit_latency_s)
        if self.policy is not None and self.capacity > self.keys:
            raise InputError(f"cache_capacity must be <= keys ({self.keys}), got {self.capacity}: "
                             "a cache larger than the key space holds nothing more")

    @property
    def enabled(self) -> bool:
        return self.policy is not None and self.capacity > 0


@dataclass(frozen=True)
class Stage:
    """A pre- or post-processing step (tokenize, resize, serialize) around inference."""

    name: str = _help("stage name", "stage")
    mean_s: float = _help("mean time of the stage (s)", 0.001)
    cv: float = _help("coefficient of variation of the stage time", 0.0)
    dist: str = _help("exponential | deterministic | lognormal | gamma", "deterministic")
    servers: int | None = _help("workers of this stage; None = as many as needed (pure delay)", None)

    def __post_init__(self):
        check_positive(f"stage {self.name!r} mean", self.mean_s)
        check_nonnegative(f"stage {self.name!r} cv", self.cv)
        check_choice(f"stage {self.name!r} dist", self.dist, SERVICE_DISTS)
        if self.servers is not None:
            check_integer(f"stage {self.name!r} servers", self.servers, minimum=1)


@dataclass(frozen=True)
class Pool:
    """A group of replicas on one kind of hardware (for heterogeneous fleets with routing)."""

    name: str = _help("pool name", "pool")
    replicas: int = _help("replicas in this pool", 1)
    service: Service | None = _help("service of this pool's hardware", None)

    def __post_init__(self):
        check_integer(f"pool {self.name!r} replicas", self.replicas, minimum=1)
        if self.service is None:
            raise InputError(f"pool {self.name!r} needs a service (profile or service time)")


@dataclass(frozen=True)
class Run:
    """How long and how often to simulate."""

    requests: int = _help("requests per replication (after arrivals start)", 50_000)
    replications: int | None = _help("replications; None = add until the precision target is met", None)
    min_replications: int = _help("replications before the precision rule is checked", 5)
    max_replications: int = _help("budget of replications for the precision rule", 40)
    target_rel_halfwidth: float = _help("stop when p99's 95% CI half-width / p99 <= this", 0.05)
    warmup: str = _help("mser5 | none | fraction: warm-up deletion rule", "mser5")
    warmup_fraction: float = _help("fraction of requests dropped as warm-up with warmup = fraction", 0.1)
    seed: int = _help("root seed; replication r uses SeedSequence(seed).spawn(...)[r]", 12345)

    def __post_init__(self):
        check_integer("requests", self.requests, minimum=100, maximum=10**10)
        if self.replications is not None:
            check_integer("replications", self.replications, minimum=1, maximum=10_000)
        check_integer("min_replications", self.min_replications, minimum=2)
        check_integer("max_replications", self.max_replications, minimum=self.min_replications)
        check_probability("target_rel_halfwidth", self.target_rel_halfwidth, open_low=True, open_high=True)
        check_choice("warmup", self.warmup, WARMUP_RULES)
        check_probability("warmup_fraction", self.warmup_fraction, open_high=True)
        check_integer("seed", self.seed, minimum=0, maximum=2**63 - 1)


@dataclass(frozen=True)
class Scenario:
    """The whole serving system under one workload."""

    arrivals: Arrivals = _help("arrival process")
    service: Service | None = _help("service of each replica (None when pools are given)", None)
    replicas: int = _help("replicas (servers) behind one FCFS queue", 1)
    batching: Batching = _help("dynamic batching", None, )
    cache: Cache = _help("result cache", None)
    queue_limit: int | None = _help("waiting places (not counting requests in service); None = unlimited", None)
    request_timeout_s: float | None = _help("a request still waiting after this long is dropped (s)", None)
    pre_stages: tuple[Stage, ...] = _help("stages before inference", ())
    post_stages: tuple[Stage, ...] = _help("stages after inference", ())
    fork_branches: int = _help("parallel sub-tasks: a request is split into k shards, each on its own "
                               "replica group, done when all are", 1)
    pools: tuple[Pool, ...] = _help("heterogeneous replica pools (replace service/replicas)", ())
    routing: str = _help("round-robin | join-shortest-queue | random (across pools)", "round-robin")
    run: Run = _help("run control", None)

    def __post_init__(self):
        if self.arrivals is None:
            raise InputError("scenario needs arrivals")
        for name, default in (("batching", Batching()), ("cache", Cache()), ("run", Run())):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        object.__setattr__(self, "pre_stages", tuple(self.pre_stages))
        object.__setattr__(self, "post_stages", tuple(self.post_stages))
        object.__setattr__(self, "pools", tuple(self.pools))
        check_integer("replicas", self.replicas, minimum=1, maximum=100_000)
        check_integer("fork_branches", self.fork_branches, minimum=1, maximum=1024)
        check_choice("routing", self.routing, ROUTING_POLICIES)
        if not self.pools and self.service is None:
            raise InputError("scenario needs a service (profile or service time) or pools")
        if self.queue_limit is not None:
            check_integer("queue_limit", self.queue_limit, minimum=0)
        if self.request_timeout_s is not None:
            check_positive("request_timeout", self.request_timeout_s)
        if self.batching.timeout_s > 0 and not self.batching.enabled:
            raise InputError(f"batch_timeout ({self.batching.timeout_s * 1e3:g} ms) needs batch_size > 1; "
                             "got batch_size 1")

    def with_rate(self, rate: float) -> Scenario:
        """The same scenario at another arrival rate (requests/s)."""
        return replace(self, arrivals=replace(self.arrivals, rate=rate))

    def with_replicas(self, replicas: int) -> Scenario:
        return replace(self, replicas=replicas)


# -- TOML ---------------------------------------------------------------------------------------------
_MS = 1e-3


def _take(table: dict, section: str, allowed: dict[str, str]) -> dict:
    """Map TOML keys to dataclass field names, converting *_ms to seconds; refuse unknown keys."""
    if not isinstance(table, dict):
        raise InputError(f"scenario [{section}] must be a table")
    out = {}
    for key, value in table.items():
        if key not in allowed:
            raise InputError(f"scenario [{section}] has unknown key {key!r}; known: {', '.join(sorted(allowed))}")
        target = allowed[key]
        if key.endswith("_ms"):
            if isinstance(value, list):
                value = tuple(_ms_value(f"{section}.{key}", v) for v in value)
            else:
                value = _ms_value(f"{section}.{key}", value)
        out[target] = value
    return out


def _ms_value(name: str, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{name} must be a number of milliseconds, got {v!r}")
    return v * _MS


def _service_from(table: dict, section: str) -> Service:
    return Service(**_take(table, section, {
        "profile": "profile", "service_time_ms": "mean_s", "cv": "cv", "dist": "dist",
        "batch_time_ms": "batch_time", "contention": "contention",
        "host_level": "host_level"}))


def load_scenario(path: str | Path, **overrides) -> Scenario:
    """Read a scenario TOML file. Relative profile/trace paths are resolved against the file's folder.

    Sections: [arrivals] [service] [system] [batching] [cache] [run], [[pre_stage]] [[post_stage]],
    [[pool]]. ``overrides`` replace top-level Scenario fields (as the CLI does).
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"scenario file {str(p)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"scenario file {str(p)!r} is not valid TOML: {exc}") from None
    known = {"arrivals", "service", "system", "batching", "cache", "run", "pre_stage", "post_stage", "pool"}
    for key in doc:
        if key not in known:
            raise InputError(f"scenario file {str(p)!r}: unknown section [{key}]; known: {', '.join(sorted(known))}")
    base = p.parent

    def resolve(v):
        return str((base / v).resolve()) if isinstance(v, str) and not Path(v).is_absolute() else v

    arr = _take(doc.get("arrivals", {}), "arrivals", {
        "process": "process", "rate": "rate", "cv": "cv", "burst_ratio": "burst_ratio",
        "burst_fraction": "burst_fraction", "burst_mean_ms": "burst_mean_s", "amplitude": "amplitude",
        "period_ms": "period_s", "period_s": "period_s", "trace": "trace"})
    if "trace" in arr:
        arr["trace"] = resolve(arr["trace"])
    kwargs: dict = {"arrivals": Arrivals(**arr)}
    if "service" in doc:
        svc = dict(doc["service"])
        if "profile" in svc:
            svc["profile"] = resolve(svc["profile"])
        kwargs["service"] = _service_from(svc, "service")
    system = _take(doc.get("system", {}), "system", {
        "replicas": "replicas", "queue_limit": "queue_limit", "request_timeout_ms": "request_timeout_s",
        "fork_branches": "fork_branches", "routing": "routing"})
    kwargs.update(system)
    if "batching" in doc:
        kwargs["batching"] = Batching(**_take(doc["batching"], "batching", {
            "max_batch_size": "max_batch_size", "timeout_ms": "timeout_s"}))
    if "cache" in doc:
        kwargs["cache"] = Cache(**_take(doc["cache"], "cache", {
            "policy": "policy", "capacity": "capacity", "zipf_alpha": "zipf_alpha", "keys": "keys",
            "hit_latency_ms": "hit_latency_s"}))
    if "run" in doc:
        kwargs["run"] = Run(**_take(doc["run"], "run", {f.name: f.name for f in fields(Run)}))
    stage_keys = {"name": "name", "time_ms": "mean_s", "cv": "cv", "dist": "dist", "servers": "servers"}
    for section, target in (("pre_stage", "pre_stages"), ("post_stage", "post_stages")):
        if section in doc:
            kwargs[target] = tuple(Stage(**_take(t, section, stage_keys)) for t in _table_list(doc, section))
    if "pool" in doc:
        pools = []
        for t in _table_list(doc, "pool"):
            t = dict(t)
            name, replicas = t.pop("name", "pool"), t.pop("replicas", 1)
            if "profile" in t:
                t["profile"] = resolve(t["profile"])
            pools.append(Pool(name=name, replicas=replicas, service=_service_from(t, f"pool {name}")))
        kwargs["pools"] = tuple(pools)
    kwargs.update(overrides)
    try:
        return Scenario(**kwargs)
    except TypeError as exc:  # a wrong value type reached a dataclass
        raise InputError(f"scenario file {str(p)!r}: {exc}") from None


def _table_list(doc: dict, key: str) -> list:
    v = doc[key]
    if not isinstance(v, list):
        raise InputError(f"scenario [[{key}]] must be an array of tables")
    return v
