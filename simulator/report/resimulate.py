"""Simulations the report runs itself, for figures the plan JSON has no data for.

A plan holds one figure per candidate at the planned load. Three figures need more: the latency CDF
of the recommendation (per-request latencies), latency vs load for each hardware (a sweep of arrival
rates) and the sensitivity of the recommendation to batch size, cache and variant (one setting changed,
replicas kept). Each is simulated here from the same service as the plan's (the catalog it names, or
the recommendation's own ``simulate_args``), with the plan's seed, and is labelled in the report as
re-simulated by ``simulator report``, with the engine, requests and replications used.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..result import Result, _clean

__all__ = ["Resimulation", "ResimulationSettings", "config_args", "request_latencies_ms", "resimulate",
           "scenario_from_simulate_args"]

# Flags of ``simulate`` that describe the service (copied from the recommendation's simulate_args).
_SERVICE_FLAGS = {"--profile": 1, "--contention": 1, "--service-time-ms": 1, "--service-dist": 1,
                  "--service-cv": 1, "--batch-time-ms": 1, "--host-level": 1}


@dataclass(frozen=True)
class ResimulationSettings:
    """Effort of the report's own simulations."""

    requests: int = 20_000
    replications: int = 5
    load_points: int = 8
    engine: str = "auto"
    seed: int | None = None  # None: the plan's seed


