"""``plan``: the cheapest configuration meeting a latency SLO, with proof, per-hardware costs and growth.

Search (hardware × variant × batch size × batch timeout × cache, replicas searched for each):

1. Screening, per configuration, analytic (:mod:`.screening`): the stability bound (fewest replicas
   that can keep up — proved) and the analytic estimate of the replicas that pass.
2. Round A, per hardware: the configuration the screen says is cheapest is searched (simulation where
   the closed form is not exact); its verified cost bounds that hardware.
3. Round B: every other configuration whose *proved* lower-bound cost (stability bound × price) does
   not exceed its hardware's verified cost is searched (ties too: they may have a lower p99); the rest
   cannot be cheaper and are marked pruned.
4. For each hardware's cheapest passing configuration: the highest load it sustains (bisection on the
   arrival rate), and the replicas it needs at growth loads (1.5×, 2×, diurnal peak).
5. Optionally (``mixed=True``), mixed CPU/GPU/TPU fleets: the recommendation with one or two replicas
   swapped for another hardware kind (:mod:`.mixed`).

Rounds run their searches through an executor (serial, or Dask); each search is a pure function of its
task and its seed of the configuration, so the plan is the same on any executor.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field, replace

from ..errors import InputError
from ..result import _clean
from ..scenario import Arrivals
from ..validation import check_integer, check_nonnegative, check_positive, check_probability, check_quantile
from .catalog import HOURS_PER_MONTH, Catalog, Hardware, ServiceSpec, load_catalog
from .execution import executor_for
from .screening import under_load
from .search import (
    CapacityTask,
    Evaluator,
    SearchOutcome,
    SearchTask,
    Settings,
    find_capacity,
    search_replicas,
    simulation_available,
)
from .space import Config, config_seed, parse_cache_list, parse_float_list, parse_int_list

__all__ = ["PlanResult", "plan"]

GROWTH_FACTORS = (1.5, 2.0)


@dataclass
class PlanResult:
    """What :func:`plan` returns: the candidates table, the recommendation and the full report.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per configuration: its fewest passing replicas, cost, p99 and CI, status.
    recommendation : dict or None
        The cheapest configuration meeting the SLO (None when none does).
    report : dict
        The JSON document of ``simulator plan --json`` (see :meth:`to_dict`).
    """

    table: object
    recommendation: dict | None
    report: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The plan as strict-JSON-ready data (non-finite floats become null)."""
        return _clean(self.report)

    def __iter__(self):  # ``table, recommendation = plan(...)``
        yield self.table
        yield self.recommendation


def _slo(slo) -> tuple[float, float]:
    if isinstance(slo, str):
        from ..commands.common import parse_slo

        return parse_slo(slo)
    try:
        q, s = slo
    except (TypeError, ValueError):
        raise InputError(f"slo must be a string like 'p99=50ms' or a pair (0.99, 0.050), got {slo!r}") from None
    return check_quantile("slo percentile", q), check_positive("slo latency", s)


