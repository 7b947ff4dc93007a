"""Human-readable views of a profile: a summary table and a distribution / batch-curve figure."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fitting import best_fit, fit_profile_batch_curve
from ..profiles import Profile

__all__ = ["plot_profile", "summary_table"]


def _row(p) -> list[str]:
    if p.samples is None:
        return [str(p.batch_size), str(p.concurrency), "-", f"{p.mean * 1e3:.3f}", "-", "-",
                f"{p.cv or 0:.3f}", "-", "published"]
    s = p.samples * 1e3
    mean = s.mean()
    cv = s.std(ddof=1) / mean if s.size > 1 else 0.0
    handoff = p.extra.get("handoff_s")
    outcome = (p.extra.get("summary") or {}).get("stopping_outcome", "-")
    return [str(p.batch_size), str(p.concurrency), str(s.size), f"{mean:.3f}", f"{np.quantile(s, 0.5):.3f}",
            f"{np.quantile(s, 0.99):.3f}", f"{cv:.3f}",
            f"{np.mean(handoff) * 1e3:.3f}" if handoff else "-", outcome]


def summary_table(profile: Profile, fits: bool = False) -> str:
    """A text summary: header lines (model, device, method, load) and one row per point, times in ms."""
    m, d, meth = profile.model, profile.device, profile.method
    lines = [f"profile   {profile.origin}",
             f"model     {m.get('name')}  variant {m.get('variant', '?')}  runtime {m.get('runtime', '?')}  "
             f"input {m.get('input_shape')}  size {m.get('size_bytes', '?')} bytes",
             f"device    {d.get('kind')}: {d.get('name')}  cores {d.get('cores', '?')}",
             f"method    {meth.get('path')}  measured {profile.measured_at}  source {profile.source}"]
    if profile.source == "published":
        lines.append(f"citation  {profile.citation}  (published figures, not measured here)")
    load = meth.get("loadavg") or {}
    if load:
        lines.append(f"load      1-min loadavg before {load.get('before')}, after {load.get('after')}, "
                     f"max {load.get('max_1min')}")
    diff = m.get("output_difference")
    if diff:
        agree = f"  top-1 agreement {diff['top1_agreement']:.3f}" if diff.get("top1_agreement") is not None else ""
        lines.append(f"vs fp32   max |diff| {diff.get('max_abs_diff')}  mean |diff| {diff.get('mean_abs_diff')}"
                     f"{agree}  ({diff.get('examples')} examples)")
    header = ["batch", "conc", "n", "mean_ms", "p50_ms", "p99_ms", "CV", "handoff_ms", "stopped_by"]
    rows = [header] + [_row(p) for p in profile.points]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.append("")
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    sizes = profile.batch_sizes
    if len(sizes) >= 2:
        curve = fit_profile_batch_curve(profile)
        lines.append("")
        lines.append(f"batch curve  t(n) = {curve.a * 1e3:.3f} ms + {curve.b * 1e3:.3f} ms * n   R^2 = {curve.r2:.4f}")
    if fits:
        lines.append("")
        for p in profile.points:
            if p.samples is None or p.samples.size < 3 or np.ptp(p.samples) == 0:
                continue
            best, all_fits = best_fit(p.samples)
            desc = ", ".join(f"{f.family} KS={f.ks_statistic:.3f} A2={f.ad_statistic:.2f}" for f in all_fits)
            lines.append(f"fit batch {p.batch_size} conc {p.concurrency}: best {best.family}; {desc}")
    return "\n".join(lines)


def plot_profile(profile: Profile, path: str | os.PathLike) -> Path:
    """Save a PNG with the service-time distribution per batch size, the batch curve and a QQ plot."""
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"plot directory {str(target.parent)!r} does not exist")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [b for b in profile.batch_sizes if profile.point(b).samples is not None]
    if not sizes:
        return _plot_means_only(profile, target, plt)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    lo = min(float(profile.samples(b).min()) for b in sizes) * 1e3
    hi = max(float(profile.samples(b).max()) for b in sizes) * 1e3
    log_x = hi > 10 * lo  # batch sizes spread over decades: equal-width bins would hide the small ones
    bins = np.geomspace(lo, hi, 80) if log_x else np.linspace(lo, hi, 80)
    for b in sizes:
        ax.hist(profile.samples(b) * 1e3, bins=bins, histtype="step", density=True, label=f"batch {b}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("service time (ms)")
    ax.set_ylabel("density")
    ax.set_title("service-time distribution (concurrency 1)")
    ax.legend(fontsize=8)
    ax = axes[1]
    means = np.array([profile.mean(b) for b in sizes]) * 1e3
    p99 = np.array([np.quantile(profile.samples(b), 0.99) for b in sizes]) * 1e3
    ax.plot(sizes, means, "o-", label="mean")
    ax.plot(sizes, p99, "s--", label="p99")
    _batch_curve_axes(ax, profile, sizes)
    ax.set_title("batch-size curve")
    ax.legend(fontsize=8)
    ax = axes[2]
    s1 = profile.samples(sizes[0])
    if s1.size >= 3 and np.ptp(s1) > 0:
        from ..fitting import plot_qq

        _, fits = best_fit(s1)
        for f in fits:
            plot_qq(f, s1, ax)
        ax.legend(fontsize=8)
    ax.set_title(f"QQ, batch {sizes[0]}: fitted vs measured")
    fig.suptitle(f"{profile.name}  ({profile.method.get('path')} path, measured {profile.measured_at})")
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def _batch_curve_axes(ax, profile: Profile, sizes: list[int]) -> None:
    """The fitted a + b·n line over the measured batch sizes (two or more), and the axis labels."""
    if len(sizes) >= 2:
        curve = fit_profile_batch_curve(profile)
        grid = np.linspace(1, max(sizes), 100)
        ax.plot(grid, curve.predict(grid) * 1e3, "k:",
                label=f"a+b·n: {curve.a * 1e3:.2f}+{curve.b * 1e3:.2f}·n ms (R²={curve.r2:.3f})")
    ax.set_xlabel("batch size")
    ax.set_ylabel("service time (ms)")


def _plot_means_only(profile: Profile, target: Path, plt) -> Path:
    """A published profile has means, not samples: plot its batch curve alone."""
    sizes = profile.batch_sizes
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(sizes, [profile.mean(b) * 1e3 for b in sizes], "o-", label="mean (published)")
    _batch_curve_axes(ax, profile, sizes)
    ax.set_title(f"{profile.name} (source: {profile.source})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