@dataclass
class Resimulation:
    """What the report's simulations produced (each part None when it could not be simulated)."""

    latencies_ms: np.ndarray | None = None
    quantiles_ms: dict | None = None
    recommendation: dict | None = None
    load_curves: dict[str, list[dict]] = field(default_factory=dict)
    sensitivity: dict[str, list[dict]] = field(default_factory=dict)
    description: str = ""
    sensitivity_description: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready record of the simulated figures (written beside the report)."""
        return _clean({"description": self.description, "recommendation": self.recommendation,
                "recommendation_latency_quantiles_ms": self.quantiles_ms,
                "recommendation_latencies_count": None if self.latencies_ms is None else int(self.latencies_ms.size),
                "load_curves": self.load_curves, "sensitivity": self.sensitivity, "notes": self.notes})


def _simulate_parser() -> argparse.ArgumentParser:
    from ..cli import ArgumentParser
    from ..commands import simulate_cmd

    parser = ArgumentParser(prog="simulate")
    sub = parser.add_subparsers(dest="command", parser_class=ArgumentParser)
    simulate_cmd.add_parser(sub)
    return parser


def scenario_from_simulate_args(args: list[str]):
    """The Scenario (and engine name) that ``simulate ARGS`` would run (first arrival rate)."""
    from ..commands.common import parse_rates, scenario_from_args

    parser = _simulate_parser()
    try:
        ns = parser.parse_args(["simulate", *[str(a) for a in args]])
    except SystemExit:
        raise InputError(f"simulate_args of the plan are not valid simulate arguments: {args!r}") from None
    rates = parse_rates(ns.arrival_rate)
    return scenario_from_args(ns, rates[0]), ns.engine


def _service_flags_from_args(args: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(args):
        a = str(args[i])
        if a in _SERVICE_FLAGS:
            out += [a, str(args[i + 1])]
            i += 2
        else:
            i += 1
    return out


def _flag(args: list[str], name: str) -> str | None:
    args = [str(a) for a in args]
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


class _Services:
    """Service flags of (hardware, variant): from the plan's catalog, else the recommendation's own."""

    def __init__(self, plan: dict):
        self.plan = plan
        self.rec = plan.get("recommendation") or {}
        self.catalog = None
        path = (plan.get("catalog") or {}).get("path")
        self.model = next((p.get("model") for p in plan.get("provenance") or [] if p.get("model")), None)
        if path and self.model:
            try:
                from ..planner import load_catalog

                # Absolute: a relative catalog path is relative to where the report runs.
                self.catalog = load_catalog(Path(path).resolve())
            except (ImportError, InputError):
                self.catalog = None

    def flags(self, hardware: str, variant: str) -> list[str] | None:
        if self.catalog is not None:
            try:
                return self.catalog.specs(self.model, [hardware], [variant])[0].service_flags() \
                    + self._level_flags(hardware, variant)
            except (InputError, IndexError):
                pass
        if hardware == self.rec.get("hardware") and variant == self.rec.get("variant"):
            flags = _service_flags_from_args(self.rec.get("simulate_args") or [])
            return flags or None
        return None

    def _level_flags(self, hardware: str, variant: str) -> list[str]:
        """``--host-level`` of a spec the plan judged on a slow host (plan --host-margin), else nothing."""
        margin = (self.plan.get("search") or {}).get("host_margin") or {}
        level = ((margin.get("levels") or {}).get(f"{hardware}/{variant}") or {}).get("level")
        return ["--host-level", f"{float(level):.6g}"] if isinstance(level, (int, float)) else []

    def variants(self, hardware: str) -> list[str]:
        if self.catalog is not None:
            try:
                return [s.variant for s in self.catalog.specs(self.model, [hardware])]
            except InputError:
                return []
        return []


def config_args(plan: dict, services: _Services, config: dict, rate: float, settings: ResimulationSettings,
                seed: int) -> list[str] | None:
    """``simulate`` arguments of one configuration (a plan row) at ``rate``; None if its service is unknown."""
    flags = services.flags(config.get("hardware"), config.get("variant"))
    if flags is None or config.get("replicas") is None:
        return None
    search = plan.get("search") or {}
    rec_args = [str(a) for a in (plan.get("recommendation") or {}).get("simulate_args") or []]
    args = ["--arrival-rate", repr(float(rate)), *flags, "--replicas", str(int(config["replicas"]))]
    b = int(config.get("batch_size") or 1)
    if b > 1:
        args += ["--batch-size", str(b), "--batch-timeout-ms", repr(float(config.get("batch_timeout_ms") or 0.0))]
    cache = config.get("cache")
    if cache and cache != "none":
        zipf = search.get("zipf_alpha", _flag(rec_args, "--zipf"))
        keys = search.get("keys", _flag(rec_args, "--keys"))
        args += ["--cache", str(cache)]
        if zipf is not None:
            args += ["--zipf", str(zipf)]
        if keys is not None:
            args += ["--keys", str(keys)]
        hit = search.get("cache_hit_ms", _flag(rec_args, "--cache-hit-ms"))
        if hit:
            args += ["--cache-hit-ms", str(hit)]
    process = _flag(rec_args, "--arrival-process")
    if process:
        args += ["--arrival-process", process]
    args += ["--requests", str(settings.requests), "--replications", str(settings.replications),
             "--seed", str(seed)]
    return args


def request_latencies_ms(scenario, seed: int) -> np.ndarray:
    """Per-request latencies (ms) of replication 1 of ``simulate(scenario, seed=seed)``, after warm-up
    deletion, answered requests only: the same requests and variates as that replication."""
    from ..montecarlo import warmup_cut
    from ..simulate import make_service_model
    from ..variates import draw_variates, replication_seeds, streams

    model = make_service_model(scenario)
    seed_seq = replication_seeds(seed, 1)[0]
    rngs = streams(seed_seq)
    trace = None
    if scenario.arrivals.process == "trace":
        from ..workload import load_trace

        trace = load_trace(scenario.arrivals.trace)
    variates = draw_variates(scenario, model, scenario.run.requests, rngs, trace=trace)
    try:
        from .. import fast
        use_fast = fast.supports(scenario) is None
    except ImportError:
        use_fast = False
    if use_fast:
        out = fast.run_replication(scenario, model, variates)
    else:
        from ..des import run_replication

        out = run_replication(scenario, model, variates, rngs)
    cut = warmup_cut(out, scenario.run)
    lat = out.latency[cut:]
    keep = ~np.isnan(lat) & ~out.dropped[cut:]
    return lat[keep] * 1e3


def _point(res: Result, key: str) -> dict:
    if not res.stable:
        return {"arrival_rate": res.arrival_rate, "stable": False, "latency_ms": None, "latency_ms_ci95": None,
                "verdict": res.verdict}
    return {"arrival_rate": res.arrival_rate, "stable": True, "latency_ms": res.latency_ms.get(key),
            "latency_ms_ci95": res.latency_ms_ci95.get(key), "engine": res.engine}


def _sweep_rates(rate: float, capacity: float | None, bracket: list | None, points: int) -> list[float]:
    top = None
    if isinstance(bracket, list) and len(bracket) == 2 and all(isinstance(v, (int, float)) for v in bracket):
        top = float(bracket[1])
    elif isinstance(capacity, (int, float)):
        top = float(capacity)
    top = max(top * 1.1 if top else rate * 1.6, rate * 1.1)
    rates = set(np.linspace(top * 0.2, top, points).round(6).tolist())
    rates.add(float(rate))
    return sorted(rates)


def resimulate(plan: dict, settings: ResimulationSettings | None = None, progress=None) -> Resimulation:
    """Run the report's own simulations for ``plan`` (see the module docstring).

    A part that cannot be simulated (its profile is not on this machine, its service is not in the
    plan's catalog) is skipped with a note; the report then says "not available" for that figure.
    """
    settings = settings or ResimulationSettings()
    out = Resimulation()
    rate = plan.get("arrival_rate")
    seed = settings.seed if settings.seed is not None else int(plan.get("seed") or 12345)
    effort = (f"simulated by 'simulator report' (engine {settings.engine}, {settings.requests:,} requests x "
              f"{settings.replications} replications per point")
    out.description = f"{effort}, seed {seed})"
    out.sensitivity_description = f"{effort}, the recommendation's own seed: every variation sees the same requests)"
    if not isinstance(rate, (int, float)):
        out.notes.append("the plan has no arrival_rate: nothing simulated")
        return out
    slo = plan.get("slo") if isinstance(plan.get("slo"), dict) else {}
    ctx = _Context(plan, settings, _Services(plan), float(rate), seed,
                   slo.get("percentile") if isinstance(slo.get("percentile"), str) else "p99",
                   progress or (lambda msg: None))
    for part, label in ((_recommendation, "the recommendation's latency distribution"),
                        (_load_curves, "latency vs load"), (_sensitivity, "sensitivity")):
        try:
            part(ctx, out)
        except InputError as exc:
            out.notes.append(f"{label} not simulated: {exc}")
    return out


@dataclass
class _Context:
    plan: dict
    settings: ResimulationSettings
    services: _Services
    rate: float
    seed: int
    key: str
    say: Callable[[str], None]


def _simulate(scenario, engine: str) -> Result:
    from ..simulate import simulate

    return simulate(scenario, engine=engine)


def _recommendation(ctx: _Context, out: Resimulation) -> None:
    rec = ctx.plan.get("recommendation")
    if rec is None:
        return
    # The recommendation's own simulate_args reproduce the plan's figure (same engine, effort and
    # seed); an analytic judge has no per-request latencies, so those are simulated.
    args = [str(a) for a in rec.get("simulate_args") or []] or config_args(
        ctx.plan, ctx.services, rec, ctx.rate, ctx.settings, ctx.seed)
    if not args:
        out.notes.append("the recommendation's service could not be rebuilt (no catalog, no simulate_args)")
        return
    ctx.say(f"recommendation at {ctx.rate:g} req/s: per-request latencies")
    scenario, engine = scenario_from_simulate_args(args)
    res = _simulate(scenario, ctx.settings.engine if engine == "analytic" else engine)
    if not res.stable:
        out.notes.append(f"the recommendation re-simulated is unstable: {res.verdict}")
        return
    out.quantiles_ms = {k: v for k, v in res.latency_ms.items() if k != "mean"}
    out.latencies_ms = request_latencies_ms(scenario, scenario.run.seed)
    out.recommendation = {"engine": res.engine, "requests": scenario.run.requests,
                          "replications": res.replications, "seed": scenario.run.seed,
                          f"{ctx.key}_ms": res.latency_ms.get(ctx.key),
                          f"{ctx.key}_ms_ci95": res.latency_ms_ci95.get(ctx.key)}


def _load_curves(ctx: _Context, out: Resimulation) -> None:
    for row in ctx.plan.get("per_hardware") or []:
        if row.get("replicas") is None or not row.get("hardware"):
            continue
        rates = _sweep_rates(ctx.rate, row.get("capacity_rps"), row.get("capacity_bracket_rps"),
                             ctx.settings.load_points)
        curve = []
        for r in rates:
            args = config_args(ctx.plan, ctx.services, row, r, ctx.settings, ctx.seed)
            if args is None:
                break
            scenario, _ = scenario_from_simulate_args(args)
            curve.append(_point(_simulate(scenario, ctx.settings.engine), ctx.key))
        if curve:
            ctx.say(f"{row['hardware']}: latency vs load, {len(curve)} rates")
            out.load_curves[row["hardware"]] = curve
        else:
            out.notes.append(f"latency vs load of {row['hardware']}: its service is not in the plan's catalog")


def _sensitivity(ctx: _Context, out: Resimulation) -> None:
    rec = ctx.plan.get("recommendation")
    if rec is None:
        return
    plan, services, rate, settings, key = ctx.plan, ctx.services, ctx.rate, ctx.settings, ctx.key
    # The recommendation's own seed: every variation sees the same requests (common random numbers),
    # and the recommended row is the plan's own figure when the effort is the plan's.
    rec_seed = _flag([str(a) for a in rec.get("simulate_args") or []], "--seed")
    seed = int(rec_seed) if rec_seed and rec_seed.isdigit() else ctx.seed
    search = plan.get("search") or {}
    options = {
        "batch_size": sorted({int(b) for b in search.get("batch_sizes") or []} | {int(rec.get("batch_size") or 1)}),
        "cache": list(dict.fromkeys(["none" if c in (None, "none") else str(c)
                                     for c in (search.get("caches") or [])]
                                    + ["none" if not rec.get("cache") else str(rec["cache"])])),
        "variant": list(dict.fromkeys([*services.variants(rec["hardware"]), rec.get("variant")])),
    }
    timeouts = [t for t in search.get("batch_timeouts_ms") or [] if isinstance(t, (int, float))]
    for dim, values in options.items():
        if len(values) < 2:
            continue
        rows = []
        for v in values:
            cfg = dict(rec)
            if dim == "batch_size":
                cfg["batch_size"] = v
                if v > 1 and not (rec.get("batch_size") or 1) > 1:
                    cfg["batch_timeout_ms"] = timeouts[0] if timeouts else 0.0
            elif dim == "cache":
                cfg["cache"] = None if v == "none" else v
            else:
                cfg["variant"] = v
            args = config_args(plan, services, cfg, rate, settings, seed)
            if args is None:
                continue
            try:
                scenario, _ = scenario_from_simulate_args(args)
                res = _simulate(scenario, settings.engine)
            except InputError as exc:
                rows.append({"value": v, "p99_ms": None, "ci": None, "note": str(exc),
                             "recommended": v == _current(rec, dim)})
                continue
            p = _point(res, key)
            rows.append({"value": v, "p99_ms": p["latency_ms"], "ci": p["latency_ms_ci95"],
                         "note": None if res.stable else res.verdict, "recommended": v == _current(rec, dim),
                         "replicas": int(rec["replicas"])})
        if len(rows) >= 2 and any(r["p99_ms"] is not None and math.isfinite(r["p99_ms"]) for r in rows):
            out.sensitivity[dim] = rows
    if out.sensitivity:
        ctx.say("sensitivity: " + ", ".join(f"{k} ({len(v)})" for k, v in out.sensitivity.items()))


def _current(rec: dict, dim: str):
    if dim == "cache":
        return "none" if not rec.get("cache") else str(rec["cache"])
    if dim == "batch_size":
        return int(rec.get("batch_size") or 1)
    return rec.get(dim)
