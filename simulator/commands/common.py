"""Flag parsing shared by subcommands: rates, SLOs, service and system flags → Scenario."""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..profiles import default_profile_path
from ..scenario import (
    CACHE_POLICIES,
    CONTENTION,
    SERVICE_DISTS,
    Arrivals,
    Batching,
    Cache,
    Run,
    Scenario,
    Service,
    load_scenario,
)
from ..validation import check_positive, check_quantile

MS = 1e-3


def parse_rates(tokens: list[str]) -> list[float]:
    """``200``, ``100 200 300`` or ``100:400:50`` (inclusive) → arrival rates (requests/s)."""
    rates: list[float] = []
    for tok in tokens:
        if ":" in tok:
            parts = tok.split(":")
            if len(parts) != 3:
                raise InputError(f"arrival_rate range must be START:STOP:STEP, got {tok!r}")
            try:
                start, stop, step = (float(p) for p in parts)
            except ValueError:
                raise InputError(f"arrival_rate range must be numbers START:STOP:STEP, got {tok!r}") from None
            for name, v in (("start", start), ("stop", stop), ("step", step)):
                check_positive(f"arrival_rate range {name}", v)
            if stop < start:
                raise InputError(f"arrival_rate range stop must be >= start, got {tok!r}")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > 1000:
                raise InputError(f"arrival_rate range {tok!r} has {count} points; at most 1000")
            rates.extend(float(x) for x in start + step * np.arange(count))
        else:
            try:
                v = float(tok)
            except ValueError:
                raise InputError(f"arrival_rate must be a number (requests/s), got {tok!r}") from None
            rates.append(check_positive("arrival_rate", v))
    return rates


_SLO_RE = re.compile(r"^\s*p(\d+(?:\.\d+)?)\s*=\s*([0-9.eE+-]+)\s*(ms|s)?\s*$")


def parse_slo(text: str) -> tuple[float, float]:
    """``p99=50ms`` → (0.99, 0.050 s). ``p999`` means 0.999, ``p99.9`` too."""
    m = _SLO_RE.match(text or "")
    if not m:
        raise InputError(f"slo must look like p99=50ms, got {text!r}")
    digits, value, unit = m.groups()
    q = float("0." + digits.replace(".", "")) if "." not in digits else float(digits) / 100
    q = check_quantile("slo percentile", q)
    try:
        v = float(value)
    except ValueError:
        raise InputError(f"slo latency must be a number, got {value!r}") from None
    seconds = check_positive("slo latency", v * (MS if unit in (None, "ms") else 1.0))
    return q, seconds


def parse_pair_ms(name: str, text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"{name} must be two numbers A,B in ms, got {text!r}") from None
    return a * MS, b * MS


def add_service_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("service (default: the bundled default profile)")
    g.add_argument("--profile", help="profile JSON (empirical service times per batch size)")
    g.add_argument("--service-time-ms", type=float, help="mean service time of one request (ms)")
    g.add_argument("--service-cv", type=float, help="coefficient of variation of the service time")
    g.add_argument("--service-dist", choices=SERVICE_DISTS, default=None,
                   help="service-time distribution with --service-time-ms (default exponential)")
    g.add_argument("--batch-time-ms", metavar="A,B", help="parametric batch time: a batch of n takes A + B*n ms")
    g.add_argument("--contention", choices=CONTENTION, help="shared: the replicas are workers on one host and slow each other down by the "
                   "profile's concurrency sweep; none (default): separate instances; auto: shared when "
                   "the profile has a sweep")
    g.add_argument("--host-level", type=float, metavar="F",
                   help="service times x F: the host this much slower (> 1) or faster (< 1) than where the "
                        "profile was measured (default 1)")
    s = p.add_argument_group("system")
    s.add_argument("--replicas", type=int, help="replicas (servers) behind one FCFS queue")
    s.add_argument("--batch-size", type=int, help="max batch size (dynamic batching)")
    s.add_argument("--batch-timeout-ms", type=float, help="longest the oldest request waits for a batch (ms)")
    s.add_argument("--cache", metavar="POLICY:CAPACITY", help=f"result cache, POLICY in {'|'.join(CACHE_POLICIES)}")
    s.add_argument("--zipf", type=float, help="Zipf exponent of request keys (cache)")
    s.add_argument("--keys", type=int, help="number of distinct request keys (cache)")
    s.add_argument("--cache-hit-ms", type=float, help="latency of a cache hit (ms)")
    s.add_argument("--queue-limit", type=int, help="waiting places; arrivals beyond are dropped")
    s.add_argument("--request-timeout-ms", type=float, help="drop requests still waiting after this long (ms)")
    s.add_argument("--arrival-process", default=None,
                   help="poisson | gamma:CV | mmpp[:RATIO] | diurnal[:AMPLITUDE] | trace:FILE")
    s.add_argument("--scenario", help="scenario TOML file (flags given too override it)")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    r = p.add_argument_group("run")
    r.add_argument("--engine", choices=("auto", "simpy", "fast", "analytic"), default="auto")
    r.add_argument("--requests", type=int, help="requests per replication")
    r.add_argument("--replications", type=int, help="fixed number of replications "
                   "(default: add until p99's 95%% CI half-width <= 5%%)")
    r.add_argument("--max-replications", type=int, help="budget for the precision rule")
    r.add_argument("--seed", type=int, help="root seed (same seed, same output)")


