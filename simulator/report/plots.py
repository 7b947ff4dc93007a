"""The report's figures (matplotlib, object API: no pyplot, no global state).

Each ``*_figure`` function takes plan data and returns a :class:`matplotlib.figure.Figure`, or ``None``
when the plan does not hold what the figure needs (the report then says "not available").
:func:`figure_bytes` renders a figure to PNG and SVG bytes, reproducibly (no dates, fixed SVG ids).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np

from .escape import plot_text
from .view import cache_label, pick

__all__ = ["cost_per_million_figure", "figure_bytes", "latency_cdf_figure", "latency_vs_load_figure",
           "load_curves_from_plan", "pareto_figure", "sensitivity_figure", "sensitivity_series"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
           "tab:cyan", "tab:gray", "tab:red")
SENSITIVITY_DIMENSIONS = (("batch_size", "batch size"), ("cache", "cache"), ("variant", "model variant"))


def _figure(width: float = 7.0, height: float = 4.2):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def figure_bytes(fig) -> tuple[bytes, bytes]:
    """(PNG, SVG) bytes of ``fig``; the same figure gives the same bytes on the same matplotlib."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "simulator-report", "svg.fonttype": "none"}):
        png, svg = io.BytesIO(), io.BytesIO()
        fig.savefig(png, format="png", dpi=110, metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), svg.getvalue()


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _log_axis(axis) -> None:
    """Log scale with plain tick labels (20, 50, not 2×10¹): readers compare these with an SLO in ms."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    axis._set_axes_scale("log")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def _slo_line(ax, slo_ms: float | None, slo_key: str) -> None:
    if slo_ms is not None:
        ax.axhline(slo_ms, color="tab:red", linestyle="--", linewidth=1.2, label=f"SLO {slo_key} = {slo_ms:g} ms")


def load_curves_from_plan(per_hardware: Sequence[dict]) -> list[tuple[str, list[dict]]]:
    """Latency-vs-load sweeps the plan itself carries per hardware (``load_curve``: points with
    ``arrival_rate``, ``p99_ms``/``latency_ms`` and their ``*_ci95``), in the form the figure takes."""
    out = []
    for e in per_hardware:
        _, curve = pick(e, "load_curve")
        if not isinstance(curve, list):
            continue
        pts = []
        for p in curve:
            if not isinstance(p, dict):
                continue
            value = p.get("latency_ms", p.get("p99_ms"))
            ci = p.get("latency_ms_ci95", p.get("p99_ms_ci95"))
            pts.append({"arrival_rate": p.get("arrival_rate"), "latency_ms": value, "latency_ms_ci95": ci})
        out.append((e.get("hardware", "?"), pts))
    return out


def latency_vs_load_figure(curves: Sequence[tuple[str, list[dict]]], slo_ms: float | None, slo_key: str = "p99",
                           planned_rate: float | None = None):
    """Latency (the SLO's percentile) vs arrival rate per hardware, with 95% CI bands.

    ``curves`` is ``[(hardware, [{"arrival_rate", "latency_ms", "latency_ms_ci95"}, ...]), ...]``;
    unstable points (no latency) are left out of the line.
    """
    usable = []
    for hw, pts in curves:
        good = sorted((p for p in pts if _finite(p.get("arrival_rate")) and _finite(p.get("latency_ms"))),
                      key=lambda p: p["arrival_rate"])
        if good:
            usable.append((hw, good))
    if not usable:
        return None
    fig = _figure()
    ax = fig.subplots()
    for i, (hw, pts) in enumerate(usable):
        color = _COLORS[i % len(_COLORS)]
        xs = np.array([p["arrival_rate"] for p in pts], dtype=float)
        ys = np.array([p["latency_ms"] for p in pts], dtype=float)
        ax.plot(xs, ys, marker="o", markersize=3.5, color=color, label=plot_text(hw))
        cis = [p.get("latency_ms_ci95") for p in pts]
        if all(isinstance(c, list) and len(c) == 2 and all(_finite(v) for v in c) for c in cis):
            ax.fill_between(xs, [c[0] for c in cis], [c[1] for c in cis], color=color, alpha=0.2, linewidth=0)
    _slo_line(ax, slo_ms, slo_key)
    if planned_rate is not None:
        ax.axvline(planned_rate, color="black", linestyle=":", linewidth=1, label=f"planned load {planned_rate:g} req/s")
    ax.set_xlabel("arrival rate (requests/s)")
    ax.set_ylabel(f"{slo_key} latency (ms)")
    _log_axis(ax.yaxis)
    ax.set_title("Latency vs load per hardware (bands: 95% CI)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def pareto_figure(candidates: Sequence[dict], pareto: Sequence[dict], slo_ms: float | None,
                  recommendation: dict | None, slo_key: str = "p99"):
    """Every evaluated configuration (cost per hour vs p99) and the Pareto frontier of the plan."""
    pts = [c for c in candidates if _finite(c.get("cost_per_hour")) and _finite(c.get("p99_ms"))]
    front = sorted((p for p in pareto if _finite(p.get("cost_per_hour")) and _finite(p.get("p99_ms"))),
                   key=lambda p: p["cost_per_hour"])
    if not pts and not front:
        return None
    fig = _figure()
    ax = fig.subplots()
    hardware = list(dict.fromkeys(c.get("hardware", "?") for c in pts))
    for i, hw in enumerate(hardware):
        mine = [c for c in pts if c.get("hardware", "?") == hw]
        ax.scatter([c["cost_per_hour"] for c in mine], [c["p99_ms"] for c in mine], s=14, alpha=0.55,
                   color=_COLORS[i % len(_COLORS)], label=plot_text(hw))
    if front:
        ax.step([p["cost_per_hour"] for p in front], [p["p99_ms"] for p in front], where="post",
                color="black", linewidth=1.5, marker="D", markersize=4, label="Pareto frontier")
    if recommendation and _finite(recommendation.get("cost_per_hour")) and _finite(recommendation.get("p99_ms")):
        ax.scatter([recommendation["cost_per_hour"]], [recommendation["p99_ms"]], s=160, facecolors="none",
                   edgecolors="tab:red", linewidths=2, label="recommendation", zorder=5)
    _slo_line(ax, slo_ms, slo_key)
    ax.set_xlabel("cost (USD per hour)")
    ax.set_ylabel(f"{slo_key} latency (ms)")
    _log_axis(ax.yaxis)
    ax.set_title("Cost vs latency of every evaluated configuration")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def cost_per_million_figure(per_hardware: Sequence[dict], recommended: str | None):
    """Bar chart: cost per million requests of each hardware's cheapest configuration meeting the SLO."""
    rows = []
    for e in per_hardware:
        _, v = pick(e, "cost_per_million")
        if _finite(v):
            rows.append((e.get("hardware", "?"), float(v)))
    if not rows:
        return None
    fig = _figure(7.0, 0.6 + 0.55 * len(rows) + 1.0)
    ax = fig.subplots()
    names = [plot_text(h) for h, _ in rows]
    vals = [v for _, v in rows]
    colors = ["tab:red" if h == recommended else "tab:blue" for h, _ in rows]
    y = np.arange(len(rows))
    ax.barh(y, vals, color=colors)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    for yi, v in zip(y, vals):
        ax.annotate(f"${v:.4g}", (v, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=9)
    ax.set_xlabel("USD per million requests (cheapest configuration meeting the SLO)")
    ax.set_title("Cost per million requests by hardware (red: recommended)")
    ax.margins(x=0.18)
    ax.grid(alpha=0.3, axis="x")
    return fig


def latency_cdf_figure(latencies_ms: np.ndarray | None, quantiles_ms: dict | None, slo_ms: float | None,
                       slo_key: str = "p99", label: str = "recommended configuration"):
    """Empirical CDF of per-request latency at the planned load (or the simulated quantiles alone)."""
    have_samples = latencies_ms is not None and len(latencies_ms) > 0
    qs = {k: v for k, v in (quantiles_ms or {}).items() if _finite(v) and k.startswith("p")}
    if not have_samples and not qs:
        return None
    fig = _figure()
    ax = fig.subplots()
    if have_samples:
        x = np.sort(np.asarray(latencies_ms, dtype=float))
        y = np.arange(1, x.size + 1) / x.size
        ax.plot(x, y, color="tab:blue", label=f"{plot_text(label)} ({x.size:,} requests)")
        p99 = float(np.quantile(x, 0.99))
        ax.axvline(p99, color="tab:blue", linestyle=":", linewidth=1, label=f"p99 of these requests {p99:.2f} ms")
    else:
        frac = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
        pts = sorted((v, frac[k]) for k, v in qs.items() if k in frac)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color="tab:blue",
                label=f"{plot_text(label)}: simulated quantiles")
    if slo_ms is not None:
        ax.axvline(slo_ms, color="tab:red", linestyle="--", linewidth=1.2, label=f"SLO {slo_key} = {slo_ms:g} ms")
    positive = float(np.min(latencies_ms)) > 0 if have_samples else all(v > 0 for v in qs.values())
    if positive:
        _log_axis(ax.xaxis)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests ≤ latency")
    ax.set_ylim(0, 1.01)
    ax.set_title("Latency CDF at the planned load")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="lower right")
    return fig


