"""``simulator profile``: measure a model's service times, import them from CSV, or show a profile.

    simulator profile MODEL --output PATH [--variant V] [--batch-sizes 1,2,4,8] [--concurrency 1,2]
                      [--threads 1,2] [--serving-path] [--min-samples N] [--max-seconds S] [--rel-ci F]
    simulator profile --from-csv FILE --output PATH
    simulator profile show PATH [--plot FILE.png] [--fit]

MODEL is a .keras/.h5 file, a SavedModel directory, a .tflite file or a zoo model (``zoo:mobilenet_v2``).
A model file that is literally called ``show`` must be given as ``./show``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError

__all__ = ["add_parser", "run"]

_ZOO_HELP = "zoo:tiny_cnn, zoo:mobilenet_v2, zoo:resnet50, zoo:transformer_small"


def _int_list(name: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            out.append(int(tok))
        except ValueError:
            raise InputError(f"{name} must be a comma-separated list of integers, got {text!r}") from None
    if not out:
        raise InputError(f"{name} must list at least one integer, got {text!r}")
    return tuple(out)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``profile`` on ``subparsers``; the handler is :func:`run`."""
    p = subparsers.add_parser(
        "profile", help="measure a model's service times (or import / show a profile)",
        description="Measure service times of a model (bare call or through a serving loop) into a profile "
                    "JSON; import your own measurements with --from-csv; 'profile show PATH' prints one.",
        epilog=f"zoo models: {_ZOO_HELP}. Variants: fp32, xla, tflite-fp32, fp16, int8-dynamic, int8-full, "
               "pruned (aliases tflite-fp16, tflite-int8-dynamic, tflite-int8-full).")
    p.add_argument("target", nargs="?", metavar="MODEL_FILE|show",
                   help="model file / SavedModel dir / zoo:<name>, or 'show'")
    p.add_argument("show_path", nargs="?", metavar="PATH", help="with 'show': the profile to print")
    p.add_argument("--output", "-o", metavar="PATH", help="profile JSON to write (atomically)")
    p.add_argument("--from-csv", metavar="FILE",
                   help="import measurements: columns service_time_s (seconds)[, batch_size][, concurrency]")
    p.add_argument("--name", help="model name to record (--from-csv; default: the file name)")
    p.add_argument("--device-kind", default="cpu", help="--from-csv: cpu, gpu or tpu (default cpu)")
    p.add_argument("--device-name", help="--from-csv: the device the times were measured on")
    g = p.add_argument_group("measurement")
    g.add_argument("--variant", default="fp32", help="fp32 (default), xla, tflite-fp32, fp16, int8-dynamic, "
                                                     "int8-full, pruned")
    g.add_argument("--batch-sizes", default="1,2,4,8", metavar="LIST", help="default 1,2,4,8 (up to 64+)")
    g.add_argument("--concurrency", default="1", metavar="LIST",
                   help="requests in flight on as many worker threads, e.g. 1,2 (levels > 1 at the smallest "
                        "batch size)")
    g.add_argument("--threads", metavar="LIST", help="TF intra-op threads (fp32/xla) or TFLite num_threads; "
                                                     "several values = a thread sweep")
    g.add_argument("--inter-op-threads", type=int, metavar="N", help="TF inter-op threads")
    g.add_argument("--serving-path", action="store_true",
                   help="time requests through a queue -> worker -> future serving loop (for capacity planning)")
    g.add_argument("--min-samples", type=int, default=500, help="samples per point before the precision "
                                                                "test may stop (default 500)")
    g.add_argument("--max-samples", type=int, default=100_000, help="hard cap per point (default 100000)")
    g.add_argument("--max-seconds", type=float, default=60.0, help="time budget per point (default 60)")
    g.add_argument("--rel-ci", type=float, default=0.01,
                   help="stop when the mean's 95%% CI half-width <= this fraction of the mean (default 0.01)")
    g.add_argument("--warmup-calls", type=int, default=5, help="fewest warm-up calls per worker (default 5)")
    g.add_argument("--warmup-seconds", type=float, default=1.0, help="warm-up duration (default 1 s)")
    g.add_argument("--seed", type=int, default=0, help="seed of zoo weights and random inputs")
    g.add_argument("--input-shape", metavar="LIST", help="per-example input shape if the model leaves it open")
    g.add_argument("--accuracy-examples", type=int, default=64,
                   help="random examples for the output comparison with fp32 (default 64)")
    g.add_argument("--backend", default="auto", help="auto (TensorFlow if installed, else torch), "
                                                     "tensorflow, torch")
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    s = p.add_argument_group("show")
    s.add_argument("--plot", metavar="FILE.png", help="with 'show': save distribution and batch-curve plots")
    s.add_argument("--fit", action="store_true", help="with 'show': fit lognormal/gamma/shifted exponential")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``simulator profile``; user errors raise InputError (the CLI prints them, exit status 2)."""
    if args.target == "show":
        return _show(args)
    if args.show_path is not None:
        raise InputError(f"unexpected argument {args.show_path!r} (did you mean 'simulator profile show PATH'?)")
    if args.plot or args.fit:
        raise InputError("--plot and --fit go with 'simulator profile show PATH'")
    if args.from_csv and args.target is not None:
        raise InputError("give either MODEL_FILE or --from-csv FILE, not both")
    if not args.from_csv and args.target is None:
        raise InputError(f"give a MODEL_FILE (.keras, .h5, SavedModel dir, .tflite or {_ZOO_HELP}), "
                         "--from-csv FILE, or 'show PATH'")
    if args.output is None:
        raise InputError("--output PATH is required (where to write the profile JSON)")
    out = Path(args.output)
    if not out.parent.is_dir():
        raise InputError(f"output directory {str(out.parent)!r} does not exist")
    if args.from_csv:
        from ..profiling.csv_import import profile_from_csv

        profile = profile_from_csv(args.from_csv, name=args.name, device_kind=args.device_kind,
                                   device_name=args.device_name)
    else:
        profile = _measure(args)
    profile.save(out)
    print(f"wrote {out} ({len(profile.points)} points)")
    return 0


def _measure(args: argparse.Namespace):
    from ..profiling.profiler import ProfileConfig, run_profile
    from ..profiling.timing import StoppingRule

    rule = StoppingRule(min_samples=args.min_samples, max_samples=args.max_samples, max_seconds=args.max_seconds,
                        rel_ci=args.rel_ci, warmup_calls=args.warmup_calls, warmup_seconds=args.warmup_seconds)
    config = ProfileConfig(
        model=args.target, variant=args.variant, batch_sizes=_int_list("batch_sizes", args.batch_sizes),
        concurrency=_int_list("concurrency", args.concurrency), threads=_int_list("threads", args.threads),
        inter_op_threads=args.inter_op_threads, serving_path=args.serving_path, rule=rule, seed=args.seed,
        input_shape=_int_list("input_shape", args.input_shape), accuracy_examples=args.accuracy_examples,
        backend=args.backend)
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    return run_profile(config, progress=progress)


def _show(args: argparse.Namespace) -> int:
    from ..profiles import Profile
    from ..profiling.summary import plot_profile, summary_table

    if args.show_path is None:
        raise InputError("usage: simulator profile show PATH [--plot FILE.png] [--fit]")
    profile = Profile.load(args.show_path)
    print(summary_table(profile, fits=args.fit))
    if args.plot:
        print(f"wrote {plot_profile(profile, args.plot)}")
    return 0
