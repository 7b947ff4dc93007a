"""``simulate``: predict latency of a serving system at one or several arrival rates."""

from __future__ import annotations

import io
import json
import sys

from ..errors import InputError
from ..io import atomic_write_bytes
from ..result import LATENCY_KEYS, Result
from .common import add_run_flags, add_service_flags, parse_rates, parse_slo, scenario_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("simulate", help="predict latency at an arrival rate (or a sweep of rates)",
                       description="Predict serving latency under load. With only --arrival-rate, "
                                   "uses the bundled default profile and configuration.")
    p.add_argument("--arrival-rate", nargs="+", required=True, metavar="R",
                   help="requests/s; several values or START:STOP:STEP = a latency-vs-load sweep")
    add_service_flags(p)
    add_run_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object; a sweep: {\"sweep\": [...]})")
    p.add_argument("--plot", metavar="FILE", help="latency-vs-load plot (PNG or SVG) of a sweep")
    p.add_argument("--slo", help="SLO line on the plot and a pass/fail column, e.g. p99=50ms")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--no-host-band", action="store_true",
                   help="skip the host-level band (a profile whose under_load.host_level says how much its "
                        "host's speed moves between runs is also simulated at 1 -/+ 2 sd of it)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..simulate import host_level_band, simulate  # heavy imports only once the flags are known good

    rates = parse_rates(args.arrival_rate)
    slo = parse_slo(args.slo) if args.slo else None
    if args.plot and not args.plot.lower().endswith((".png", ".svg")):
        raise InputError(f"plot file must end in .png or .svg, got {args.plot!r}")
    # Validate every rate's scenario before any work starts.
    scenarios = [scenario_from_args(args, r) for r in rates]
    progress = _progress(len(scenarios), args)
    results: list[Result] = []
    bands = []
    for sc in scenarios:
        results.append(simulate(sc, engine=args.engine, progress=progress))
        bands.append(host_level_band(sc, engine=args.engine, progress=progress)
                     if results[-1].stable and not args.no_host_band else None)
    if progress is not None:
        progress.close()
    if args.plot:
        _plot(results, slo, args.plot)
    if args.json:
        docs = [r.to_dict() | ({"host_band": b.to_dict()} if b is not None else {}) for r, b in zip(results, bands)]
        payload = docs[0] if len(docs) == 1 else {"sweep": docs}
        print(json.dumps(payload, indent=1, allow_nan=False))
    elif len(results) > 1 or results[0].stable:
        for i, (sc, res, band) in enumerate(zip(scenarios, results, bands)):
            if i:
                print()
            print(format_result(sc, res, slo, band))
    if len(results) == 1 and not results[0].stable:
        # One rate that the system cannot carry is a user error: a verdict, exit status 2.
        raise InputError(results[0].verdict)
    return 0


def _progress(n_rates: int, args):
    if args.no_progress or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=None, desc="replications", unit="rep", file=sys.stderr, leave=False)


def _fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:.4g}"