def _key(c: dict, dim: str):
    if dim == "cache":
        return cache_label(c.get("cache"))
    v = c.get(dim)
    return int(v) if isinstance(v, float) and v.is_integer() else v


def sensitivity_series(candidates: Sequence[dict], recommendation: dict | None) -> dict[str, list[dict]]:
    """For batch size, cache and variant: the plan's candidates that differ from the recommendation in
    that one setting only (same hardware and replicas)."""
    if not recommendation:
        return {}
    fixed = ("hardware", "replicas", "batch_size", "cache", "variant")
    out: dict[str, list[dict]] = {}
    for dim, _ in SENSITIVITY_DIMENSIONS:
        rows, seen = [], set()
        for c in candidates:
            if not all(_key(c, k) == _key(recommendation, k) for k in fixed if k != dim):
                continue
            value = _key(c, dim)
            if value in seen:
                continue
            seen.add(value)
            ci = c.get("p99_ms_ci95")
            if ci is None and _finite(c.get("p99_ms_ci95_low")) and _finite(c.get("p99_ms_ci95_high")):
                ci = [c["p99_ms_ci95_low"], c["p99_ms_ci95_high"]]
            rows.append({"value": value, "p99_ms": c.get("p99_ms") if _finite(c.get("p99_ms")) else None,
                         "ci": ci, "cost_per_hour": c.get("cost_per_hour"), "note": c.get("status"),
                         "recommended": value == _key(recommendation, dim)})
        if len(rows) >= 2:
            out[dim] = sorted(rows, key=lambda r: (isinstance(r["value"], str), r["value"]))
    return out


