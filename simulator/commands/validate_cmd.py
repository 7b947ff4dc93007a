"""``simulator validate``: predicted latency against a real server under MLPerf LoadGen.

    simulator validate MODEL --replicas 1,2 --utilizations 0.5,0.7,0.85 [--batch-size B
                       --batch-timeout-ms T] [--repeats 3] [--duration-s 20] [--calibration-s 20]
                       [--server process|thread] [--profile P] [--output reports/validation/]
    simulator validate --loadgen-summary mlperf_log_summary.txt [...] --profile P --replicas C
                       [--batch-size B --batch-timeout-ms T] [--overhead-ms X] [--output DIR]

The first form profiles MODEL (serving path, concurrency sweep), serves it from a fresh process with C
model replicas (worker processes, or threads with --server thread) behind a request queue, drives it with LoadGen's Server scenario at each load (repeated),
predicts every run with the simulator and writes validation.{csv,md,png,json} plus LoadGen's logs. The
second form predicts LoadGen runs measured elsewhere from their summaries and a profile.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path

from ..errors import InputError
from ..validation import check_positive

__all__ = ["add_parser", "run"]

DEFAULT_OUTPUT = "reports/validation"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``validate`` on ``subparsers``; the handler is :func:`run`."""
    p = subparsers.add_parser(
        "validate", help="compare predicted latency with a real server under MLPerf LoadGen",
        description="Serve a model under MLPerf LoadGen's Server scenario (Poisson arrivals) and compare the "
                    "measured latencies with the simulator's predictions; or predict LoadGen summaries "
                    "measured elsewhere (--loadgen-summary).")
    p.add_argument("model", nargs="?", metavar="MODEL_FILE|zoo:NAME",
                   help="model to serve: .keras/.h5/.tflite file, SavedModel directory or zoo:<name>")
    p.add_argument("--replicas", default="1", metavar="LIST",
                   help="worker threads of the server; several values (1,2) = one server each (default 1)")
    p.add_argument("--utilizations", default="0.5,0.7,0.85", metavar="LIST",
                   help="target per-replica loads rho in (0, 1); LoadGen rate = rho*C/E[S] (default 0.5,0.7,0.85)")
    p.add_argument("--batch-size", type=int, default=1, help="dynamic batching: largest batch (default 1)")
    p.add_argument("--batch-timeout-ms", type=float, default=0.0,
                   help="longest the oldest request waits for its batch to fill (ms, default 0)")
    p.add_argument("--repeats", type=int, default=3, help="real runs per load (default 3)")
    p.add_argument("--duration-s", type=float, default=20.0, help="LoadGen min_duration per run (s, default 20)")
    p.add_argument("--min-queries", type=int, default=100, help="LoadGen min_query_count (default 100)")
    p.add_argument("--calibration-s", type=float, default=None,
                   help="live calibration runs (s, default: as long as --duration-s): two per load that find "
                        "the rate giving utilization rho, and one before each measured run that measures "
                        "service times under load (0 = nominal rates, isolated profile only). As long as the "
                        "measured runs predicted best: their slow stretches last seconds")
    p.add_argument("--profile", metavar="PATH", help="profile JSON: skip profiling (live) / the profile to "
                                                     "predict with (--loadgen-summary)")
    p.add_argument("--profile-seconds", type=float, default=5.0, help="profiling budget per point (s, default 5)")
    p.add_argument("--loadgen-summary", nargs="+", metavar="FILE",
                   help="mlperf_log_summary.txt files measured elsewhere (Server scenario); runs with the "
                        "same target_qps are repeats")
    p.add_argument("--overhead-ms", type=float,
                   help="--loadgen-summary: client-side latency outside the server (ms; default: the "
                        "calibrated profile's, else 0)")
    p.add_argument("--output", "-o", default=DEFAULT_OUTPUT, metavar="DIR",
                   help=f"folder for the report and LoadGen logs (default {DEFAULT_OUTPUT}/)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, inputs, LoadGen schedules, simulations")
    p.add_argument("--sim-requests", type=int,
                   help="simulated requests per replication (default 0: as many as the measured run had, so "
                        "that a replication is one simulated run, as the real runs' percentiles are averaged; "
                        "--reevaluate: the kept campaign's)")
    p.add_argument("--sim-replications", type=int,
                   help="replications per prediction (default 800: the p99 of a prediction at 0.8 busy is then "
                        "within about 3 %% at 95 %% confidence; --reevaluate: the kept campaign's)")
    p.add_argument("--engine", choices=("auto", "simpy", "fast"), default="auto", help="simulation engine")
    p.add_argument("--server", choices=("process", "thread"), default="process",
                   help="replicas as worker processes (default; what Python model servers deploy) or as "
                        "threads of one process (they share the GIL)")
    p.add_argument("--in-process", action="store_true",
                   help="run the server in this process instead of a fresh child process")
    p.add_argument("--keep-records", action="store_true",
                   help="keep every run's server timestamps (raw/.../server_records.npz, a few MB in all) so "
                        "that --reevaluate can predict the same live data again")
    p.add_argument("--reevaluate", metavar="DIR",
                   help="predict a campaign kept with --keep-records again, with this version's model, and "
                        "write the report into --output (no server, no LoadGen)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)
    return p


def _floats(name: str, text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
    if not vals:
        raise InputError(f"{name} must list at least one number, got {text!r}")
    return vals


def _ints(name: str, text: str) -> tuple[int, ...]:
    out = []
    for v in _floats(name, text):
        if not (math.isfinite(v) and v.is_integer()):
            raise InputError(f"{name} must be integers, got {text!r}")
        out.append(int(v))
    return tuple(out)


def _calibration_s(args: argparse.Namespace) -> float:
    """``--calibration-s``, by default as long as ``--duration-s``."""
    return args.calibration_s if args.calibration_s is not None else args.duration_s


def _command(args: argparse.Namespace) -> str:
    """The canonical command line that reproduces this run."""
    if args.reevaluate:
        return shlex.join(["simulator", "validate", "--reevaluate", args.reevaluate, "--output", args.output])
    if args.loadgen_summary:
        parts = ["simulator", "validate", "--loadgen-summary", *args.loadgen_summary, "--profile", args.profile,
                 "--replicas", args.replicas]
        if args.overhead_ms is not None:
            parts += ["--overhead-ms", f"{args.overhead_ms:g}"]
    else:
        parts = ["simulator", "validate", args.model, "--replicas", args.replicas, "--utilizations",
                 args.utilizations, "--repeats", str(args.repeats), "--duration-s", f"{args.duration_s:g}",
                 "--calibration-s", f"{_calibration_s(args):g}"]
        if args.profile:
            parts += ["--profile", args.profile]
        if args.min_queries != 100:
            parts += ["--min-queries", str(args.min_queries)]
        if args.profile_seconds != 5.0:
            parts += ["--profile-seconds", f"{args.profile_seconds:g}"]
        if args.server != "process":
            parts += ["--server", args.server]
        if args.keep_records:
            parts += ["--keep-records"]
    if args.batch_size != 1:
        parts += ["--batch-size", str(args.batch_size), "--batch-timeout-ms", f"{args.batch_timeout_ms:g}"]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.sim_requests is not None:
        parts += ["--sim-requests", str(args.sim_requests)]
    if args.sim_replications is not None:
        parts += ["--sim-replications", str(args.sim_replications)]
    parts += ["--output", args.output]
    return shlex.join(parts)


def _machine() -> str:
    from ..profiling.environment import cpu_name

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return f"{cpu_name()}, {cores} cores"


def _versions() -> str:
    from importlib import metadata

    out = []
    for dist in ("serving-simulator", "mlcommons-loadgen", "tensorflow-cpu", "tensorflow", "numpy", "simpy"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(out)


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def run(args: argparse.Namespace) -> int:
    from ..profiling.environment import utc_now
    from ..validate import METHOD
    from ..validate.harness import ValidationConfig, compare_summaries, run_validation
    from ..validate.report import write_report
    from ..validate.summary import read_summary

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {str(out)!r} exists and is not a directory")
    replicas = _ints("replicas", args.replicas)
    if not (math.isfinite(args.batch_timeout_ms) and args.batch_timeout_ms >= 0):
        raise InputError(f"batch_timeout must be a finite number >= 0 ms, got {args.batch_timeout_ms}")
    context = {"started_at": utc_now(), "machine": _machine(), "loadavg_before": _loadavg(),
               "versions": _versions()}
    progress = None if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    default = {f.name: f.default for f in fields(ValidationConfig)}  # the budget a campaign uses unless told
    sim_requests = default["sim_requests"] if args.sim_requests is None else args.sim_requests
    sim_replications = default["sim_replications"] if args.sim_replications is None else args.sim_replications
    if args.reevaluate:
        from ..validate.harness import evaluate, load_campaign, load_live

        if args.model or args.loadgen_summary:
            raise InputError("--reevaluate DIR takes no MODEL and no --loadgen-summary: the campaign is in DIR")
        config, live = load_live(args.reevaluate)
        budget = {k: v for k, v in (("sim_requests", args.sim_requests), ("sim_replications", args.sim_replications))
                  if v is not None}
        cases, ctx = evaluate(replace(config, **budget), live, out, progress)
        context.update(ctx)
        context["mode"] = (f"re-evaluated from the server records kept in {args.reevaluate} "
                           "(live server under MLPerf LoadGen, Server scenario)")
        context["measured"] = load_campaign(args.reevaluate)
    elif args.loadgen_summary:
        if args.model:
            raise InputError("give either a MODEL to serve or --loadgen-summary files, not both")
        if not args.profile:
            raise InputError("--loadgen-summary needs --profile PATH (the service times to predict with)")
        if len(replicas) != 1:
            raise InputError(f"--loadgen-summary needs one --replicas value (the server's), got {args.replicas!r}")
        overhead = None
        if args.overhead_ms is not None:
            overhead = check_positive("overhead_ms", args.overhead_ms) * 1e-3 if args.overhead_ms else 0.0
        summaries = [(f, read_summary(f)) for f in args.loadgen_summary]
        cases = compare_summaries(summaries, args.profile, replicas[0], batch_size=args.batch_size,
                                  batch_timeout_s=args.batch_timeout_ms * 1e-3, overhead_s=overhead,
                                  requests=sim_requests, replications=sim_replications,
                                  seed=args.seed, engine=args.engine)
        context.update({"mode": "LoadGen summaries measured elsewhere", "profile": args.profile})
    else:
        if not args.model:
            raise InputError("give a MODEL to serve (a model file or zoo:<name>) or --loadgen-summary FILE")
        if args.overhead_ms is not None:
            raise InputError("--overhead-ms applies to --loadgen-summary; a live run measures the overhead")
        if args.model.startswith("zoo:"):
            from ..profiling.zoo import get_entry

            get_entry(args.model)
        elif not Path(args.model).exists():
            raise InputError(f"model file {args.model!r} does not exist (or give a zoo model, e.g. zoo:tiny_cnn)")
        config = ValidationConfig(
            args.model, replicas=replicas, utilizations=_floats("utilizations", args.utilizations),
            batch_size=args.batch_size, batch_timeout_s=args.batch_timeout_ms * 1e-3, repeats=args.repeats,
            duration_s=args.duration_s, calibration_s=_calibration_s(args),
            profile=args.profile, profile_seconds=args.profile_seconds, min_query_count=args.min_queries,
            seed=args.seed, sim_requests=sim_requests, sim_replications=sim_replications,
            engine=args.engine, server=args.server, keep_records=args.keep_records)
        if args.profile and not Path(args.profile).is_file():
            raise InputError(f"profile {args.profile!r} does not exist")
        cases, ctx = run_validation(config, out, progress, in_child=not args.in_process)
        context.update(ctx)
        context["mode"] = "live server under MLPerf LoadGen (Server scenario)"
    context.update({"finished_at": utc_now(), "loadavg_after": _loadavg(), "method": METHOD})
    out.mkdir(parents=True, exist_ok=True)
    command = _command(args)
    paths = write_report(cases, context, out, command)
    if not args.reevaluate and not args.loadgen_summary and args.keep_records:
        from ..validate.harness import save_campaign

        save_campaign(out, context | {"command": command})
    if args.json:
        import json

        print(json.dumps(json.loads(paths["json"].read_text(encoding="utf-8"))))
        return 0
    print(paths["markdown"].read_text(encoding="utf-8").split("## Method")[0].rstrip())
    print()
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    for line in _profile_lines(context):
        print(line)
    return 0


def _profile_lines(context: dict) -> list[str]:
    """Which under-load profile to use (``recommended_variant``, see
    :func:`~simulator.validate.harness.recommended_variant`), and the other one."""
    long_runs = context.get("recommended_variant") == "under_load_ordered"
    ordered = sorted((context.get("under_load_ordered_profiles") or {}).items())
    windows = sorted((context.get("under_load_profiles") or {}).items())
    use, other = (ordered, windows) if long_runs else (windows, ordered)
    why = ("calibration runs as long as the measured ones: service times in measured order"
           if long_runs else "calibration runs shorter than the measured ones: drift windows")
    lines = [f"under-load profile, {c} replica(s) (use with simulate --profile / a catalog entry; {why}): {path}"
             for c, path in use]
    lines += [f"  the other under-load profile, {c} replica(s): {path}" for c, path in other]
    return lines