def plan(model: str | None = None, arrival_rate: float | None = None, slo="p99=50ms", *,
         catalog: str | Catalog | None = None, hardware: list[str] | str | None = None,
         variants: list[str] | str | None = None, service: ServiceSpec | None = None,
         custom_price_per_hour: float = 1.0, caches=None, zipf_alpha: float = 0.8, keys: int = 10_000,
         cache_hit_ms: float = 0.0, batch_sizes=(1,), batch_timeouts_ms=(0.0,), max_replicas: int = 64,
         engine: str = "auto", requests: int = 20_000, replications: int = 5, seed: int = 12345,
         diurnal_amplitude: float = 0.5, arrivals: Arrivals | None = None, capacity: bool = True,
         growth: bool = True, prune: bool = True, mixed: bool = False, min_top1_agreement: float | None = None,
         measured_batches_only: bool = False, scheduler: str | None = None, workers: int | None = None,
         security_file: str | None = None, client=None, command: list[str] | None = None,
         host_margin: float = 0.0) -> PlanResult:
    """Search hardware × replicas × batching × cache × variant for the cheapest configuration meeting an SLO.

    Parameters
    ----------
    model : str
        Model name in the catalog (e.g. ``"resnet50"``); or None with ``service`` for one custom hardware.
    arrival_rate : float
        Offered load, requests/s.
    slo : str or (float, float)
        ``"p99=50ms"`` or (0.99, 0.050 s). A configuration meets it when the upper end of the 95% CI
        of its simulated percentile is ≤ the limit.
    catalog : str or Catalog, optional
        Catalog TOML (default: the bundled ``profiles/catalog.toml``).
    hardware, variants : list of str, optional
        Restrict the search (unknown names raise, listing the known ones).
    service : ServiceSpec, optional
        A single custom service instead of ``model`` (priced at ``custom_price_per_hour``).
    caches : list of str, optional
        Cache settings to try, e.g. ``["none", "lru:1000", "lru:10000"]`` (keys ~ Zipf(zipf_alpha) over
        ``keys`` keys; hits answer in ``cache_hit_ms``).
    batch_sizes, batch_timeouts_ms : sequences
        Dynamic batching settings to try (a timeout only applies to batch sizes > 1).
    measured_batches_only : bool
        Try a batch size on a profile only up to the largest size the profile measured (no extrapolation
        along the batch-time line); what ``simulator plan`` does with its default batch sizes.
    max_replicas : int
        Largest fleet considered.
    engine : {"auto", "analytic", "fast", "simpy"}
        auto: the closed form where it is exact (M/M/c), the fast simulation engine elsewhere.
    requests, replications, seed : int
        Simulation effort per candidate and the root seed.
    diurnal_amplitude : float
        Peak load = arrival_rate · (1 + amplitude).
    capacity, growth : bool
        Also find each hardware's highest sustainable load / the replicas needed at 1.5×, 2× and the peak.
    min_top1_agreement : float, optional
        Leave out variants whose profile reports a top-1 agreement with fp32 below this fraction
        (quantized variants can be much faster and much less accurate); variants without such a record
        (published figures, parametric services) are kept.
    mixed : bool
        Also try mixed fleets: the recommendation with 1-2 replicas swapped for another hardware
        (see :mod:`simulator.planner.mixed`; SimPy engine, slower).
    prune : bool
        Skip configurations whose proved lower-bound cost exceeds their hardware's verified cheapest
        (they cannot win); False searches every configuration (fuller Pareto frontier, slower).
    scheduler, workers, security_file, client
        Run the searches on Dask (see :mod:`simulator.planner.execution`); default serial.
    host_margin : float
        Judge every configuration on a host ``host_margin`` standard deviations slower than its profile:
        service times × (1 + host_margin · sd), sd from the profile's ``under_load.host_level`` (how much
        the host's speed moved between live runs). Specs whose profile did not measure it are planned at
        their profile's level and listed in ``host_margin.not_measured``. 0 (default): no margin.

    Returns
    -------
    PlanResult
        ``.table`` (DataFrame), ``.recommendation`` (dict) and ``.to_dict()`` (the JSON report).
    """
    t0 = time.perf_counter()
    rate = check_positive("arrival_rate", arrival_rate)
    quantile, slo_s = _slo(slo)
    max_replicas = check_integer("max_replicas", max_replicas, minimum=1, maximum=100_000)
    amplitude = check_probability("diurnal_amplitude", diurnal_amplitude, open_high=True)
    keys = check_integer("keys", keys, minimum=1)
    zipf_alpha = check_nonnegative("zipf", zipf_alpha)
    cache_hit_s = check_nonnegative("cache_hit_ms", cache_hit_ms) * 1e-3
    if engine not in ("auto", "analytic", "fast", "simpy"):
        raise InputError(f"engine must be one of auto, analytic, fast, simpy; got {engine!r}")
    settings = Settings(quantile=quantile, slo_s=slo_s, engine=engine,
                        requests=check_integer("requests", requests, minimum=100),
                        replications=check_integer("replications", replications, minimum=2, maximum=1000),
                        seed=check_integer("seed", seed, minimum=0, maximum=2**63 - 1), max_replicas=max_replicas,
                        zipf_alpha=zipf_alpha, keys=keys, cache_hit_s=cache_hit_s, arrivals=arrivals)
    percentile = settings.quantile_key  # also refuses a percentile the engines do not report

    specs, hw_table, catalog_path = _resolve(model, catalog, hardware, variants, service, custom_price_per_hour)
    specs, margin_doc = _with_host_margin(specs, host_margin)
    excluded = []
    if min_top1_agreement is not None:
        floor = check_probability("min_top1_agreement", min_top1_agreement)
        keep = [s for s in specs if (s.accuracy or {}).get("top1_agreement", 1.0) >= floor]
        excluded = [f"{s.hardware}/{s.variant} (top-1 agreement {s.accuracy['top1_agreement']:.3g})"
                    for s in specs if s not in keep]
        if not keep:
            raise InputError(f"no variant has a top-1 agreement with fp32 >= {floor}; excluded: {', '.join(excluded)}")
        specs = keep
        hw_table = {h: hw for h, hw in hw_table.items() if any(s.hardware == h for s in specs)}
    sizes = parse_int_list("batch_sizes", batch_sizes if batch_sizes is not None else [1], maximum=4096)
    timeouts = parse_float_list("batch_timeouts_ms", batch_timeouts_ms if batch_timeouts_ms is not None else [0])
    cache_list = parse_cache_list(caches, keys)
    configs, skipped = _configurations(specs, sizes, timeouts, cache_list, measured_batches_only)
    if not configs:
        raise InputError("no configuration to search: " + "; ".join(skipped))
    by_key = {(s.hardware, s.variant): s for s in specs}

    with executor_for(scheduler, workers, security_file, client) as ex:
        screens = {c: _screen(by_key[(c.hardware, c.variant)], c, rate, settings) for c in configs}
        outcomes: dict[Config, SearchOutcome] = {}
        # Round A: the screen's cheapest configuration of each hardware.
        first = {}
        for c in configs:
            lb, guess = screens[c]
            est = (guess if guess is not None else math.inf) * hw_table[c.hardware].price_per_hour
            key = (est, lb * hw_table[c.hardware].price_per_hour, c.sort_key())
            if c.hardware not in first or key < first[c.hardware][0]:
                first[c.hardware] = (key, c)
        round_a = [first[h][1] for h in sorted(first)]
        for c, out in zip(round_a, ex.map(search_replicas, [SearchTask(by_key[(c.hardware, c.variant)], c,
                                                                       rate, settings) for c in round_a])):
            outcomes[c] = out
        verified = {h: _cost(outcomes[c], hw_table[h]) for h, (_, c) in first.items()}
        # Round B: everything whose proved lower bound could still beat its hardware's verified cost.
        round_b, pruned = [], {}
        for c in configs:
            if c in outcomes:
                continue
            lb_cost = screens[c][0] * hw_table[c.hardware].price_per_hour
            if prune and lb_cost > verified[c.hardware] * (1 + 1e-12):
                pruned[c] = lb_cost
            else:
                round_b.append(c)
        for c, out in zip(round_b, ex.map(search_replicas, [SearchTask(by_key[(c.hardware, c.variant)], c,
                                                                       rate, settings) for c in round_b])):
            outcomes[c] = out

        passing = [o for o in outcomes.values() if o.replicas is not None]
        best_per_hw = {}
        for o in sorted(passing, key=lambda o: _rank(o, hw_table)):
            best_per_hw.setdefault(o.config.hardware, o)
        rec = min(passing, key=lambda o: _rank(o, hw_table)) if passing else None

        cap_results = {}
        if capacity and best_per_hw:
            hws = sorted(best_per_hw)
            tasks = [CapacityTask(by_key[(best_per_hw[h].config.hardware, best_per_hw[h].config.variant)],
                                  best_per_hw[h].config, best_per_hw[h].replicas, rate, settings) for h in hws]
            cap_results = dict(zip(hws, ex.map(find_capacity, tasks)))
        growth_doc, growth_evals = {}, 0
        if growth and best_per_hw:
            growth_doc, growth_evals = _growth(ex, rate, amplitude, best_per_hw, by_key, settings, hw_table, rec)
        mixed_doc = _mixed(ex, rec, best_per_hw, by_key, hw_table, rate, settings) if mixed else None
        executor_info = ex.describe()

    wall = time.perf_counter() - t0
    rows = [_row(c, outcomes.get(c), pruned.get(c), screens[c], hw_table, rate, by_key) for c in configs]
    for reason in skipped:
        rows.append({"status": "skipped", "note": reason})
    import pandas as pd

    table = pd.DataFrame(rows)
    evaluated = sum(len(o.points) for o in outcomes.values())
    analytic_evals = sum(o.analytic_evaluations for o in outcomes.values())
    simulations = sum(o.simulations for o in outcomes.values())
    rec_doc = _recommendation(rec, hw_table, by_key, rate, settings) if rec else None
    report = {
        "recommendation": rec_doc,
        "minimality": _minimality(rec, settings) if rec else None,
        "per_hardware": [_per_hw(best_per_hw.get(h), hw_table[h], rate, cap_results.get(h), by_key, settings)
                         for h in sorted(hw_table) if any(c.hardware == h for c in configs)],
        "pareto": _pareto(passing, hw_table, rate, by_key),
        "growth": growth_doc,
        "mixed": mixed_doc,
        "candidates": table.to_dict(orient="records"),
        "configurations": len(configs),
        "configurations_searched": len(outcomes),
        "configurations_pruned": len(pruned),
        "configurations_evaluated": evaluated,
        "evaluations": {"simulations": simulations, "analytic": analytic_evals,
                        "screening_configurations": len(configs),
                        "capacity_search": sum(c["evaluations"] for c in cap_results.values()),
                        "growth_search": growth_evals,
                        "mixed_fleets": sum(m["evaluations"] for m in mixed_doc["candidates"]) if mixed_doc else 0},
        "wall_seconds": wall,
        "slo": {"percentile": percentile, "limit_ms": slo_s * 1e3,
                "judged_on": "upper end of the 95% confidence interval"},
        "arrival_rate": rate,
        "cost_basis": {"currency": "USD", "hours_per_month": HOURS_PER_MONTH,
                       "prices": "public on-demand list prices per replica-hour, see catalog.hardware[].price_source",
                       "cost_per_million_requests": "cost_per_hour / (arrival_rate * 3600) * 1e6"},
        "arrival_process": (arrivals.process if arrivals else "poisson"),
        "search": {"batch_sizes": sizes, "batch_timeouts_ms": timeouts, "caches": cache_list,
                   "zipf_alpha": zipf_alpha, "keys": keys, "cache_hit_ms": cache_hit_s * 1e3,
                   "max_replicas": max_replicas, "engine": engine,
                   "simulation_available": simulation_available(), "requests": settings.requests,
                   "replications": settings.replications, "hours_per_month": HOURS_PER_MONTH,
                   "diurnal_amplitude": amplitude, "prune": prune, "min_top1_agreement": min_top1_agreement,
                   "excluded_variants": excluded, "host_margin": margin_doc},
        "catalog": {"path": catalog_path, "hardware": [hw_table[h].to_dict() for h in sorted(hw_table)]},
        "provenance": [s.provenance() for s in specs],
        "seed": settings.seed,
        "executor": executor_info,
        "command": command,
        "versions": _versions(),
    }
    return PlanResult(table, rec_doc, report)