def sensitivity_figure(series: dict[str, list[dict]], slo_ms: float | None, slo_key: str = "p99"):
    """One panel per setting: p99 (with 95% CI) as that setting alone changes."""
    dims = [(d, label) for d, label in SENSITIVITY_DIMENSIONS if d in series]
    if not dims:
        return None
    fig = _figure(max(3.4 * len(dims) + 0.6, 6.0), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(dims), sharey=True))
    for ax, (dim, label) in zip(axes, dims):
        rows = series[dim]
        x = np.arange(len(rows))
        for xi, r in zip(x, rows):
            color = "tab:red" if r["recommended"] else "tab:blue"
            if r["p99_ms"] is None:
                label = "unstable" if str(r.get("note") or "").startswith("unstable") else "no p99 (see table)"
                ax.annotate(label, (xi, 0.5), xycoords=("data", "axes fraction"), ha="center",
                            rotation=90, color="gray", fontsize=9)
                continue
            ci = r["ci"]
            err = None
            if isinstance(ci, list) and len(ci) == 2 and all(_finite(v) for v in ci):
                err = [[max(r["p99_ms"] - ci[0], 0)], [max(ci[1] - r["p99_ms"], 0)]]
            ax.errorbar([xi], [r["p99_ms"]], yerr=err, fmt="o", color=color, capsize=3)
        _slo_line(ax, slo_ms, slo_key)
        ax.set_xticks(x, [plot_text(r["value"]) for r in rows], rotation=20)
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_xlabel(label)
        _log_axis(ax.yaxis)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"{slo_key} latency (ms)")
    fig.suptitle("One setting changed from the recommendation (red)")
    return fig
