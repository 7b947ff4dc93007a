"""What the report shows, read from a plan document: numbers keep a pointer to where they came from.

Every number in the report is a :class:`Num` that carries the plan value and its JSON pointer
(``/recommendation/p99_ms``), so the HTML can say where each figure came from (``data-src``) and the
tests can check that each equals the plan's. Sections the plan lacks are ``None`` and render as
"not available"; nothing here makes up a figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..profiles import Profile, profiles_root

__all__ = ["NOT_AVAILABLE", "Num", "Report", "build_view", "cache_label", "fmt_number", "pick", "ptr"]

NOT_AVAILABLE = "not available"

# Alternative spellings of optional fields, first match wins (the planner's own names first).
ALIASES = {
    "monthly_cost": ("monthly_cost", "monthly_cost_usd", "cost_per_month"),
    "cost_per_million": ("cost_per_million_requests", "cost_per_million", "cost_per_million_usd"),
    "capacity": ("capacity_rps", "capacity", "max_arrival_rate"),
    "limit_ms": ("limit_ms",),
    "headroom": ("headroom", "headroom_fraction"),
    "load_curve": ("load_curve", "latency_vs_load", "curve", "sweep"),
    "accuracy": ("output_difference", "accuracy_delta", "accuracy"),
    "device": ("device", "device_name"),
    "date": ("date", "measured_at"),
}


def pick(d: dict | None, name: str):
    """(key, value) of the first alias of ``name`` present in ``d`` with a non-null value."""
    if not isinstance(d, dict):
        return None, None
    for key in ALIASES.get(name, (name,)):
        if d.get(key) is not None:
            return key, d[key]
    return None, None


def fmt_number(value: float | int | None, kind: str) -> str:
    """The text shown for a number; ``kind`` is one of ms, usd, int, rate, fraction, count, seconds, plain."""
    if value is None:
        return NOT_AVAILABLE
    v = float(value)
    if kind == "int" or kind == "count":
        return f"{round(v):,}"
    if kind == "ms":
        return f"{v:.2f}"
    if kind == "usd":
        return f"${v:,.2f}" if abs(v) >= 1 else f"${v:.4g}"
    if kind == "rate":
        return f"{v:,.6g}"
    if kind == "fraction":
        return f"{v * 100:.1f}%"
    if kind == "plain":
        return f"{v:.4g}"
    if kind == "seconds":
        return f"{v:.2f}"
    return f"{v:.6g}"


@dataclass(frozen=True)
class Num:
    """A number from the plan: its value, JSON pointer and display kind."""

    value: float | int | None
    src: str
    kind: str

    @property
    def text(self) -> str:
        return fmt_number(self.value, self.kind)

    @property
    def available(self) -> bool:
        return self.value is not None

    def __str__(self) -> str:
        return self.text


def ptr(*parts) -> str:
    """A JSON pointer (RFC 6901) from its reference tokens."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def num(doc: dict | None, base: str, name: str, kind: str) -> Num:
    """The plan's number at ``base``/(first alias of ``name``), or an unavailable Num."""
    key, value = pick(doc, name)
    if key is None or isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        return Num(None, base + ptr(ALIASES.get(name, (name,))[0]), kind)
    return Num(value, base + ptr(key), kind)


def cache_label(cache) -> str:
    """``None`` → "none"; ``{"policy": "lru", "capacity": 1000}`` → "lru:1000"; strings as given."""
    if cache is None or cache is False or cache == "" or cache == "none":
        return "none"
    if isinstance(cache, dict):
        policy = cache.get("policy")
        if policy is None or not cache.get("capacity"):
            return "none"
        return f"{policy}:{cache.get('capacity')}"
    return str(cache)


def batching_label(d: dict) -> str:
    b = d.get("batch_size")
    if b is None:
        return NOT_AVAILABLE
    if b == 1:
        return "off (batch size 1)"
    t = d.get("batch_timeout_ms")
    return f"max batch {b}" + (f", timeout {t:g} ms" if isinstance(t, (int, float)) else "")


def slo_view(plan: dict) -> dict:
    """SLO as {key, latency (Num), text}; accepts the planner's object or a "p99=50ms" string."""
    slo = plan.get("slo")
    if isinstance(slo, str):
        return {"key": slo.split("=")[0].strip() or "p99", "latency": Num(None, "/slo", "ms"), "text": slo,
                "judged_on": None}
    if isinstance(slo, dict):
        key = slo.get("percentile") if isinstance(slo.get("percentile"), str) else slo.get("key")
        q = slo.get("quantile", slo.get("percentile"))
        if key is None and isinstance(q, (int, float)):
            key = "p" + f"{q * 100:g}".replace(".", "")
        key = key or "p99"
        lat = num(slo, "/slo", "limit_ms", "ms")
        if not lat.available:
            lat = num(slo, "/slo", "latency_ms", "ms")
        text = f"{key} ≤ {lat.value:g} ms" if lat.available else (slo.get("text") or key)
        return {"key": key, "latency": lat, "text": text, "judged_on": slo.get("judged_on")}
    return {"key": "p99", "latency": Num(None, "/slo", "ms"), "text": NOT_AVAILABLE, "judged_on": None}