# -- helpers ---------------------------------------------------------------------------------------------
def _with_host_margin(specs: list[ServiceSpec], z: float) -> tuple[list[ServiceSpec], dict | None]:
    """Each spec at host level 1 + z·sd of its profile's ``under_load.host_level`` (see :func:`plan`)."""
    if isinstance(z, bool) or not isinstance(z, (int, float)) or not (math.isfinite(z) and 0 <= z <= 10):
        raise InputError(f"host_margin must be a number of standard deviations from 0 to 10, got {z!r}")
    if z == 0:
        return specs, None
    out, levels, unknown = [], {}, []
    for s in specs:
        under = under_load(s)
        name = f"{s.hardware}/{s.variant}"
        if under is None or not under.host_level_run_s:
            unknown.append(name)
            out.append(s)
            continue
        level = 1.0 + z * under.host_level_sd
        levels[name] = {"sd": under.host_level_sd, "run_s": under.host_level_run_s, "level": round(level, 6)}
        out.append(replace(s, host_level=level))
    return out, {"z": z, "levels": levels, "not_measured": unknown}


def _resolve(model, catalog, hardware, variants, service, price):
    if isinstance(hardware, str):
        hardware = [h.strip() for h in hardware.split(",") if h.strip()]
    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    if service is not None:
        if model is not None:
            raise InputError("give either a model (from the catalog) or a custom service, not both")
        price = check_positive("price_per_hour", price)
        hw = Hardware(name=service.hardware, kind="cpu", price_per_hour=price,
                      price_source="given by the user (--price-per-hour)", price_verified=False)
        return [service], {hw.name: hw}, None
    if model is None:
        raise InputError("plan needs --model NAME (from the catalog) or service flags (--profile or "
                         "--service-time-ms)")
    cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    specs = cat.specs(model, hardware or None, variants or None)
    used = {s.hardware for s in specs}
    return specs, {h: cat.hardware[h] for h in sorted(used)}, cat.path


