"""``simulator plan``: the cheapest hardware × replicas × batching × cache × variant meeting a latency SLO.

JSON (``--json`` on stdout, ``--output FILE`` written atomically), times in ms, money in USD::

    {"recommendation": {"hardware", "kind", "variant", "source" (measured|published|parametric), "citation",
                        "replicas", "batch_size", "batch_timeout_ms", "cache", "cost_per_hour", "monthly_cost",
                        "cost_per_million_requests", "p99_ms", "p99_ms_ci95": [lo, hi], "judge",
                        "simulate_args": [arguments of `simulate` that reproduce it]} | null,
     "minimality": {"replicas", "fewer_replicas", "p99_ms", "p99_ms_ci95", "meets_slo", "verdict"},
     "per_hardware": [{"hardware", "kind", "meets_slo", "variant", "replicas", ..., "cost_per_hour",
                       "monthly_cost", "cost_per_million_requests", "p99_ms", "p99_ms_ci95",
                       "capacity_rps", "capacity_bracket_rps", "headroom"}],
     "pareto": [{"hardware", "variant", "replicas", ..., "cost_per_hour", "p99_ms", "p99_ms_ci95"}],
     "growth": {"1.5x" | "2x" | "diurnal_peak": {"factor", "arrival_rate", "cheapest",
                "recommended_configuration", "extra_replicas", "switch_hardware", "per_hardware"}},
     "mixed": null | {"candidates": [{"base", "added", "cost_per_hour", "p99_ms", "p99_ms_ci95", "meets_slo"}],
                      "best", "cheaper_than_recommendation", "saving_per_hour"}   (with --mixed),
     "candidates": [one row per configuration: status ok | pruned | misses SLO at max_replicas | ...],
     "configurations", "configurations_searched", "configurations_pruned", "configurations_evaluated",
     "evaluations": {"simulations", "analytic"}, "wall_seconds", "slo": {"percentile", "limit_ms", "judged_on"},
     "arrival_rate", "cost_basis", "search", "catalog": {"path", "hardware": [prices with sources]},
     "provenance": [per profile: model, hardware, variant, device, date, method, source, citation],
     "seed", "executor", "command", "versions"}

"p99_ms" holds the SLO's percentile (p95 when the SLO is p95=...). Monthly cost = cost per hour × 730.
"""

from __future__ import annotations

import json
import sys

from ..errors import InputError
from .common import MS, add_service_flags, parse_pair_ms, parse_rates, parse_slo

# Batching is half of the answer on a GPU (measured on the H100: ResNet-50 fp16 costs 1.3 ms at batch 1
# and 2.9 ms at batch 8), so the planner tries it unless told otherwise.
DEFAULT_BATCH_SIZES = "1,2,4,8,16,32,64"
DEFAULT_BATCH_TIMEOUTS_MS = "1,5"