def format_result(scenario, res: Result, slo=None, band=None) -> str:
    """The human table of one result: simulated figures with CI, analytic figures beside them, and the
    host-level band (:func:`simulator.simulate.host_level_band`) when there is one."""
    svc = scenario.service
    what = svc.profile if svc and svc.profile else (
        f"{svc.dist} service, mean {svc.mean_s * 1e3:g} ms" if svc and svc.mean_s else "pools")
    lines = [f"arrival rate {res.arrival_rate:g} req/s | {scenario.replicas} replica(s) | "
             f"batch {scenario.batching.max_batch_size}"
             + (f" (timeout {scenario.batching.timeout_s * 1e3:g} ms)" if scenario.batching.timeout_s else "")
             + (f" | cache {scenario.cache.policy}:{scenario.cache.capacity}" if scenario.cache.enabled else "")
             + f" | {what}"]
    if not res.stable:
        lines.append(f"UNSTABLE: {res.verdict}")
        return "\n".join(lines)
    lines.append(f"engine {res.engine} | {res.replications} replications x "
                 f"{res.requests_simulated // max(res.replications, 1)} requests | "
                 f"{res.wall_seconds:.2f} s")
    analytic = (res.analytic or {}).get("latency_ms", {}) if res.analytic else {}
    head = f"{'latency (ms)':<14}{'simulated':>12}{'95% CI':>24}"
    if analytic:
        head += f"{'analytic':>12}{'diff':>9}"
    lines.append(head)
    for key in LATENCY_KEYS:
        v, ci = res.latency_ms.get(key), res.latency_ms_ci95.get(key)
        row = f"{key:<14}{_fmt(v):>12}{(f'[{_fmt(ci[0])}, {_fmt(ci[1])}]' if ci else '-'):>24}"
        if analytic:
            a = analytic.get(key)
            diff = f"{(v - a) / a * 100:+.1f}%" if (a and v is not None) else "-"
            row += f"{_fmt(a):>12}{diff:>9}"
        lines.append(row)
    if analytic:
        lines.append(f"analytic: {res.analytic.get('method', '')}")
    util = f"{res.utilization:.3f}" if res.utilization is not None else "-"
    lines.append(f"throughput {_fmt(res.throughput_rps, 1)} req/s | utilization {util} | "
                 f"drops {_fmt(res.drop_rate, 4)} | cache hits {_fmt(res.cache_hit_ratio, 3)} | "
                 f"mean batch {_fmt(res.mean_batch_size, 2)}")
    if res.breakdown_ms:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in res.breakdown_ms.items())
        lines.append(f"breakdown (mean ms): {parts} | real-time ratio {_fmt(res.realtime_ratio, 3)}")
    prec = res.precision or {}
    if prec.get("p99_rel_halfwidth") is not None:
        target = f" (target {prec['target_rel_halfwidth'] * 100:g}%: {'met' if prec.get('met') else 'NOT met'})" \
            if "sequential" in prec.get("rule", "") else ""
        lines.append(f"precision: p99 95% CI half-width {prec['p99_rel_halfwidth'] * 100:.1f}% of p99{target}; "
                     f"warm-up deleted: {_warmup_text(res.warmup)}")
    if slo is not None:
        q, limit = slo
        key = _slo_key(q)
        ci = res.latency_ms_ci95.get(key)
        if ci:
            verdict = "MEETS" if ci[1] <= limit * 1e3 else "MISSES"
            lines.append(f"SLO {key} <= {limit * 1e3:g} ms: {verdict} (upper 95% bound {ci[1]:.3f} ms)")
    if band is not None:
        lines += _band_lines(band, slo)
    for note in res.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _band_lines(band, slo) -> list[str]:
    """How far the prediction moves when the host runs at its measured slow and fast levels."""
    lo, hi = band.levels
    lines = [f"host level: the profile's host moved by sd {band.sd * 100:.1f}% between {band.run_s:.3g}-s runs "
             f"({band.runs} runs); at {band.z:g} sd either side (service x {lo:.3f} .. x {hi:.3f}):"]
    if not band.slow.stable:
        lines.append(f"  UNSTABLE at x {hi:.3f}: {band.slow.verdict}")
    keys = [k for k in ("mean", "p50", "p90", "p99") if band.fast.latency_ms.get(k) is not None]
    if band.slow.stable:
        lines.append("  " + " | ".join(f"{k} {_fmt(band.fast.latency_ms[k])} .. {_fmt(band.slow.latency_ms.get(k))} ms"
                                       for k in keys))
    else:
        lines.append("  fast host: " + " | ".join(f"{k} {_fmt(band.fast.latency_ms[k])} ms" for k in keys))
    if slo is not None and band.slow.stable:
        key = _slo_key(slo[0])
        ci = band.slow.latency_ms_ci95.get(key)
        if ci:
            verdict = "MEETS" if ci[1] <= slo[1] * 1e3 else "MISSES"
            lines.append(f"  SLO {key} <= {slo[1] * 1e3:g} ms on the slow host: {verdict} "
                         f"(upper 95% bound {ci[1]:.3f} ms)")
    return lines


def _warmup_text(warmup: dict) -> str:
    if not warmup:
        return "-"
    rule = warmup.get("rule", "?")
    deleted = warmup.get("deleted_mean", warmup.get("deleted"))
    return f"{rule}" + (f", {deleted:.0f} requests per replication on average" if deleted is not None else "")


def _slo_key(q: float) -> str:
    for key, frac in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
        if abs(q - frac) < 1e-12:
            return key
    raise InputError(f"slo percentile must be one of p50, p90, p95, p99, p999; got {q}")


def _plot(results: list[Result], slo, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stable = [r for r in results if r.stable]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, color in (("p50", "tab:blue"), ("p99", "tab:red"), ("mean", "tab:gray")):
        xs = [r.arrival_rate for r in stable if r.latency_ms.get(key) is not None]
        ys = [r.latency_ms[key] for r in stable if r.latency_ms.get(key) is not None]
        if not xs:
            continue
        ax.plot(xs, ys, marker="o", color=color, label=key)
        cis = [r.latency_ms_ci95.get(key) for r in stable if r.latency_ms.get(key) is not None]
        if all(c for c in cis):
            ax.fill_between(xs, [c[0] for c in cis], [c[1] for c in cis], color=color, alpha=0.2)
    unstable = [r.arrival_rate for r in results if not r.stable]
    for x in unstable:
        ax.axvline(x, color="black", linestyle=":", alpha=0.5)
    if unstable:
        ax.plot([], [], color="black", linestyle=":", label="unstable (rho >= 1)")
    if slo is not None:
        ax.axhline(slo[1] * 1e3, color="tab:green", linestyle="--", label=f"SLO {_slo_key(slo[0])}")
    ax.set_xlabel("arrival rate (requests/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency vs load (bands: 95% CI across replications)")
    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format=path.rsplit(".", 1)[-1].lower(), dpi=110, bbox_inches="tight",
                metadata={"Date": None} if path.lower().endswith(".svg") else None)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