def _configurations(specs, sizes, timeouts, caches, measured_only=False):
    configs, skipped = [], []
    for s in specs:
        can_batch = s.profile_path is not None or s.batch_time_s is not None
        for b in sizes:
            if measured_only and s.measured_batch_sizes and b > max(s.measured_batch_sizes):
                continue
            if b > 1 and not can_batch:
                skipped.append(f"{s.hardware}/{s.variant}: batch size {b} needs a batch-time line "
                               "(batch_time_ms) or a profile")
                continue
            for t in (timeouts if b > 1 else [0.0]):
                for cache in caches:
                    configs.append(Config(s.hardware, s.variant, b, t, cache))
    configs = sorted(set(configs), key=Config.sort_key)
    return configs, skipped


def _screen(spec: ServiceSpec, c: Config, rate: float, settings: Settings) -> tuple[int, int | None]:
    """(proved stability bound, analytic estimate of the replicas that pass) of one configuration."""
    scr = Evaluator(spec, c, settings).screen(rate)
    return scr.min_replicas, scr.replicas_for(settings.slo_s, settings.max_replicas)


def _cost(o: SearchOutcome, hw: Hardware) -> float:
    return o.replicas * hw.price_per_hour if o.replicas is not None else math.inf


def _rank(o: SearchOutcome, hw_table) -> tuple:
    hi = o.best.p99_ms_ci95[1] if o.best and o.best.p99_ms_ci95 else math.inf
    return (_cost(o, hw_table[o.config.hardware]), hi, o.config.sort_key())