DESCRIPTION = """Search hardware x replicas x batching x cache x model variant for the cheapest configuration
whose percentile latency meets the SLO at the given load, judged on the upper end of its 95% confidence
interval. Prices and profiles come from the catalog (default: profiles/catalog.toml); profiles built from
published figures are marked "published". Monthly costs use 730 hours per month."""


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="cheapest configuration meeting a latency SLO (capacity planning)",
                       description=DESCRIPTION)
    p.add_argument("--model", help="model name in the catalog (e.g. resnet50); or give service flags instead")
    p.add_argument("--arrival-rate", required=True, metavar="R", help="offered load, requests/s")
    p.add_argument("--slo", required=True, help="latency objective, e.g. p99=50ms")
    p.add_argument("--catalog", help="catalog TOML (default: the bundled profiles/catalog.toml)")
    p.add_argument("--hardware", help="comma-separated hardware names to consider (default: all)")
    p.add_argument("--variants", help="comma-separated model variants to consider, e.g. fp32,int8-dynamic")
    p.add_argument("--min-top1-agreement", type=float, metavar="FRACTION", default=0.99,
                   help="leave out variants whose profile reports top-1 agreement with fp32 below this "
                        "(default 0.99: a faster but wrong variant is never recommended silently; 0 keeps "
                        "every variant); variants without such a record are kept")
    p.add_argument("--batch-sizes", help=f"max batch sizes to try, e.g. 1,4,8 (default {DEFAULT_BATCH_SIZES}, "
                   "each profile up to the largest batch it measured)")
    p.add_argument("--batch-timeouts-ms", help="batch timeouts to try (ms) for batch sizes > 1, e.g. 0,2,5 "
                   f"(default {DEFAULT_BATCH_TIMEOUTS_MS} with the default batch sizes)")
    p.add_argument("--max-replicas", type=int, default=64, help="largest fleet considered (default 64)")
    p.add_argument("--diurnal-amplitude", type=float, default=0.5,
                   help="growth report: diurnal peak = rate x (1 + amplitude) (default 0.5)")
    p.add_argument("--price-per-hour", type=float, default=None,
                   help="with service flags: price of one replica-hour of the custom hardware (default 1.0)")
    p.add_argument("--hardware-name", default="custom", help="with service flags: name of the custom hardware")
    r = p.add_argument_group("precision and execution")
    r.add_argument("--engine", choices=("auto", "analytic", "fast", "simpy"), default="auto",
                   help="auto: closed form where exact (M/M/c), fast simulation elsewhere")
    r.add_argument("--requests", type=int, default=20_000, help="requests per replication (default 20000)")
    r.add_argument("--replications", type=int, default=5, help="replications per candidate (default 5)")
    r.add_argument("--seed", type=int, default=12345, help="root seed (same seed, same plan)")
    r.add_argument("--mixed", action="store_true",
                   help="also try mixed fleets: the recommendation with 1-2 replicas swapped for another "
                        "hardware kind (two pools, join-shortest-queue; SimPy engine, slower)")
    r.add_argument("--exhaustive", action="store_true",
                   help="search every configuration, also those proved unable to beat their hardware's "
                        "cheapest (fuller Pareto frontier; slower)")
    r.add_argument("--scheduler", help="Dask scheduler address (tls://host:8786; tcp:// only on a trusted host)")
    r.add_argument("--workers", type=int, help="run on a local Dask cluster of N worker processes")
    r.add_argument("--security-file", help="TOML with tls_ca_file, tls_client_cert, tls_client_key "
                   "(default for tls://: Dask's own configuration)")
    p.add_argument("--host-margin", type=float, metavar="Z", default=0.0,
                   help="judge the SLO on a host Z standard deviations slower than profiled (the sd a profile "
                        "measured under load carries in under_load.host_level; default 0)")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.add_argument("--output", metavar="FILE", help="also write the JSON plan to FILE (atomically)")
    add_service_flags(p)
    # In plan, --cache takes a list of settings to try.
    p._option_string_actions["--cache"].help = ("cache settings to try, comma-separated: none,lru:1000,lru:10000 "
                                                "(POLICY in lru|lfu|fifo)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..planner import ServiceSpec, plan

    rates = parse_rates([args.arrival_rate])
    if len(rates) != 1:
        raise InputError(f"plan takes one arrival rate, got {args.arrival_rate!r}")
    parse_slo(args.slo)
    if args.host_level is not None:
        raise InputError("plan takes --host-margin Z (standard deviations of each profile's measured host "
                         "level), not --host-level")
    for flag, value in (("--replicas", args.replicas), ("--queue-limit", args.queue_limit),
                        ("--request-timeout-ms", args.request_timeout_ms), ("--scenario", args.scenario)):
        if value is not None:
            raise InputError(f"plan does not take {flag}: it searches replicas itself (use --max-replicas) "
                             "and plans an unlimited FCFS queue")
    custom = args.profile or args.service_time_ms is not None or args.batch_time_ms
    if custom and args.model:
        raise InputError("give either --model (from the catalog) or service flags (--profile, "
                         "--service-time-ms), not both")
    if (args.service_cv is not None or args.service_dist is not None) and not custom:
        raise InputError("--service-cv/--service-dist need --service-time-ms or --batch-time-ms")
    service = _custom_spec(args, ServiceSpec) if custom else None
    if not custom and args.price_per_hour is not None:
        raise InputError("--price-per-hour prices a custom service; catalog prices come from the catalog")
    default_batching = args.batch_sizes is None and args.batch_size is None
    sizes = args.batch_sizes if args.batch_sizes is not None else (
        str(args.batch_size) if args.batch_size is not None else DEFAULT_BATCH_SIZES)
    timeouts = args.batch_timeouts_ms if args.batch_timeouts_ms is not None else (
        str(args.batch_timeout_ms) if args.batch_timeout_ms is not None else
        (DEFAULT_BATCH_TIMEOUTS_MS if default_batching else "0"))
    arrivals = _arrivals(args.arrival_process, rates[0])
    result = plan(args.model, rates[0], args.slo, catalog=args.catalog, hardware=args.hardware,
                  variants=args.variants, service=service,
                  custom_price_per_hour=args.price_per_hour if args.price_per_hour is not None else 1.0,
                  caches=args.cache, zipf_alpha=args.zipf if args.zipf is not None else 0.8,
                  keys=args.keys if args.keys is not None else 10_000,
                  cache_hit_ms=args.cache_hit_ms if args.cache_hit_ms is not None else 0.0,
                  batch_sizes=sizes, batch_timeouts_ms=timeouts, max_replicas=args.max_replicas,
                  engine=args.engine, requests=args.requests, replications=args.replications, seed=args.seed,
                  diurnal_amplitude=args.diurnal_amplitude, arrivals=arrivals, prune=not args.exhaustive, mixed=args.mixed,
                  min_top1_agreement=args.min_top1_agreement, measured_batches_only=default_batching,
                  scheduler=args.scheduler, host_margin=args.host_margin,
                  workers=args.workers, security_file=args.security_file,
                  command=["simulator", "plan", *sys.argv[2:]] if sys.argv[1:2] == ["plan"] else None)
    doc = result.to_dict()
    if args.output:
        from ..io import atomic_write_json

        atomic_write_json(args.output, doc)
    if args.json:
        print(json.dumps(doc, indent=1, allow_nan=False))
    else:
        print(format_plan(doc))
    return 0


def _custom_spec(args, spec_cls):
    from ..planner.catalog import load_catalog  # noqa: F401 - keeps the import cost in one place
    from ..profiles import Profile

    if args.profile:
        if args.service_time_ms is not None or args.batch_time_ms:
            raise InputError("give either --profile or --service-time-ms/--batch-time-ms, not both")
        prof = Profile.load(args.profile)
        from pathlib import Path

        path = Path(args.profile)
        return spec_cls(model=prof.model["name"], hardware=args.hardware_name,
                        measured_batch_sizes=tuple(prof.batch_sizes),
                        variant=str(prof.model.get("variant", "fp32")), source=prof.source,
                        profile_path=str(path.resolve()), profile_text=path.read_text(encoding="utf-8"),
                        citation=prof.citation, device=str(prof.device.get("name", "")),
                        measured_at=prof.measured_at, method=str(prof.method.get("path", "")))
    dist = args.service_dist or "exponential"
    cv = args.service_cv if args.service_cv is not None else {"exponential": 1.0, "deterministic": 0.0}.get(dist)
    if cv is None:
        raise InputError(f"--service-dist {dist} needs --service-cv")
    bt = parse_pair_ms("batch_time_ms", args.batch_time_ms) if args.batch_time_ms else None
    mean = args.service_time_ms * MS if args.service_time_ms is not None else None
    if mean is not None and bt is not None:
        raise InputError("give either --service-time-ms or --batch-time-ms, not both")
    from ..validation import check_positive

    if mean is not None:
        check_positive("service_time", mean)
    return spec_cls(model="custom", hardware=args.hardware_name, variant="default", source="parametric",
                    mean_s=mean if mean is not None else bt[0] + bt[1], cv=cv, dist=dist, batch_time_s=bt,
                    device=args.hardware_name, method="parametric")


def _arrivals(spec: str | None, rate: float):
    if spec is None:
        return None
    from .common import _arrivals_from_flag

    return _arrivals_from_flag(spec, rate, None)


def _f(x, fmt="{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def format_plan(doc: dict) -> str:
    """The human report of a plan."""
    slo = doc["slo"]
    lines = [f"plan: {slo['percentile']} <= {slo['limit_ms']:g} ms at {doc['arrival_rate']:g} req/s "
             f"(judged on the upper 95% bound; costs: on-demand list prices, 730 h/month)"]
    rec = doc["recommendation"]
    if rec is None:
        lines.append("NO configuration meets the SLO within the search space; see per-hardware notes below.")
    else:
        src = f" [{rec['source'].upper()} figures]" if rec["source"] == "published" else f" [{rec['source']}]"
        cache = rec["cache"] or "no cache"
        batch = (f"batch {rec['batch_size']} / {rec['batch_timeout_ms']:g} ms" if rec["batch_size"] > 1
                 else "no batching")
        ci = rec["p99_ms_ci95"]
        lines += ["", f"RECOMMENDED: {rec['replicas']} x {rec['hardware']} ({rec['kind']}), {rec['variant']}{src}, "
                      f"{batch}, {cache}",
                  f"  cost ${rec['cost_per_hour']:.4g}/h = ${rec['monthly_cost']:,.0f}/month, "
                  f"${rec['cost_per_million_requests']:.4g} per million requests",
                  f"  {slo['percentile']} {_f(rec['p99_ms'])} ms, 95% CI [{_f(ci[0] if ci else None)}, "
                  f"{_f(ci[1] if ci else None)}] ms ({rec['judge']})",
                  "  reproduce: simulate " + " ".join(rec["simulate_args"])]
        m = doc["minimality"]
        if m:
            lines.append(f"  minimal: {m.get('verdict')}")
        acc = rec.get("accuracy") or {}
        if acc.get("top1_agreement") is not None and acc["top1_agreement"] < 1.0:
            lines.append(f"  note: variant {rec['variant']} agrees with fp32 on the top-1 class for "
                         f"{acc['top1_agreement']:.0%} of the profiler's test inputs (max relative output "
                         f"difference {acc.get('max_rel_diff', float('nan')):.3g}); restrict --variants if that matters")
        if rec["source"] == "published":
            lines.append(f"  note: service times from PUBLISHED figures, not measured here: {rec['citation']}")
    hw_w = max([14] + [len(h["hardware"]) + 2 for h in doc["per_hardware"]])
    var_w = max([14] + [len(h.get("variant") or "") + 2 for h in doc["per_hardware"]])
    lines += ["", "per hardware (cheapest passing configuration):",
              f"  {'hardware':<{hw_w}}{'kind':<5}{'variant':<{var_w}}{'src':<10}{'repl':>5}{'batch':>8}{'cache':>12}"
              f"{'$/h':>9}{'$/month':>10}{'$/M req':>9}{'p99 ms':>9}{'capacity':>10}{'headroom':>9}"]
    for h in doc["per_hardware"]:
        if not h.get("meets_slo"):
            lines.append(f"  {h['hardware']:<{hw_w}}{h['kind']:<5}{h.get('note', '')}")
            continue
        batch = f"{h['batch_size']}/{h['batch_timeout_ms']:g}" if h["batch_size"] > 1 else "1"
        lines.append(f"  {h['hardware']:<{hw_w}}{h['kind']:<5}{h['variant']:<{var_w}}{h['source']:<10}{h['replicas']:>5}"
                     f"{batch:>8}{(h['cache'] or '-'):>12}{h['cost_per_hour']:>9.3f}{h['monthly_cost']:>10,.0f}"
                     f"{h['cost_per_million_requests']:>9.3f}{_f(h['p99_ms'], '{:.2f}'):>9}"
                     f"{_f(h.get('capacity_rps'), '{:.0f}'):>10}{_f(h.get('headroom'), '{:+.0%}'):>9}")
    if doc["pareto"]:
        lines += ["", "cost vs p99 Pareto frontier:"]
        for p in doc["pareto"]:
            lines.append(f"  ${p['cost_per_hour']:.3f}/h  p99 {_f(p['p99_ms'], '{:.2f}')} ms  {p['replicas']} x "
                         f"{p['hardware']} {p['variant']} batch {p['batch_size']} cache {p['cache'] or '-'}"
                         + (" [published]" if p["source"] == "published" else ""))
    g = doc.get("growth") or {}
    loads = [k for k in g if isinstance(g[k], dict) and "factor" in g[k]]
    if loads:
        lines += ["", "growth (same configuration shape, replicas searched again):"]
        for k in loads:
            e = g[k]
            same, cheap = e["recommended_configuration"], e["cheapest"]
            txt = f"  {k:<13}{e['arrival_rate']:>9.1f} req/s: "
            txt += (f"recommended needs {same['replicas']} replica(s) (${same['cost_per_hour']:.3f}/h)"
                    if same and same["replicas"] else "recommended configuration cannot meet it")
            if cheap and e["switch_hardware"]:
                txt += f"; cheapest then: {cheap['replicas']} x {cheap['hardware']} (${cheap['cost_per_hour']:.3f}/h)"
            lines.append(txt)
    mx = doc.get("mixed")
    if mx:
        if mx.get("best"):
            b = mx["best"]
            ci = b["p99_ms_ci95"]
            lines += ["", f"MIXED FLEET cheaper by ${mx['saving_per_hour']:.3f}/h: {b['base']['replicas']} x "
                          f"{b['base']['hardware']} {b['base']['variant']} + {b['added']['replicas']} x "
                          f"{b['added']['hardware']} {b['added']['variant']} (join-shortest-queue): "
                          f"${b['cost_per_hour']:.3f}/h, {slo['percentile']} {_f(b['p99_ms'])} ms, 95% CI "
                          f"[{_f(ci[0])}, {_f(ci[1])}] ms"]
        elif mx["candidates"]:
            lines += ["", f"mixed fleets: none cheaper than the recommendation meets the SLO "
                          f"({len(mx['candidates'])} tried)"]
        else:
            lines += ["", "mixed fleets: nothing to try (the recommendation has one replica, or no other "
                          "hardware meets the SLO on its own)"]
    hm = doc["search"].get("host_margin")
    if hm:
        lines += ["", f"host margin: the SLO judged on a host {hm['z']:g} sd slower than profiled: "
                      + ("; ".join(f"{k} service x {v['level']:.4f} (sd {v['sd'] * 100:.1f}% between "
                                    f"{v['run_s']:.3g}-s runs)" for k, v in hm["levels"].items()) or "no profile says")]
        if hm["not_measured"]:
            lines.append("  no host level measured (planned at the profile's own level): "
                         + ", ".join(hm["not_measured"]))
    ev = doc["evaluations"]
    lines += ["", f"{doc['configurations']} configurations ({doc['configurations_searched']} searched, "
                  f"{doc['configurations_pruned']} pruned by the proved lower bound); "
                  f"{doc['configurations_evaluated']} candidates evaluated ({ev['simulations']} simulated); "
                  f"{doc['wall_seconds']:.1f} s"]
    if doc["search"].get("excluded_variants"):
        lines.append("left out by --min-top1-agreement: " + ", ".join(doc["search"]["excluded_variants"]))
    unverified = [h["name"] for h in doc["catalog"]["hardware"] if not h.get("price_verified", True)]
    if unverified:
        lines.append("price marked unverified in the catalog (check before buying): " + ", ".join(unverified))
    pub = [p for p in doc["provenance"] if p["source"] == "published"]
    if pub:
        lines.append("published (not measured) profiles used: " + "; ".join(
            f"{p['hardware']}/{p['variant']}: {p['citation']}" for p in pub))
    return "\n".join(lines)
