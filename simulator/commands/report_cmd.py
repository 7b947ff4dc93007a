"""``simulator report``: a capacity plan as a self-contained HTML report, Markdown and figures."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="render a plan (simulator plan --json) as an HTML + Markdown report",
                       description="Write index.html (self-contained: figures embedded, nothing loaded from "
                                   "a network, printable), report.md and the figures (PNG and SVG) of a plan "
                                   "into one folder. By default the recommendation and each hardware's "
                                   "configuration are also simulated for the latency CDF, latency-vs-load "
                                   "and sensitivity figures, which the plan JSON holds no data for.")
    p.add_argument("--plan", required=True, metavar="PLAN.json", help="plan JSON (simulator plan --json --output)")
    p.add_argument("--output", required=True, metavar="DIR", help="report folder (created; files in it replaced)")
    p.add_argument("--no-simulate", action="store_true",
                   help="only what the plan holds: no simulations (those figures say 'not available')")
    p.add_argument("--requests", type=int, default=20_000, help="requests per replication of the report's "
                   "simulations (default 20000)")
    p.add_argument("--replications", type=int, default=5, help="replications per point (default 5)")
    p.add_argument("--load-points", type=int, default=8, help="arrival rates per latency-vs-load curve (default 8)")
    p.add_argument("--engine", choices=("auto", "simpy", "fast"), default="auto",
                   help="engine of the report's simulations (default auto)")
    p.add_argument("--note", action="append", default=[], help="a remark shown at the top of the report")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..report import build_report, load_plan
    from ..validation import check_integer

    plan = load_plan(args.plan)  # before anything is created: a bad plan leaves no folder behind
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {str(out)!r} exists and is not a directory")
    check_integer("requests", args.requests, minimum=100, maximum=10**8)
    check_integer("replications", args.replications, minimum=2, maximum=1000)
    check_integer("load_points", args.load_points, minimum=2, maximum=100)

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"report: {msg}", file=sys.stderr)

    resim = None
    if not args.no_simulate:
        from ..report.resimulate import ResimulationSettings, resimulate

        resim = resimulate(plan, ResimulationSettings(requests=args.requests, replications=args.replications,
                                                      load_points=args.load_points, engine=args.engine),
                           progress=progress)
    written = build_report(plan, out, resimulation=resim, notes=args.note)
    print(f"report written to {out / 'index.html'} and {out / 'report.md'} ({len(written)} files)")
    return 0