def _money(cost_per_hour: float, rate: float) -> dict:
    return {"cost_per_hour": cost_per_hour, "monthly_cost": cost_per_hour * HOURS_PER_MONTH,
            "cost_per_million_requests": cost_per_hour / (rate * 3600.0) * 1e6}


def _simulate_args(o: SearchOutcome, spec: ServiceSpec, rate: float, settings: Settings, replicas=None) -> list:
    c = o.config
    args = ["--arrival-rate", f"{rate:g}", *spec.service_flags(), "--replicas", str(replicas or o.replicas)]
    if c.batch_size > 1:
        args += ["--batch-size", str(c.batch_size), "--batch-timeout-ms", f"{c.batch_timeout_ms:g}"]
    if c.cache:
        args += ["--cache", c.cache, "--zipf", f"{settings.zipf_alpha:g}", "--keys", str(settings.keys)]
        if settings.cache_hit_s:
            args += ["--cache-hit-ms", f"{settings.cache_hit_s * 1e3:g}"]
    if settings.arrivals is not None and settings.arrivals.process != "poisson":
        a = settings.arrivals
        spec_text = {"gamma": f"gamma:{a.cv:g}", "mmpp": f"mmpp:{a.burst_ratio:g}",
                     "diurnal": f"diurnal:{a.amplitude:g}", "trace": f"trace:{a.trace}"}[a.process]
        args += ["--arrival-process", spec_text]
    engine = "analytic" if o.judge.startswith(("closed", "analytic")) else o.judge.split("(")[-1].rstrip(")")
    args += ["--engine", engine, "--requests", str(settings.requests), "--replications",
             str(settings.replications), "--seed", str(config_seed(settings.seed, c.hardware, c.variant)),
             "--slo", f"{settings.quantile_key}={settings.slo_s * 1e3:g}ms"]
    return args


