"""Render a plan into a report folder: ``index.html`` (self-contained), ``report.md`` and the figures.

The HTML embeds its figures as ``data:`` URIs and loads nothing from anywhere (no fonts, scripts or
stylesheets from a network; a Content-Security-Policy says so), so it reads offline and prints (print
CSS included). The Markdown holds the same content and links the PNG files written beside it (SVG
copies too). Every file is written atomically through :func:`simulator.io.safe_join`, figures first and
the two documents last, so an ``index.html`` never points at a figure that is not there yet.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import atomic_write_bytes, safe_join
from . import plots
from .escape import Raw, md_code_block, md_finalize
from .load import validate_plan
from .view import NOT_AVAILABLE, Num, build_view

__all__ = ["FIGURES", "build_report", "render_html", "render_markdown"]

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    caption: str
    missing: str


FIGURES = (
    FigureSpec("latency_vs_load", "Latency vs load per hardware",
               "The SLO percentile of each hardware's cheapest configuration meeting the SLO (replicas, "
               "batching, cache and variant fixed) as the arrival rate grows; bands are 95% confidence "
               "intervals across replications; dashed: the SLO; dotted: the planned load.",
               "the plan holds no latency-vs-load sweep and none was simulated for this report"),
    FigureSpec("pareto", "Cost vs p99: the Pareto frontier",
               "Configurations meeting the SLO by hourly cost and p99 latency (each at its fewest passing "
               "replicas); the step line joins those no other one beats on both.",
               "the plan holds no candidates with cost and p99"),
    FigureSpec("cost_per_million", "Cost per million requests by hardware",
               "Cost of serving one million requests on each hardware's cheapest configuration that "
               "meets the SLO at the planned load.",
               "the plan holds no per-hardware cost per million requests"),
    FigureSpec("latency_cdf", "Latency CDF at the planned load",
               "Distribution of per-request latency of the recommended configuration at the planned load.",
               "no per-request latencies of the recommended configuration (the plan has none and it "
               "was not re-simulated for this report)"),
    FigureSpec("sensitivity", "Sensitivity to batch size, cache and variant",
               "The SLO percentile (95% CI) when one setting of the recommendation changes and the rest, "
               "replicas included, stay.",
               "no configurations that differ from the recommendation in one of these settings only"),
)


def _env(markdown: bool):
    import jinja2

    kw = {"loader": jinja2.FileSystemLoader(str(TEMPLATES)), "undefined": jinja2.StrictUndefined,
          "trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": True}
    if markdown:
        env = jinja2.Environment(autoescape=False, finalize=md_finalize, **kw)
        env.filters["code"] = md_code_block
    else:
        env = jinja2.Environment(autoescape=True, **kw)
    env.globals["NA"] = NOT_AVAILABLE
    env.tests["num"] = lambda v: isinstance(v, Num)
    env.filters["ms"] = lambda v: NOT_AVAILABLE if v is None else f"{v:.2f}"
    return env


def render_html(view, figures: list[dict]) -> str:
    """The self-contained HTML document (jinja2 autoescape on: plan text is never markup)."""
    return _env(False).get_template("report.html.j2").render(r=view, figures=figures)


def render_markdown(view, figures: list[dict]) -> str:
    """The Markdown document; figures are linked as the PNG files beside it."""
    md_figures = [dict(f, link=Raw(f"![{f['title']}]({f['png']})") if f.get("png") else None)
                  for f in figures]
    return _env(True).get_template("report.md.j2").render(r=view, figures=md_figures)


def build_report(plan: dict, output_dir: str | os.PathLike, *, resimulation=None,
                 notes: list[str] | None = None) -> dict[str, Path]:
    """Write the report of ``plan`` into ``output_dir`` (created if missing); return the files written.

    Parameters
    ----------
    plan : dict
        A plan document (``simulator plan --json``), checked with :func:`validate_plan` first.
    output_dir : path
        Folder of the report; nothing is written outside it.
    resimulation : Resimulation, optional
        The report's own simulations (:func:`simulator.report.resimulate.resimulate`): per-request
        latencies of the recommendation, latency-vs-load sweeps, sensitivity. Without it those figures
        come from the plan when it has the data, else they say "not available".
    notes : list of str, optional
        Remarks shown at the top of the report (e.g. "generated from a fixture").
    """
    validate_plan(plan)
    view = build_view(plan)
    view.notes = list(notes or [])
    rec = plan.get("recommendation")
    slo_ms, slo_key = view.slo["latency"].value, view.slo["key"]
    candidates = plan.get("candidates") or []
    per_hw = plan.get("per_hardware") or []

    latencies, quantiles, cdf_note = None, None, None
    curves = plots.load_curves_from_plan(per_hw)
    curves_note = "from the plan" if curves else None
    sensitivity = plots.sensitivity_series(candidates, rec)
    view.sensitivity_source = "the plan's candidates (same hardware and replicas)"
    if resimulation is not None:
        view.resimulation = resimulation.to_dict()
        if resimulation.latencies_ms is not None and len(resimulation.latencies_ms):
            latencies = np.asarray(resimulation.latencies_ms, dtype=float)
            how = resimulation.recommendation or {}
            cdf_note = (f"Per-request latencies of replication 1 ({latencies.size:,} requests after warm-up) "
                        f"of the recommendation's own simulate_args (engine {how.get('engine', '?')}, "
                        f"seed {how.get('seed', '?')}), simulated by 'simulator report'.")
        quantiles = resimulation.quantiles_ms
        if resimulation.load_curves:
            curves = list(resimulation.load_curves.items())
            curves_note = f"Sweep {resimulation.description}."
        if resimulation.sensitivity:
            sensitivity = resimulation.sensitivity
            view.sensitivity_source = (f"{resimulation.sensitivity_description or resimulation.description}; "
                                       "replicas kept at the recommendation's "
                                       f"{rec.get('replicas') if rec else '?'}")
    if latencies is None and rec is not None:
        for key in ("latencies_ms", "latency_samples_ms"):
            if isinstance(rec.get(key), list) and rec[key]:
                latencies = np.asarray(rec[key], dtype=float)
                cdf_note = f"Latencies from the plan's recommendation.{key}."
                break
    view.sensitivity = sensitivity

    figs = {
        "latency_vs_load": plots.latency_vs_load_figure(curves, slo_ms, slo_key, view.arrival_rate.value),
        "pareto": plots.pareto_figure(candidates, plan.get("pareto") or [], slo_ms, rec, slo_key),
        "cost_per_million": plots.cost_per_million_figure(per_hw, (rec or {}).get("hardware")),
        "latency_cdf": plots.latency_cdf_figure(latencies, None if latencies is not None else quantiles,
                                                slo_ms, slo_key, "recommended configuration"),
        "sensitivity": plots.sensitivity_figure(sensitivity, slo_ms, slo_key),
    }
    figure_notes = {"latency_vs_load": curves_note, "latency_cdf": cdf_note,
                    "sensitivity": f"Source: {view.sensitivity_source}." if sensitivity else None}

    # Everything is rendered in memory first: a failure above leaves no folder behind.
    rendered: list[tuple[str, bytes]] = []
    entries = []
    for spec in FIGURES:
        fig = figs[spec.name]
        entry = {"name": spec.name, "title": spec.title, "caption": spec.caption, "missing": spec.missing,
                 "png": None, "svg": None, "data_uri": None, "note": figure_notes.get(spec.name)}
        if fig is not None:
            png, svg = plots.figure_bytes(fig)
            rendered += [(f"{spec.name}.png", png), (f"{spec.name}.svg", svg)]
            entry.update(png=f"{spec.name}.png", svg=f"{spec.name}.svg",
                         data_uri="data:image/png;base64," + base64.b64encode(png).decode("ascii"))
        entries.append(entry)
    markdown = render_markdown(view, entries)
    html = render_html(view, entries)

    files: list[tuple[str, bytes]] = [*rendered, ("plan.json", _json_bytes(plan))]
    if resimulation is not None:
        files.append(("simulated.json", _json_bytes(view.resimulation)))
    files += [("report.md", markdown.encode("utf-8")), ("index.html", html.encode("utf-8"))]
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    # Every target is checked before the first write: a link planted in the folder that points
    # elsewhere stops the report before anything is written through it.
    targets = {name: safe_join(out, name) for name, _ in files}
    return {name: atomic_write_bytes(targets[name], data) for name, data in files}


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, allow_nan=False) + "\n").encode("utf-8")
