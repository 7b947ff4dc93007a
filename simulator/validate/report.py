"""Write a validation's results: ``validation.csv``, ``validation.md``, ``validation.png``, ``validation.json``."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..service import warmup_factor
from .compare import ERROR_LIMITS, METRICS, SPREAD_MARGIN
from .harness import Case

__all__ = ["MODEL_LABELS", "table_rows", "write_report"]

MODEL_LABELS = {"calibrated": "calibrated under load", "isolated": "isolated profile",
                "profile": "given profile", "replay": "replay (diagnostic)",
                "ordered": "calibrated, measured order", "under_load": "under-load profile (all loads)",
                "under_load_no_drift": "under-load profile without host drift",
                "under_load_ordered": "under-load profile, measured order",
                "neighbour": "next real run, measured order (diagnostic)",
                "at_level": "recommended under-load profile at each run's measured host level (diagnostic)"}
_BASE_COLUMNS = ("replicas", "batch_size", "utilization", "measured_busy", "measured_level_pct", "arrival_rate",
                 "repeats", "metric", "measured_ms", "measured_runs_ms", "spread_pct", "measured_run_sd_pct",
                 "loadavg_1min_max", "host_band_sd_pct", "host_band_low_ms", "host_band_high_ms",
                 "host_band_covers", "host_band_runs_inside")


def table_rows(cases: list[Case]) -> list[dict]:
    return [row for case in cases for row in case.rows()]


def _models(rows: list[dict]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        for k in row:
            if k.endswith("_error_pct") and k[: -len("_error_pct")] not in seen:
                seen.append(k[: -len("_error_pct")])
    return seen


def _fmt(v: object, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.{digits}f}"
    if isinstance(v, list):
        return ";".join(_fmt(x, digits) for x in v)
    return str(v)


def _csv(rows: list[dict]) -> str:
    models = _models(rows)
    cols = list(_BASE_COLUMNS)
    for m in models:
        cols += [f"{m}_ms", f"{m}_error_pct", f"{m}_meets_limit", f"{m}_meets_spread", f"{m}_sim_ci_pct",
                 f"{m}_run_sd_pct", f"{m}_exact_chance"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in rows:
        w.writerow([_fmt(row.get(c), 4) for c in cols])
    return buf.getvalue()


def _score(rows: list[dict], model: str) -> dict:
    """Worst |error| per metric, and how many cells meet each part of the goal."""
    worst = {}
    for metric in METRICS:
        errs = [abs(r[f"{model}_error_pct"]) for r in rows if r["metric"] == metric
                and math.isfinite(r.get(f"{model}_error_pct", math.nan))]
        worst[metric] = max(errs) if errs else math.nan
    cells = [r for r in rows if f"{model}_error_pct" in r]
    widths = [r[f"{model}_sim_ci_pct"] for r in cells if r.get(f"{model}_sim_ci_pct") is not None]
    return {"worst_abs_error_pct": worst, "cells": len(cells),
            "widest_sim_ci_pct": max(widths) if widths else None,
            "meet_limit": sum(bool(r[f"{model}_meets_limit"]) for r in cells),
            "meet_spread": sum(bool(r[f"{model}_meets_spread"]) for r in cells),
            "spread_unknown": sum(r[f"{model}_meets_spread"] is None for r in cells),
            "meet_both": sum(_ok(r, model) for r in cells), **_noise(cells, model)}


def _noise(cells: list[dict], model: str) -> dict:
    """What the real runs' own noise allows, in the model's terms (see :mod:`.compare`):
    ``expected_if_exact``: the number of cells an exact prediction would meet the limits in on average
    (None unless every cell has a run-to-run sd); ``beyond_noise``: cells missing the limit by more than
    two standard deviations of the measured mean's sampling noise (a model error that chance alone
    rarely explains); ``beyond_real_noise``: the same with the real runs' own sd (a rough one from a few
    runs, but the model's own may be too small); ``sd_ratio``: per metric, the real runs' run-to-run sd over the model's (root mean
    squares over the cells): above 1, the real system varies more than the model says; ``runs_needed``:
    the fewest runs of this length per load with which an exact prediction meets the limit with 95 %
    probability in each cell, (1.96 σ / L)² (or as many times longer runs, where the runs are much longer
    than the host's slow stretches)."""
    chances = [r.get(f"{model}_exact_chance") for r in cells]
    beyond, beyond_real, needed = 0, 0, 0
    for r in cells:
        sd, k, err = r.get(f"{model}_run_sd_pct"), r.get("repeats") or 0, r[f"{model}_error_pct"]
        missed = bool(k) and math.isfinite(err) and not r[f"{model}_meets_limit"]
        real_sd = r.get("measured_run_sd_pct", math.nan)
        if missed and math.isfinite(real_sd):
            beyond_real += abs(err) > 2 * real_sd / math.sqrt(k)
        if sd is None:
            continue
        needed = max(needed, math.ceil((1.96 * sd / ERROR_LIMITS.get(r["metric"], 15.0)) ** 2))
        if missed:
            beyond += abs(err) > 2 * sd / math.sqrt(k)
    ratio = {}
    for metric in METRICS:
        pairs = [(r["measured_run_sd_pct"], r[f"{model}_run_sd_pct"]) for r in cells if r["metric"] == metric
                 and r.get(f"{model}_run_sd_pct") is not None and math.isfinite(r.get("measured_run_sd_pct", math.nan))]
        model_ms = float(np.mean([p[1] ** 2 for p in pairs])) if pairs else 0.0
        ratio[metric] = math.sqrt(np.mean([p[0] ** 2 for p in pairs]) / model_ms) if model_ms > 0 else None
    known = cells and all(c is not None and math.isfinite(c) for c in chances)
    return {"expected_if_exact": float(sum(chances)) if known else None, "beyond_noise": beyond,
            "beyond_real_noise": beyond_real,
            "sd_ratio": ratio, "runs_needed": needed if known else None}


def _ok(row: dict, model: str) -> bool:
    """Within the limit, and within spread + margin where the spread is known."""
    return bool(row[f"{model}_meets_limit"]) and row[f"{model}_meets_spread"] is not False


def _markdown(rows: list[dict], scores: dict[str, dict], context: dict, command: str | None) -> str:
    models = list(scores)
    lines = ["# Validation: predicted vs measured latency under MLPerf LoadGen", ""]
    if command:
        intro = "Predicted again from the kept records with:" if context.get("measured") else "Reproduce with:"
        lines += [intro, "", "```", command, "```", ""]
    lines += _header_lines(context)
    lines.append("")
    lines += ["Error = (predicted − measured) / measured, measured = mean over the real runs. Spread = largest "
              "deviation of one real run from that mean. Goal: |error| ≤ "
              + ", ".join(f"{m} {ERROR_LIMITS[m]:g}%" for m in METRICS)
              + f", and |error| ≤ spread + {SPREAD_MARGIN:g} points.", ""]
    for m in models:
        s = scores[m]
        worst = ", ".join(f"{k} {_fmt(v, 1)}%" for k, v in s["worst_abs_error_pct"].items())
        spread_part = (f"within spread + {SPREAD_MARGIN:g} {s['meet_spread']}/{s['cells']}"
                       if not s["spread_unknown"] else "spread unknown (one run per load)")
        sim = (f"; the simulation's own 95% CI within ±{_fmt(s['widest_sim_ci_pct'], 1)}% in every cell"
               if s["widest_sim_ci_pct"] is not None else "")
        lines.append(f"- **{MODEL_LABELS.get(m, m)}**: worst |error| {worst}; cells within the limits "
                     f"{s['meet_limit']}/{s['cells']}, {spread_part}, goal met {s['meet_both']}/{s['cells']}{sim}")
    lines.append("")
    lines += _noise_lines(scores)
    head = ["C", "batch", "ρ target (busy)", "λ (req/s)", "metric", "measured ms (runs)", "spread %"]
    for m in models:
        head += [f"{MODEL_LABELS.get(m, m)} ms", "error %", "goal"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in rows:
        runs = ", ".join(_fmt(v, 2) for v in r["measured_runs_ms"])
        busy = f" ({_fmt(r.get('measured_busy'), 2)})" if r.get("measured_busy") is not None else ""
        cells = [str(r["replicas"]), str(r["batch_size"]),
                 (_fmt(r["utilization"], 2) if r["utilization"] else "") + busy,
                 _fmt(r["arrival_rate"], 1), r["metric"], f"{_fmt(r['measured_ms'], 3)} ({runs})",
                 _fmt(r["spread_pct"], 1) or "n/a"]
        for m in models:
            if r.get(f"{m}_unstable"):
                cells += ["unstable (ρ ≥ 1)", "n/a", "MISS"]
                continue
            cells += [_fmt(r[f"{m}_ms"], 3), _fmt(r[f"{m}_error_pct"], 1) if math.isfinite(r[f"{m}_error_pct"])
                      else "n/a", "ok" if _ok(r, m) else "MISS"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if context.get("method"):
        lines += ["## Method", "", context["method"].strip(), ""]
    if context.get("mode", "").startswith("live"):
        lines += ["## Files", "",
                  "`validation.csv` (this table), `validation.json` (every prediction's full Result, server "
                  "statistics per run, load averages), `validation.png`, `profile.json` (the isolated "
                  "serving-path profile), `profiles/calibrated_*.json` (service times under load of each "
                  "load's first repeat), `profiles/under_load_C<replicas>_b<batch>.json` (one profile per replica "
                  "count from every calibration run: back-to-back service times, and in its `under_load` block "
                  "the warm-up table, the host drift, load factors and the client-side overhead, which "
                  "`simulate --profile` and `plan` apply), `profiles/under_load_no_drift_C<replicas>_b<batch>.json` "
                  "(the same with the host drift left in the samples), "
                  "`profiles/under_load_ordered_C<replicas>_b<batch>.json` (the same with every calibration run's "
                  "service times in their measured order, `under_load.service_order`), "
                  "`raw/C<replicas>_b<batch>/rho<ρ>/<run>/mlperf_log_{summary,detail}.txt` (LoadGen's own "
                  "logs: `targeting1-2`, `repeatN-calibration`, `repeatN`).", ""]
    lines += _host_level_lines(rows, context.get("host_level"))
    lines += _band_lines(rows, context.get("recommended_variant"))
    lines += _drift_scale_lines(context.get("drift_by_scale"))
    if context.get("calibration_points"):
        lines += ["## Calibration runs (one short live run before each measured run)", ""]
        lines.append("| C | ρ | λ (req/s) | busy fraction | back-to-back service mean (ms) | client overhead (ms) | "
                     "slowdown by busy workers | warm-up factor after 1 / 4 / 16 ms idle | host drift sd |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for c, pts in sorted(context["calibration_points"].items(), key=lambda kv: int(kv[0])):
            for p in pts:
                slow = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(p["slowdown"].items()))
                lines.append(f"| {c} | {p['utilization']:g} | {p['arrival_rate']:.1f} | {_fmt(p.get('busy'))} | "
                             f"{p['mean_ms']:.3f} | {p['overhead_ms']:.3f} | {slow} | {_warmup_cells(p.get('warmup'))} | "
                             f"{_fmt(p.get('drift_sd'))} |")
        lines.append("")
    return "\n".join(lines) + "\n"


_RUN_CONTEXT = (("started_at", "Started (UTC)"), ("finished_at", "Finished (UTC)"), ("machine", "Machine"),
                ("versions", "Software"), ("loadavg_before", "Load average before (1/5/15 min)"),
                ("loadavg_after", "Load average after (1/5/15 min)"))


def _header_lines(context: dict) -> list[str]:
    """Where, when and how: the runs' own context, and for a campaign predicted again (``measured``: what
    its live run kept) both the measurement's and the prediction's."""
    measured = context.get("measured") or {}
    if measured:
        lines = ["- Runs measured with: " + (f"`{measured['command']}`" if measured.get("command") else "(not kept)")]
        lines += [f"- {label}: {_value(measured[key])}" for key, label in _RUN_CONTEXT if measured.get(key) is not None]
        lines += [f"- Predicted again (UTC): {context['started_at']}" if context.get("started_at") else "",
                  f"- Software predicting: {context['versions']}" if context.get("versions") else ""]
        lines = [line for line in lines if line]
    else:
        lines = [f"- {label}: {_value(context[key])}" for key, label in _RUN_CONTEXT if context.get(key) is not None]
    for key, label in (("profile", "Profile"),
                       ("isolated_mean_ms", "Isolated serving-path mean service time with C requests in flight "
                                            "(the profile's concurrency sweep, threads of one process)"),
                       ("mode", "Mode")):
        if context.get(key) is not None:
            lines.append(f"- {label}: {_value(context[key])}")
    return lines


def _value(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"C={k}: {_fmt(v)} ms" for k, v in value.items())
    return _fmt(value) if isinstance(value, float) else str(value)


def _noise_lines(scores: dict[str, dict]) -> list[str]:
    """The section on what the real runs' own noise allows (nothing when no model has run-to-run sds)."""
    shown = [m for m, s in scores.items() if s["expected_if_exact"] is not None]
    if not shown:
        return []
    cells = scores[shown[0]]["cells"]
    lines = ["### What the real runs' own noise allows", "",
             "Each measured value is a mean over a few real runs, each a random realisation, so even an exact "
             "prediction misses by that mean's sampling noise. Each model's simulation says how much one run "
             "varies (its replications are runs as long as the real ones): *exact would meet* is the number of "
             f"cells (of {cells}) an exact prediction would meet the limits in on average, by that model's own "
             "run-to-run sd; *beyond noise* counts the cells that miss by more than two sd of the measured mean, "
             "by the model's run-to-run sd and by the real runs' own (a rough estimate from a few runs); "
             "*real / model run sd* compares the real runs' run-to-run sd with the model's (above 1: the real "
             "system varies more than the model says); *runs needed* is how many runs of this length per load "
             "would let an exact prediction meet the limit with 95% probability in each cell.", "",
             "| prediction | goal met | exact would meet | beyond noise: model's / real sd | real / model run sd: "
             + ", ".join(METRICS) + " | runs needed |", "|---|---|---|---|---|---|"]
    for m in shown:
        s = scores[m]
        ratios = ", ".join(_fmt(v, 2) or "n/a" for v in s["sd_ratio"].values())
        lines.append(f"| {MODEL_LABELS.get(m, m)} | {s['meet_both']} | {_fmt(s['expected_if_exact'], 1)} | "
                     f"{s['beyond_noise']} / {s['beyond_real_noise']} | {ratios} | {s['runs_needed']} |")
    return lines + [""]


_LEVEL_MODELS = ("under_load", "under_load_ordered")  # the profiles simulate and plan use


def _host_level_lines(rows: list[dict], levels: dict | None) -> list[str]:
    """Each load's measured runs against the calibration runs' load line, beside the under-load profiles'
    errors (nothing without levels)."""
    cells = [r for r in rows if r["metric"] == "mean" and r.get("measured_level_pct") is not None]
    if not cells:
        return []
    models = [m for m in _LEVEL_MODELS if f"{m}_error_pct" in cells[0]]
    own = "; ".join(f"C = {c}: " + (f"{v['sd'] * 100:.1f}%" if v.get("sd") is not None else "n/a")
                    + (f" (episodes set aside: {', '.join(f'{e * 100:+.1f}%' for e in v['episodes'])})"
                       if v.get("episodes") else "")
                    for c, v in sorted((levels or {}).items(), key=lambda kv: int(kv[0])))
    lines = ["## Host level: measured runs against the calibration runs", "",
             "Each load's measured runs' mean service time (warm-up deflated, from their own server records) over "
             "the calibration runs' least-squares line at their load, minus 1, averaged over the runs: how much "
             "slower (> 0) or faster the host was while it was measured than the calibration said. A diagnostic, "
             "not an input: near saturation a few percent of service time moves the queue a lot, so a miss in the "
             "direction of the level is the host changing between runs, which no earlier measurement foresees. "
             "The calibration runs' own level sd beyond their sampling noise: " + (own or "n/a") + ".", "",
             "| C | ρ | measured level % | " + " | ".join(f"{MODEL_LABELS.get(m, m)}: error mean / p99 %"
                                                     for m in models) + " |",
             "|---|---|---|" + "---|" * len(models)]
    p99 = {(r["replicas"], r["utilization"]): r for r in rows if r["metric"] == "p99"}
    for r in cells:
        errs = [f"{_fmt(r[f'{m}_error_pct'], 1)} / {_fmt(p99[(r['replicas'], r['utilization'])][f'{m}_error_pct'], 1)}"
                for m in models]
        lines.append(f"| {r['replicas']} | {_fmt(r['utilization'], 2)} | {r['measured_level_pct']:+.1f} | "
                     + " | ".join(errs) + " |")
    return lines + [""]


def _band_lines(rows: list[dict], variant: str | None) -> list[str]:
    """How sure: the recommended profile's host-level band against what was measured (nothing without)."""
    cells = [r for r in rows if r.get("host_band_low_ms") is not None]
    if not cells:
        return []
    covered = sum(bool(r["host_band_covers"]) for r in cells)
    runs_in = sum(r["host_band_runs_inside"] for r in cells)
    runs = sum(r["repeats"] for r in cells)
    sds = sorted({round(r["host_band_sd_pct"], 2) for r in cells})
    lines = ["## How sure: the host-level band", "",
             f"The {MODEL_LABELS.get(variant, variant)} simulated again with every service time × (1 ∓ 2 sd), sd "
             f"the calibration runs' host level sd beyond their noise ({', '.join(f'{s:g}%' for s in sds)}; "
             "`under_load.host_level` in the profile, which `simulate` reads to print the same band and `plan "
             "--host-margin` to judge an SLO on a slow host). It is what a prediction can say before the runs about "
             "how far the host alone may move them; it leaves out a run's own randomness (the model's run-to-run "
             "sd above), so single runs fall outside it more often than 5 %. "
             f"Measured mean inside the band: {covered} of {len(cells)} cells; single runs inside their own "
             f"run's band: {runs_in} of {runs}.", "",
             "| C | ρ | metric | measured ms | band ms | inside | runs inside |", "|---|---|---|---|---|---|---|"]
    for r in cells:
        lines.append(f"| {r['replicas']} | {_fmt(r['utilization'], 2)} | {r['metric']} | {_fmt(r['measured_ms'])} | "
                     f"{_fmt(r['host_band_low_ms'])} – {_fmt(r['host_band_high_ms']) or 'unstable'} | "
                     f"{_fmt(r['host_band_covers'])} | {r['host_band_runs_inside']} / {r['repeats']} |")
    return lines + [""]


def _drift_scale_lines(scales: dict | None) -> list[str]:
    """The host drift by time scale, measured and calibration runs, beside what the engines' independent
    0.25-s windows would give at each scale."""
    if not scales:
        return []
    windows = sorted({float(w) for kinds in scales.values() for by_w in kinds.values() for w in by_w})
    if not windows:
        return []
    base = windows[0]
    lines = ["## Host drift by time scale", "",
             "The standard deviation of the mean service time (warm-up and contention deflated, in units of the "
             "run's mean) over windows of each length, sampling noise taken out, root mean square over the runs. "
             f"The engines draw an independent factor per {base:g}-s window, which gives sd({base:g} s) · "
             f"√({base:g} / w) at w seconds (in brackets): where the measured sd declines more slowly, the host "
             "has slow stretches lasting seconds that the model lacks, and real runs differ from one another "
             "more than the simulated ones.", "",
             "| C | runs | " + " | ".join(f"{w:g} s" for w in windows) + " |", "|---|---|" + "---|" * len(windows)]
    for c, kinds in sorted(scales.items(), key=lambda kv: int(kv[0])):
        for kind, by_w in kinds.items():
            by_w = {float(w): v for w, v in by_w.items()}
            first = by_w.get(base)
            cells = []
            for w in windows:
                v = by_w.get(w)
                white = f" ({first * math.sqrt(base / w):.3f})" if first is not None and w > base else ""
                cells.append(f"{v:.3f}{white}" if v is not None else "n/a")
            lines.append(f"| {c} | {kind} | " + " | ".join(cells) + " |")
    return lines + [""]


def _warmup_cells(table: dict | None) -> str:
    """The warm-up table read at 1, 4 and 16 ms of idle time ("none" without one)."""
    if not table or not table.get("idle_s"):
        return "none"
    xs, fs = np.asarray(table["idle_s"], dtype=float), np.asarray(table["factor"], dtype=float)
    return " / ".join(f"{warmup_factor(xs, fs, t):.3f}" for t in (0.001, 0.004, 0.016))


def _plot(rows: list[dict]) -> bytes:
    """Top: latencies (measured mean and runs, predictions), log scale. Bottom: errors in percent, with
    the goal's limit (dashed) and the real runs' spread + 5 points (grey band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = _models(rows)
    fig, axes = plt.subplots(2, len(METRICS), figsize=(4.4 * len(METRICS), 8.0), sharex="col",
                             gridspec_kw={"height_ratios": [3, 2]})
    markers = {"calibrated": ("o", "tab:blue"), "isolated": ("x", "tab:orange"), "profile": ("s", "tab:green"),
               "replay": ("+", "tab:gray"), "ordered": ("v", "tab:purple"),
               "under_load": ("D", "tab:red"), "under_load_no_drift": ("*", "tab:brown"),
               "neighbour": ("P", "tab:olive"), "under_load_ordered": ("h", "tab:pink")}
    width = 0.8 / max(len(models), 1)
    for col, metric in enumerate(METRICS):
        ax, ax_err = axes[0, col], axes[1, col]
        sel = [r for r in rows if r["metric"] == metric]
        labels = [f"C{r['replicas']} ρ{r['utilization']:g}" if r["utilization"] else f"{r['arrival_rate']:.0f}/s"
                  for r in sel]
        xs = np.arange(len(sel))
        for x, r in zip(xs, sel):
            runs = r["measured_runs_ms"]
            ax.plot([x] * len(runs), runs, "_", color="black", markersize=10)
            sp = r["spread_pct"]
            if sp is not None and math.isfinite(sp):
                ax_err.fill_between([x - 0.45, x + 0.45], -(sp + SPREAD_MARGIN), sp + SPREAD_MARGIN,
                                    color="0.85", zorder=0)
        ax.plot(xs, [r["measured_ms"] for r in sel], "D", color="black", label="measured: mean (◆), each run (—)")
        for i, m in enumerate(models):
            mk, colr = markers.get(m, ("^", "tab:red"))
            ax.plot(xs, [r[f"{m}_ms"] for r in sel], mk, color=colr, label=MODEL_LABELS.get(m, m), alpha=0.85)
            errs = np.array([r[f"{m}_error_pct"] for r in sel], dtype=float)
            ax_err.bar(xs - 0.4 + width * (i + 0.5), np.clip(np.nan_to_num(errs, nan=0.0), -100, 100), width,
                       color=colr, alpha=0.85)
        limit = ERROR_LIMITS.get(metric, 15.0)
        for y in (-limit, limit):
            ax_err.axhline(y, color="black", linestyle="--", linewidth=0.8)
        ax_err.axhline(0, color="black", linewidth=0.6)
        ax.set_yscale("log")
        ax.margins(x=0.15)
        ax.set_title(f"{metric} latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax_err.set_ylim(-100, 100)
        ax_err.set_ylabel("error % (clipped at ±100)" if col == 0 else "")
        ax_err.set_xticks(xs)
        ax_err.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        ax_err.grid(True, axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].set_title("error: -- goal limit, grey = real spread + 5", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(cases: list[Case], context: dict, outdir: str | os.PathLike,
                 command: str | None = None) -> dict[str, Path]:
    """Write the table (CSV, Markdown), the plot and a JSON of everything; return the paths."""
    out = Path(outdir)
    rows = table_rows(cases)
    scores = {m: _score(rows, m) for m in _models(rows)}
    paths = {"csv": out / "validation.csv", "markdown": out / "validation.md", "plot": out / "validation.png",
             "json": out / "validation.json"}
    atomic_write_text(paths["csv"], _csv(rows))
    atomic_write_text(paths["markdown"], _markdown(rows, scores, context, command))
    atomic_write_bytes(paths["plot"], _plot(rows))
    doc = {"command": command, "context": {k: v for k, v in context.items() if k != "method"},
           "scores": scores, "rows": rows,
           "predictions": [{"replicas": c.replicas, "utilization": c.utilization, "arrival_rates": c.arrival_rates,
                            "summaries": c.summary_paths, "server": c.server,
                            "results": {m: [r.to_dict() for r in rs] for m, rs in c.predictions.items()}}
                           for c in cases]}
    atomic_write_json(paths["json"], _json_safe(doc))
    return paths


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return _json_safe(obj.item())
    return obj