def _recommendation(o: SearchOutcome, hw_table, by_key, rate, settings) -> dict:
    hw = hw_table[o.config.hardware]
    spec = by_key[(o.config.hardware, o.config.variant)]
    cost = o.replicas * hw.price_per_hour
    return {"hardware": o.config.hardware, "kind": hw.kind, "variant": o.config.variant,
            "source": spec.source, "citation": spec.citation, "accuracy": spec.accuracy, "replicas": o.replicas,
            "batch_size": o.config.batch_size,
            "batch_timeout_ms": o.config.batch_timeout_ms if o.config.batch_size > 1 else 0.0,
            "cache": o.config.cache, "cost_per_hour": cost, **{k: v for k, v in _money(cost, rate).items()
                                                                if k != "cost_per_hour"},
            "p99_ms": o.best.p99_ms, "p99_ms_ci95": o.best.p99_ms_ci95, "judge": o.judge,
            "cache_hit_ratio": o.best.hit_ratio, "utilization": o.best.utilization,
            "simulate_args": _simulate_args(o, spec, rate, settings)}


def _minimality(o: SearchOutcome, settings: Settings) -> dict:
    doc = {"replicas": o.replicas, "fewer_replicas": o.replicas - 1}
    if o.replicas == 1:
        doc.update({"meets_slo": None, "verdict": "1 replica is the smallest fleet; nothing fewer to test"})
        return doc
    f = o.fewer
    doc.update({"p99_ms": f.p99_ms, "p99_ms_ci95": f.p99_ms_ci95, "meets_slo": f.passes, "judge": f.judge,
                "stable": f.stable})
    if not f.stable:
        doc["verdict"] = f.verdict or "unstable with one replica fewer"
    elif f.p99_ms_ci95:
        doc["verdict"] = (f"{o.replicas - 1} replicas: {settings.quantile_key} {f.p99_ms:.4g} ms, 95% CI "
                          f"[{f.p99_ms_ci95[0]:.4g}, {f.p99_ms_ci95[1]:.4g}] ms > SLO {settings.slo_s * 1e3:g} ms")
    return doc


