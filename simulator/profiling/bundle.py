"""Regenerate the bundled profiles under ``profiles/<device>/<model>/<variant>.json`` with one command.

    python -m simulator.profiling.bundle [--root profiles] [--max-seconds 14] [--only mobilenet_v2]

Every profile is measured in its own ``simulator profile`` process (fresh TensorFlow thread pools, and one
failure does not stop the rest). Bundled profiles time the serving path (what capacity planning needs);
``fp32-bare.json`` beside the default shows the same model's bare-call time for comparison. XLA is
bundled for the Transformer only: XLA's CPU depthwise convolution makes MobileNetV2 several times slower
than eager (measured here: ~200 ms vs ~95 ms at batch 1), and compiling it per batch size costs minutes.

The default profile, used by ``simulate --arrival-rate N`` with no service flags, is
``<device>/mobilenet_v2/fp32.json``: MobileNetV2, fp32, serving path, batch sizes 1, 2, 4, 8, concurrency 1, 2,
with a longer time budget (110 s per point) so that even batch 8 reaches the 500-sample floor.
``--only mobilenet_v2/fp32.json`` regenerates just that one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .environment import device_info, loadavg, short_device_name

__all__ = ["JOBS", "Job", "main"]


@dataclass(frozen=True)
class Job:
    """One bundled profile: model, variant, file name and flags beyond the common ones."""

    model: str
    variant: str
    filename: str
    serving_path: bool = True
    concurrency: str = "1"
    batch_sizes: str = "1,2,4,8"
    max_seconds: float | None = None  # overrides --max-seconds (the default profile gets enough for 500 samples)


JOBS = (
    Job("mobilenet_v2", "fp32", "fp32.json", concurrency="1,2", max_seconds=110.0),  # the default profile
    Job("mobilenet_v2", "fp32", "fp32-bare.json", serving_path=False),
    Job("mobilenet_v2", "int8-dynamic", "int8-dynamic.json"),
    Job("mobilenet_v2", "fp16", "fp16.json"),
    Job("mobilenet_v2", "int8-full", "int8-full.json"),  # fast but least faithful: the profile shows both
    Job("resnet50", "fp32", "fp32.json"),
    Job("resnet50", "int8-dynamic", "int8-dynamic.json"),
    Job("resnet50", "fp16", "fp16.json"),
    Job("transformer_small", "fp32", "fp32.json"),
    Job("transformer_small", "int8-dynamic", "int8-dynamic.json"),
    Job("transformer_small", "fp16", "fp16.json"),
    Job("transformer_small", "xla", "xla.json"),
)

DEFAULT_JOB = JOBS[0]

# GPU set (PyTorch, ``--set gpu``): GPUs are bought for batching, so the batch sweep goes to 64; fp16 is the
# variant a GPU server runs (tensor cores), fp32 shows what it gains. Eager PyTorch is what a plain PyTorch
# model server runs, and for these small models it is bound by the CPU launching kernels; the
# ``-cudagraph`` variants capture each batch size once as a CUDA graph and replay it, closer to a
# compiled engine (TensorRT, torch.compile's reduce-overhead). Points get 2.5-3 s each (a GPU call
# takes ~0.3-30 ms, so >= 100 samples even at batch 64) so that the whole set fits a short device lease.
GPU_BATCHES = "1,2,4,8,16,32,64"
GPU_MODELS = ("mobilenet_v2", "resnet50", "transformer_small")
GPU_JOBS = tuple(
    Job(model, variant, f"{variant}.json", concurrency="1,2" if model == "mobilenet_v2" else "1",
        batch_sizes=GPU_BATCHES, max_seconds=3.0)
    for model in GPU_MODELS for variant in ("fp16", "fp32")) + tuple(
    Job(model, variant, f"{variant}.json", batch_sizes=GPU_BATCHES, max_seconds=2.5)
    for model in GPU_MODELS for variant in ("fp16-cudagraph", "fp32-cudagraph"))
JOB_SETS = {"cpu": JOBS, "gpu": GPU_JOBS}


def job_command(job: Job, output: Path, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "simulator", "profile", f"zoo:{job.model}", "--output", str(output),
           "--variant", job.variant, "--batch-sizes", job.batch_sizes, "--concurrency", job.concurrency,
           "--min-samples", str(args.min_samples), "--max-samples", str(args.max_samples),
           "--max-seconds", str(job.max_seconds or args.max_seconds),
           "--rel-ci", str(args.rel_ci), "--accuracy-examples", str(args.accuracy_examples),
           "--backend", args.backend]
    if args.batch_sizes:
        cmd[cmd.index("--batch-sizes") + 1] = args.batch_sizes
    return cmd + (["--serving-path"] if job.serving_path else [])


def summary_rows(device_dir: Path) -> list[dict]:
    """One row per bundled profile: means per point (ms), size, output difference, load, outcomes."""
    from ..profiles import Profile

    rows = []
    for path in sorted(device_dir.glob("*/*.json")):
        p = Profile.load(path)
        diff = p.model.get("output_difference") or {}
        outcomes = sorted({(pt.extra.get("summary") or {}).get("stopping_outcome", "?") for pt in p.points})
        rows.append({
            "file": str(path.relative_to(device_dir)), "model": p.model["name"], "variant": p.model.get("variant"),
            "path": p.method.get("path"), "runtime": p.model.get("runtime"), "size_mb": p.model["size_bytes"] / 1e6,
            "means_ms": {f"b{pt.batch_size}c{pt.concurrency}": pt.mean * 1e3 for pt in p.points},
            "n": {f"b{pt.batch_size}c{pt.concurrency}": pt.n for pt in p.points},
            "handoff_ms": {f"b{pt.batch_size}c{pt.concurrency}": float(np.mean(pt.extra["handoff_s"])) * 1e3
                           for pt in p.points if pt.extra.get("handoff_s")},
            "max_rel_diff": diff.get("max_rel_diff"), "top1": diff.get("top1_agreement"),
            "loadavg_max": (p.method.get("loadavg") or {}).get("max_1min"), "outcomes": outcomes,
            "measured_at": p.measured_at})
    return rows


def write_readme(device_dir: Path) -> Path:
    """Write ``README.md`` in ``device_dir``: how the profiles were made and what they hold."""
    from ..io import atomic_write_text
    from ..profiles import Profile

    rows = summary_rows(device_dir)
    keys = sorted({k for r in rows for k in r["means_ms"]}, key=lambda k: (int(k[1:].split("c")[0]), k))
    first = Profile.load(sorted(device_dir.glob("*/*.json"))[0]) if rows else None
    device = first.device if first is not None else device_info()
    if device.get("kind") == "gpu":
        where = (f"on an {device['name']} (host CPU {device.get('cpu')}, {device.get('cores')} cores), "
                 f"PyTorch {device.get('framework_versions', {}).get('torch')}, eager mode, every call timed to "
                 "`torch.cuda.synchronize()`, host-to-device copy of the input and device-to-host copy of the "
                 "output included")
        regenerate = ("Regenerate on a CUDA machine: `python -m simulator.profiling.bundle --set gpu` "
                      "(about 5 minutes).")
    else:
        cores = device.get("cores") or 1
        loads = [r["loadavg_max"] for r in rows if r["loadavg_max"] is not None]
        shared = bool(loads) and max(loads) > cores + 0.5
        where = (f"on {device['name']} ({cores} cores). The 1-minute load average is recorded per point in each "
                 "file and its maximum is shown below; it counts the profiler's own threads (up to the core "
                 "count)" + ("; a load well above the core count, as here, means other processes competed for "
                             "the CPU, which inflates and spreads these times" if shared else
                             "; no other work ran while these were measured"))
        regenerate = "Regenerate: `python -m simulator.profiling.bundle` (about 20 minutes on 2 cores)."
    lines = [
        f"# Measured profiles: {device_dir.name}",
        "",
        f"Measured by `python -m simulator.profiling.bundle` {where}; each file's date is in the table. "
        "Zoo models with random weights (built in code), serving path unless the file says `-bare`.",
        "",
    ]
    if device.get("kind") != "gpu":
        lines += [f"Default profile (`simulate --arrival-rate N` with no service flags): "
                  f"`{DEFAULT_JOB.model}/{DEFAULT_JOB.filename}`.", ""]
    lines += [
        "Mean service time in ms per point (`b` = batch size, `c` = concurrency); `rel diff` = max |output - fp32| "
        "/ max |fp32 output| on random inputs (logits); `top-1` = argmax agreement with fp32.",
        "",
        "| file | runtime | MB | " + " | ".join(keys) + " | rel diff | top-1 | max load | stopped by | measured (UTC) |",
        "|---|---|---|" + "---|" * len(keys) + "---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r['means_ms'][k]:.2f}" if k in r["means_ms"] else "" for k in keys]
        rel = f"{r['max_rel_diff']:.3g}" if r["max_rel_diff"] is not None else "-"
        top1 = f"{r['top1']:.2f}" if r["top1"] is not None else "-"
        lines.append(f"| `{r['file']}` | {r['runtime']} | {r['size_mb']:.1f} | " + " | ".join(cells)
                     + f" | {rel} | {top1} | {r['loadavg_max']} | {', '.join(r['outcomes'])} | {r['measured_at']} |")
    lines += ["", regenerate, ""]
    return atomic_write_text(device_dir / "README.md", "\n".join(lines))


def default_device_dir(job_set: str) -> str:
    """``cpu-<cpu>-<cores>c`` for the CPU set; ``gpu-<gpu name>`` (e.g. ``gpu-nvidia-h100-80gb-hbm3``) for the
    GPU set, read from PyTorch's CUDA device."""
    if job_set == "cpu":
        return short_device_name()
    try:
        import torch
    except ImportError:
        raise SystemExit("--set gpu needs PyTorch") from None
    if not torch.cuda.is_available():
        raise SystemExit("--set gpu needs a CUDA device (torch.cuda.is_available() is False); "
                         "give --device-dir to try it on the CPU")
    return short_device_name("gpu", torch.cuda.get_device_name(0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.profiling.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "profiles"),
                        help="profiles/ folder (default: the repository's)")
    parser.add_argument("--device-dir", default=None, help="folder name (default: cpu-<cpu>-<cores>c)")
    parser.add_argument("--min-samples", type=int, default=500)
    parser.add_argument("--max-samples", type=int, default=5000,
                        help="cap per point (default 5000: keeps the committed JSON small)")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="time budget per point (default 10)")
    parser.add_argument("--rel-ci", type=float, default=0.01)
    parser.add_argument("--accuracy-examples", type=int, default=32)
    parser.add_argument("--only", default=None,
                        help="comma-separated model names or MODEL/FILE entries to regenerate, "
                             "e.g. mobilenet_v2/fp32.json")
    parser.add_argument("--set", dest="job_set", choices=sorted(JOB_SETS), default="cpu",
                        help="cpu (TensorFlow/TFLite variants, default) or gpu (PyTorch on the CUDA device)")
    parser.add_argument("--backend", default=None, help="profiler backend (default: auto for cpu, torch for gpu)")
    parser.add_argument("--batch-sizes", default=None, help="override every job's batch sizes (for a quick try)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    args.backend = args.backend or ("torch" if args.job_set == "gpu" else "auto")
    device_dir = Path(args.root) / (args.device_dir or default_device_dir(args.job_set))
    only = set(args.only.split(",")) if args.only else None
    failures = 0
    started = time.perf_counter()
    for job in JOB_SETS[args.job_set]:
        if only and job.model not in only and f"{job.model}/{job.filename}" not in only:
            continue
        out = device_dir / job.model / job.filename
        cmd = job_command(job, out, args)
        print(f"[{time.perf_counter() - started:7.1f} s] loadavg {loadavg()}  {' '.join(cmd[2:])}", flush=True)
        if args.dry_run:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            failures += 1
            print(f"FAILED ({rc}): {out}", file=sys.stderr, flush=True)
    if not args.dry_run and device_dir.is_dir():
        readme = write_readme(device_dir)
        print(f"wrote {readme}")
    print(f"done in {time.perf_counter() - started:.0f} s; default profile: "
          f"{device_dir / DEFAULT_JOB.model / DEFAULT_JOB.filename}; {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