def _arrivals_from_flag(spec: str | None, rate: float | None, base: Arrivals | None) -> Arrivals:
    if spec is None:
        return replace(base, rate=rate if rate is not None else base.rate) if base else Arrivals(rate=rate)
    name, _, arg = spec.partition(":")
    kw: dict = {"process": name, "rate": rate}

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise InputError(f"arrival_process argument must be a number, got {spec!r}") from None

    if name == "gamma":
        if not arg:
            raise InputError("arrival_process gamma needs a CV: gamma:CV")
        kw["cv"] = number(arg)
    elif name == "mmpp" and arg:
        kw["burst_ratio"] = number(arg)
    elif name == "diurnal" and arg:
        kw["amplitude"] = number(arg)
    elif name == "trace":
        kw["trace"] = arg or None
    elif arg and name == "poisson":
        raise InputError(f"arrival_process poisson takes no argument, got {spec!r}")
    return Arrivals(**kw)


def scenario_from_args(args: argparse.Namespace, rate: float | None) -> Scenario:
    """Build the Scenario of one arrival rate from flags (over --scenario, over the default profile)."""
    base = load_scenario(args.scenario) if getattr(args, "scenario", None) else None
    if base is None and rate is None:
        raise InputError("arrival_rate is required")
    arrivals = _arrivals_from_flag(args.arrival_process, rate, base.arrivals if base else None)

    service = base.service if base else None
    if args.profile or args.service_time_ms is not None or args.batch_time_ms:
        if args.profile and (args.service_time_ms is not None or args.batch_time_ms):
            raise InputError("give either --profile or --service-time-ms/--batch-time-ms, not both")
        if args.profile:
            if not Path(args.profile).exists():
                raise InputError(f"profile {args.profile!r} does not exist")
            service = Service(profile=args.profile, contention=args.contention or "none")
        else:
            service = Service(mean_s=args.service_time_ms * MS if args.service_time_ms is not None else None,
                              cv=args.service_cv, dist=args.service_dist or "exponential",
                              batch_time=parse_pair_ms("batch_time_ms", args.batch_time_ms)
                              if args.batch_time_ms else None,
                              contention=args.contention or "none")
    elif args.service_cv is not None or args.service_dist is not None:
        raise InputError("--service-cv/--service-dist need --service-time-ms")
    is_default = service is None
    if is_default:
        service = Service(profile=str(default_profile_path()), contention=args.contention or "none")
    elif args.contention and service.contention != args.contention:
        service = replace(service, contention=args.contention)
    if getattr(args, "host_level", None) is not None:
        if base is not None and base.pools:
            raise InputError("--host-level sets the [service]'s level; a scenario with pools sets host_level "
                             "in each pool's service")
        service = replace(service, host_level=args.host_level)

    replicas = args.replicas if args.replicas is not None else (
        base.replicas if base else (DEFAULT_REPLICAS if is_default else 1))
    batching = base.batching if base else Batching()
    if args.batch_size is not None or args.batch_timeout_ms is not None:
        batching = Batching(max_batch_size=args.batch_size if args.batch_size is not None
                            else batching.max_batch_size,
                            timeout_s=(args.batch_timeout_ms * MS) if args.batch_timeout_ms is not None
                            else batching.timeout_s)
    cache = base.cache if base else Cache()
    if args.cache or args.zipf is not None or args.keys is not None or args.cache_hit_ms is not None:
        policy, capacity = cache.policy, cache.capacity
        if args.cache:
            policy, sep, cap = args.cache.partition(":")
            if not sep:
                raise InputError(f"cache must be POLICY:CAPACITY (e.g. lru:1000), got {args.cache!r}")
            try:
                capacity = int(cap)
            except ValueError:
                raise InputError(f"cache capacity must be an integer, got {cap!r}") from None
        elif policy is None:
            raise InputError("--zipf/--keys/--cache-hit-ms need --cache POLICY:CAPACITY")
        cache = Cache(policy=policy, capacity=capacity,
                      zipf_alpha=args.zipf if args.zipf is not None else cache.zipf_alpha,
                      keys=args.keys if args.keys is not None else cache.keys,
                      hit_latency_s=args.cache_hit_ms * MS if args.cache_hit_ms is not None else cache.hit_latency_s)
    run = base.run if base else Run()
    run_kw = {}
    if getattr(args, "requests", None) is not None:
        run_kw["requests"] = args.requests
    if getattr(args, "replications", None) is not None:
        run_kw["replications"] = args.replications
    if getattr(args, "max_replications", None) is not None:
        run_kw["max_replications"] = args.max_replications
        run_kw["min_replications"] = min(run.min_replications, args.max_replications)
    if getattr(args, "seed", None) is not None:
        run_kw["seed"] = args.seed
    if run_kw:
        run = replace(run, **run_kw)
    queue_limit = args.queue_limit if args.queue_limit is not None else (base.queue_limit if base else None)
    timeout = (args.request_timeout_ms * MS if args.request_timeout_ms is not None
               else (base.request_timeout_s if base else None))
    extra = {}
    if base:
        extra = {"pre_stages": base.pre_stages, "post_stages": base.post_stages,
                 "fork_branches": base.fork_branches, "pools": base.pools, "routing": base.routing}
    return Scenario(arrivals=arrivals, service=service if not extra.get("pools") else base.service,
                    replicas=replicas, batching=batching, cache=cache, queue_limit=queue_limit,
                    request_timeout_s=timeout, run=run, **extra)


# Replicas of the default configuration (the bundled default profile with no other flags): one server,
# as measured. On the 2-core machine that profiled it a second worker adds latency, not throughput.
DEFAULT_REPLICAS = 1