def _per_hw(o, hw: Hardware, rate, cap, by_key, settings) -> dict:
    doc = {"hardware": hw.name, "kind": hw.kind, "price_per_hour": hw.price_per_hour, "priced_as": hw.priced_as}
    if o is None:
        doc.update({"meets_slo": False, "note": f"no configuration meets the SLO within {settings.max_replicas} "
                                                "replicas"})
        return doc
    spec = by_key[(o.config.hardware, o.config.variant)]
    cost = o.replicas * hw.price_per_hour
    doc.update({"meets_slo": True, "variant": o.config.variant, "source": spec.source, "replicas": o.replicas,
                "batch_size": o.config.batch_size, "batch_timeout_ms": o.config.batch_timeout_ms,
                "cache": o.config.cache, **_money(cost, rate), "p99_ms": o.best.p99_ms,
                "p99_ms_ci95": o.best.p99_ms_ci95, "judge": o.judge})
    if cap is not None:
        doc.update({"capacity_rps": cap["capacity_rps"], "capacity_bracket_rps": cap["bracket_rps"],
                    "headroom": cap["capacity_rps"] / rate - 1.0})
    return doc


def _pareto(passing, hw_table, rate, by_key) -> list[dict]:
    """Cost vs p99 frontier of the passing candidates, p99 taken as its upper 95% bound (as judged)."""
    def upper(o):
        return o.best.p99_ms_ci95[1] if o.best.p99_ms_ci95 else math.inf

    front, best = [], math.inf
    for o in sorted(passing, key=lambda o: _rank(o, hw_table)):
        if upper(o) < best:
            best = upper(o)
            spec = by_key[(o.config.hardware, o.config.variant)]
            front.append({"hardware": o.config.hardware, "variant": o.config.variant, "source": spec.source,
                          "replicas": o.replicas, "batch_size": o.config.batch_size,
                          "batch_timeout_ms": o.config.batch_timeout_ms, "cache": o.config.cache,
                          "cost_per_hour": _cost(o, hw_table[o.config.hardware]), "p99_ms": o.best.p99_ms,
                          "p99_ms_ci95": o.best.p99_ms_ci95})
    return front


def _growth(ex, rate, amplitude, best_per_hw, by_key, settings, hw_table, rec) -> dict:
    loads = [(f"{f:g}x", f) for f in GROWTH_FACTORS] + [("diurnal_peak", 1.0 + amplitude)]
    hws = sorted(best_per_hw)
    tasks, index = [], []
    for name, f in loads:
        for h in hws:
            c = best_per_hw[h].config
            tasks.append(SearchTask(by_key[(c.hardware, c.variant)], c, rate * f, settings))
            index.append((name, h))
    results = dict(zip(index, ex.map(search_replicas, tasks)))
    evaluations = sum(len(o.points) for o in results.values())
    doc = {"note": "each hardware keeps its cheapest configuration at the planned load (variant, batching, "
                   "cache); replicas are searched again at the higher load",
           "diurnal_amplitude": amplitude}
    for name, f in loads:
        rows = []
        for h in hws:
            o = results[(name, h)]
            cost = _cost(o, hw_table[h])
            rows.append({"hardware": h, "variant": o.config.variant, "batch_size": o.config.batch_size,
                         "batch_timeout_ms": o.config.batch_timeout_ms, "cache": o.config.cache,
                         "replicas": o.replicas, "cost_per_hour": cost if math.isfinite(cost) else None,
                         "p99_ms": o.best.p99_ms if o.best else None,
                         "p99_ms_ci95": o.best.p99_ms_ci95 if o.best else None, "status": o.status})
        feasible = [r for r in rows if r["replicas"] is not None]
        cheapest = min(feasible, key=lambda r: (r["cost_per_hour"], r["hardware"])) if feasible else None
        same = next((r for r in rows if rec and r["hardware"] == rec.config.hardware), None)
        doc[name] = {"factor": f, "arrival_rate": rate * f, "cheapest": cheapest, "per_hardware": rows,
                     "recommended_configuration": same,
                     "extra_replicas": (same["replicas"] - rec.replicas) if same and same["replicas"] else None,
                     "switch_hardware": bool(cheapest and rec and cheapest["hardware"] != rec.config.hardware)}
    return doc, evaluations