@dataclass
class Report:
    """Everything the templates need."""

    title: str
    model: str | None
    arrival_rate: Num
    slo: dict
    recommendation: dict | None
    per_hardware: list[dict]
    pareto: list[dict]
    growth: list[dict]
    growth_notes: list[str]
    minimality: list[tuple[str, str]]
    excluded_variants: list[str]
    accuracy_floor: float | None
    cost_basis: list[tuple[str, str]]
    mixed: list[tuple[str, str]]
    provenance: list[dict]
    prices: list[dict]
    search: list[tuple[str, str]]
    reproducibility: dict
    sensitivity: dict = field(default_factory=dict)
    sensitivity_source: str = ""
    resimulation: dict | None = None
    notes: list[str] = field(default_factory=list)


def _per_hardware_entry(plan: dict, hardware: str) -> tuple[int, dict] | tuple[None, None]:
    for i, e in enumerate(plan.get("per_hardware") or []):
        if e.get("hardware") == hardware:
            return i, e
    return None, None


def _same_config(a: dict, b: dict) -> bool:
    keys = ("hardware", "variant", "replicas", "batch_size")
    return all(a.get(k) == b.get(k) for k in keys) and cache_label(a.get("cache")) == cache_label(b.get("cache"))


def recommendation_view(plan: dict) -> dict | None:
    rec = plan.get("recommendation")
    if rec is None:
        return None
    base = "/recommendation"
    ci = rec.get("p99_ms_ci95")
    ci_nums = [Num(ci[i], f"{base}/p99_ms_ci95/{i}", "ms") for i in range(2)] if ci else None
    # Monthly cost, cost per million requests, capacity and headroom of the recommended configuration:
    # from the recommendation itself, else from its hardware's per-hardware row when that row is the
    # same configuration (the cheapest passing one on that hardware).
    derived = {}
    idx, row = _per_hardware_entry(plan, rec.get("hardware"))
    for name, kind in (("monthly_cost", "usd"), ("cost_per_million", "usd"), ("capacity", "rate"),
                       ("headroom", "fraction")):
        n = num(rec, base, name, kind)
        if not n.available and row is not None and _same_config(rec, row):
            n = num(row, f"/per_hardware/{idx}", name, kind)
        derived[name] = n
    slo = slo_view(plan)
    verdict = None
    if ci and slo["latency"].available:
        verdict = "meets" if ci[1] <= slo["latency"].value else "misses"
    return {
        "hardware": rec.get("hardware"),
        "kind": rec.get("kind"),
        "source": rec.get("source"),
        "published": rec.get("source") == "published",
        "citation": rec.get("citation"),
        "judge": rec.get("judge"),
        "variant": rec.get("variant") or NOT_AVAILABLE,
        "replicas": Num(rec.get("replicas"), f"{base}/replicas", "int"),
        "batching": batching_label(rec),
        "batch_size": num(rec, base, "batch_size", "int"),
        "batch_timeout_ms": num(rec, base, "batch_timeout_ms", "ms"),
        "cache": cache_label(rec.get("cache")),
        "cost_per_hour": num(rec, base, "cost_per_hour", "usd"),
        "p99_ms": num(rec, base, "p99_ms", "ms"),
        "p99_ms_ci95": ci_nums,
        "verdict": verdict,
        "simulate_args": rec.get("simulate_args"),
        "top1_agreement": num(rec.get("accuracy"), f"{base}/accuracy", "top1_agreement", "fraction"),
        "max_rel_diff": num(rec.get("accuracy"), f"{base}/accuracy", "max_rel_diff", "plain"),
        **derived,
    }


def per_hardware_view(plan: dict) -> list[dict]:
    out = []
    rec = plan.get("recommendation") or {}
    for i, e in enumerate(plan.get("per_hardware") or []):
        base = f"/per_hardware/{i}"
        passing = e.get("replicas") is not None and e.get("meets_slo", True) is not False
        out.append({
            "hardware": e.get("hardware", NOT_AVAILABLE),
            "recommended": e.get("hardware") == rec.get("hardware"),
            "passing": passing,
            "config": (f"{e.get('variant', '?')}, {e.get('replicas')} replica(s), {batching_label(e)}, "
                       f"cache {cache_label(e.get('cache'))}") if passing
            else (e.get("note") or "no configuration meets the SLO"),
            "published": e.get("source") == "published",
            "cost_per_hour": num(e, base, "cost_per_hour", "usd"),
            "monthly_cost": num(e, base, "monthly_cost", "usd"),
            "cost_per_million": num(e, base, "cost_per_million", "usd"),
            "capacity": num(e, base, "capacity", "rate"),
            "headroom": num(e, base, "headroom", "fraction"),
            "p99_ms": num(e, base, "p99_ms", "ms"),
        })
    return out