def _mixed(ex, rec, best_per_hw, by_key, hw_table, rate, settings) -> dict:
    from .mixed import MixedTask, search_mixed

    doc = {"note": "the recommended hardware with 1-2 replicas swapped for another kind; join-shortest-queue "
                   "routing; batching and cache of the recommendation; SimPy engine",
           "candidates": [], "best": None, "cheaper_than_recommendation": False}
    if rec is None or not simulation_available() or settings.engine == "analytic":
        doc["note"] = "not searched: needs a recommendation and the simulation engines"
        return doc
    a = rec.config
    spec_a = by_key[(a.hardware, a.variant)]
    price_a = hw_table[a.hardware].price_per_hour
    tasks = []
    for h in sorted(best_per_hw):
        if h == a.hardware:
            continue
        spec_b = by_key[(h, best_per_hw[h].config.variant)]
        if a.batch_size > 1 and spec_b.profile_path is None and spec_b.batch_time_s is None:
            continue
        for n_a in range(rec.replicas - 1, max(0, rec.replicas - 3), -1):
            tasks.append(MixedTask(spec_a, a, n_a, price_a, spec_b, hw_table[h].price_per_hour, rate, settings,
                                   rec.replicas * price_a))
    doc["candidates"] = ex.map(search_mixed, tasks)
    passing = [m for m in doc["candidates"] if m["meets_slo"]]
    if passing:
        best = min(passing, key=lambda m: (m["cost_per_hour"], m["p99_ms_ci95"][1], m["added"]["hardware"]))
        doc["best"] = best
        doc["cheaper_than_recommendation"] = True
        doc["saving_per_hour"] = rec.replicas * price_a - best["cost_per_hour"]
    return doc


def _row(c: Config, o: SearchOutcome | None, pruned_lb, screen, hw_table, rate, by_key) -> dict:
    hw = hw_table[c.hardware]
    spec = by_key[(c.hardware, c.variant)]
    row = {"hardware": c.hardware, "kind": hw.kind, "variant": c.variant, "source": spec.source,
           "batch_size": c.batch_size, "batch_timeout_ms": c.batch_timeout_ms, "cache": c.cache,
           "min_replicas_stable": screen[0], "screen_replicas": screen[1], "replicas": None,
           "cost_per_hour": None, "monthly_cost": None, "cost_per_million_requests": None, "p99_ms": None,
           "p99_ms_ci95_low": None, "p99_ms_ci95_high": None, "cache_hit_ratio": None, "judge": None,
           "evaluations": 0, "status": None, "note": None}
    if o is None:
        row.update({"status": "pruned",
                    "note": f"lower-bound cost {pruned_lb:.4g}/h (stability bound {screen[0]} replicas) > "
                            f"the verified cheapest of {c.hardware}"})
        return row
    note = o.note
    sizes = spec.measured_batch_sizes
    if sizes and c.batch_size not in sizes:
        extra = (f"batch {c.batch_size} not in the profile's measured sizes {list(sizes)}: its service time is "
                 "interpolated/extrapolated along the fitted batch-time line")
        note = f"{note}; {extra}" if note else extra
    row.update({"status": o.status, "note": note, "judge": o.judge, "evaluations": len(o.points),
                "cache_hit_ratio": o.hit_ratio})
    if o.replicas is not None:
        cost = o.replicas * hw.price_per_hour
        row.update({"replicas": o.replicas, **_money(cost, rate), "p99_ms": o.best.p99_ms})
        if o.best.p99_ms_ci95:
            row.update({"p99_ms_ci95_low": o.best.p99_ms_ci95[0], "p99_ms_ci95_high": o.best.p99_ms_ci95[1]})
    return row


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("serving-simulator", "numpy", "scipy", "pandas", "numba", "simpy", "dask", "distributed"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out