def pareto_view(plan: dict) -> list[dict]:
    out = []
    for i, e in enumerate(plan.get("pareto") or []):
        base = f"/pareto/{i}"
        out.append({"hardware": e.get("hardware", NOT_AVAILABLE),
                    "config": f"{e.get('variant', '?')}, {e.get('replicas', '?')} replica(s), "
                              f"batch {e.get('batch_size', '?')}, cache {cache_label(e.get('cache'))}",
                    "cost_per_hour": num(e, base, "cost_per_hour", "usd"),
                    "p99_ms": num(e, base, "p99_ms", "ms")})
    return out


def _flat(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "-"
    return str(value)


def growth_view(plan: dict) -> tuple[list[dict], list[str]]:
    """Rows of the growth table (one per load scenario) and the section's notes."""
    growth = plan.get("growth")
    if not isinstance(growth, dict):
        return [], []
    rows, notes = [], []
    for name, e in growth.items():
        if not isinstance(e, dict):
            notes.append(f"{name}: {_flat(e)}")
            continue
        base = ptr("growth", name)
        same = e.get("recommended_configuration") if isinstance(e.get("recommended_configuration"), dict) else None
        cheapest = e.get("cheapest") if isinstance(e.get("cheapest"), dict) else None
        if same is None and cheapest is None:  # a flat row: {arrival_rate, replicas, cost_per_hour, p99_ms}
            same, sbase = e, base
        else:
            sbase = base + ptr("recommended_configuration")
        cbase = base + ptr("cheapest")
        rows.append({
            "scenario": name,
            "arrival_rate": num(e, base, "arrival_rate", "rate"),
            "replicas": num(same, sbase, "replicas", "int"),
            "extra_replicas": num(e, base, "extra_replicas", "int"),
            "cost_per_hour": num(same, sbase, "cost_per_hour", "usd"),
            "p99_ms": num(same, sbase, "p99_ms", "ms"),
            "cheapest_hardware": (cheapest or {}).get("hardware") or NOT_AVAILABLE,
            "cheapest_cost_per_hour": num(cheapest, cbase, "cost_per_hour", "usd"),
            "switch_hardware": e.get("switch_hardware"),
        })
    return rows, notes


def pairs_view(plan: dict, key: str) -> list[tuple[str, str]]:
    """A plan section shown as it is: (key, flattened value) rows; [] when absent."""
    m = plan.get(key)
    if not isinstance(m, dict):
        return []
    return [(str(k), _flat(v)) for k, v in m.items()]


def _accuracy_text(acc) -> str | None:
    if not isinstance(acc, dict):
        return None if acc is None else _flat(acc)
    parts = []
    for key, label in (("max_abs_diff", "max |diff|"), ("mean_abs_diff", "mean |diff|"),
                       ("max_rel_diff", "max |diff| / max |fp32 output|"),
                       ("top1_agreement", "top-1 agreement"), ("examples", "examples")):
        if acc.get(key) is not None:
            v = acc[key]
            parts.append(f"{label} {v:.4g}" if isinstance(v, float) else f"{label} {v}")
    if acc.get("non_finite_outputs"):
        parts.append("non-finite outputs")
    ref = acc.get("reference")
    return (", ".join(parts) + (f" (vs {ref})" if ref else "")) if parts else _flat(acc)


def _profile_model_section(path) -> dict | None:
    """The ``model`` section of a profile file, if the file is there and readable (else None)."""
    if not isinstance(path, str) or not path:
        return None
    try:
        return dict(Profile.load(path).model)
    except (InputError, OSError):  # a provenance row never fails the report; it says "not available"
        return None


def display_path(path) -> str:
    """A profile path as shown: relative to the bundled profiles/ folder when it lies inside it."""
    try:
        return "profiles/" + Path(path).resolve().relative_to(profiles_root().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def provenance_view(plan: dict) -> list[dict]:
    """One row per profile the plan used: where its numbers come from and how far the variant's
    outputs are from fp32 (the profile's ``model.output_difference``, read from the file if it is here)."""
    out = []
    for e in plan.get("provenance") or []:
        source = e.get("source") or NOT_AVAILABLE
        model = e.get("model")
        model_section = model if isinstance(model, dict) else {}
        path = e.get("profile") or e.get("path")
        _, device = pick(e, "device")
        _, date = pick(e, "date")
        # The profile file's own record when it is here (the fullest), else what the plan copied.
        _, acc = pick(_profile_model_section(path), "accuracy")
        if acc is None:
            _, acc = pick(e, "accuracy")
        if acc is None:
            _, acc = pick(model_section, "accuracy")
        if path:
            shown_path = display_path(path)
        else:
            shown_path = "no profile: parametric service time" if source == "parametric" else NOT_AVAILABLE
        out.append({"hardware": e.get("hardware") or NOT_AVAILABLE,
                    "profile": shown_path,
                    "model": model if isinstance(model, str) else model_section.get("name"),
                    "variant": e.get("variant") or model_section.get("variant") or NOT_AVAILABLE,
                    "device": _flat(device) if device is not None else NOT_AVAILABLE,
                    "date": str(date) if date is not None else NOT_AVAILABLE,
                    "method": _flat(e["method"]) if e.get("method") is not None else NOT_AVAILABLE,
                    "published": source == "published",
                    "source": source,
                    "citation": e.get("citation"),
                    "accuracy": _accuracy_text(acc) or NOT_AVAILABLE})
    return out


def prices_view(plan: dict) -> list[dict]:
    cat = plan.get("catalog")
    rows = []
    for i, h in enumerate((cat or {}).get("hardware") or [] if isinstance(cat, dict) else []):
        if not isinstance(h, dict):
            continue
        rows.append({"name": h.get("name", NOT_AVAILABLE),
                     "price": num(h, ptr("catalog", "hardware", i), "price_per_hour", "usd"),
                     "priced_as": h.get("priced_as") or NOT_AVAILABLE,
                     "source": h.get("price_source") or NOT_AVAILABLE,
                     "seen": h.get("price_seen") or NOT_AVAILABLE,
                     "verified": h.get("price_verified")})
    return rows


def search_view(plan: dict) -> list[tuple[str, str]]:
    search = plan.get("search")
    if not isinstance(search, dict):
        search = {}
    rows = [(str(k), _flat([c or "none" for c in v] if k == "caches" and isinstance(v, list) else v))
            for k, v in search.items()]
    if plan.get("arrival_process"):
        rows.insert(0, ("arrival_process", str(plan["arrival_process"])))
    return rows


def reproducibility_view(plan: dict) -> dict:
    cmd = plan.get("command")
    if isinstance(cmd, list):
        import shlex

        cmd = shlex.join(str(c) for c in cmd)
    versions = plan.get("versions")
    rec = plan.get("recommendation") or {}
    args = rec.get("simulate_args")
    return {"command": cmd or NOT_AVAILABLE,
            "seed": num(plan, "", "seed", "int"),
            "versions": [(str(k), _flat(v)) for k, v in versions.items()] if isinstance(versions, dict) else [],
            "configurations_evaluated": num(plan, "", "configurations_evaluated", "count"),
            "wall_seconds": num(plan, "", "wall_seconds", "seconds"),
            "simulate_command": _shell("simulate", args) if isinstance(args, list) else None,
            "executor": _flat(plan["executor"]) if plan.get("executor") is not None else None,
            "evaluations": _flat(plan["evaluations"]) if isinstance(plan.get("evaluations"), dict) else None}


def _shell(prog: str, args: list) -> str:
    import shlex

    return shlex.join([prog, *(str(a) for a in args)])


def build_view(plan: dict) -> Report:
    """The report's content from a validated plan document."""
    model = plan.get("model")
    if isinstance(model, dict):
        model = model.get("name")
    rec = plan.get("recommendation")
    if model is None:
        model = next((p.get("model") for p in plan.get("provenance") or [] if isinstance(p.get("model"), str)),
                     None)
    title = "Capacity plan" + (f": {model}" if model else "")
    growth, growth_notes = growth_view(plan)
    search = plan.get("search") if isinstance(plan.get("search"), dict) else {}
    return Report(title=title, model=model,
                  arrival_rate=num(plan, "", "arrival_rate", "rate"),
                  slo=slo_view(plan),
                  recommendation=recommendation_view(plan) if rec is not None else None,
                  per_hardware=per_hardware_view(plan), pareto=pareto_view(plan),
                  growth=growth, growth_notes=growth_notes, minimality=pairs_view(plan, "minimality"),
                  cost_basis=pairs_view(plan, "cost_basis"), mixed=pairs_view(plan, "mixed"),
                  excluded_variants=[str(v) for v in search.get("excluded_variants") or []],
                  accuracy_floor=search.get("min_top1_agreement"),
                  provenance=provenance_view(plan), prices=prices_view(plan), search=search_view(plan),
                  reproducibility=reproducibility_view(plan))
