"""Validation end to end: profile → live server under LoadGen → calibrate → predict → compare → report.

The live part (profiling, the server, LoadGen) runs in a child process of its own, a real serving process
started fresh (its replicas are processes or threads of its own); the parent only simulates and writes
the report, and sits idle while the child measures. See :mod:`simulator.validate` for the whole procedure.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy import stats

from ..errors import InputError
from ..io import atomic_write_bytes, atomic_write_json
from ..ordered import ServiceOrder
from ..profiles import Profile, load_profile_cached
from ..result import Result
from ..scenario import Arrivals, Batching, Run, Scenario, Service, Stage
from ..validation import check_choice, check_integer, check_positive, check_probability
from .calibration import (
    DRIFT_SCALES_S,
    LoadPoint,
    busy_fraction,
    calibrated_profile,
    drift_by_scale,
    effective_batches,
    host_level,
    levels_against,
    load_point,
    under_load_profile,
)
from .compare import METRICS, chance_within_limit, meets_goal, relative_error, run_sd_pct, spread
from .loadgen import LiveRun, RunSettings
from .summary import LoadGenSummary

__all__ = ["Case", "ValidationConfig", "compare_summaries", "evaluate", "live_phase", "load_campaign", "load_live",
           "load_run", "predict", "predict_band", "recommended_variant", "run_validation", "save_campaign", "save_index",
           "save_run", "target_rate"]

Progress = Callable[[str], None]
MAX_TARGET_STEP = 1.2  # the targeting's power-law answer stays within 20% of the proportional one
SAMPLE_COUNT = 256  # inputs in the query sample library
SERVERS = ("process", "thread")
COOLDOWN_S = 1.0  # idle time after each live run (s)
SATURATED = 0.95  # a run busier than this was overloaded


@dataclass(frozen=True)
class ValidationConfig:
    """A live validation campaign.

    Parameters
    ----------
    model : str
        ``zoo:<name>`` or a model file (anything ``simulator profile`` takes).
    replicas : tuple of int
        Model replicas of the server; each value is a separate server.
    utilizations : tuple of float
        Target utilizations ρ (busy fraction of the replicas). The first targeting run uses
        ``ρ·C / E[S]`` with E[S] from the profile (:func:`replica_service_mean`; concurrency 1 for
        replica processes), the second corrects it by the measured busy fraction.
    batch_size, batch_timeout_s : int, float
        Dynamic batching of the server (1 = none); timeout in seconds.
    repeats : int
        Real runs per load (their spread is the real system's own run-to-run variation).
    duration_s : float
        LoadGen ``min_duration`` of each measured run (s).
    calibration_s : float or None
        Duration of each calibration run (s; None: ``duration_s``): two targeting runs per load (the
        nominal rate, then the rate that the measured busy fraction says gives utilization ρ) and one
        calibration run right before each measured run, at its rate, whose service times predict it.
        0: nominal rates, no calibration (isolated profile only). As long as the measured runs is the
        default because it predicted best: the measured-order under-load profile met 23 and 21 of 24
        cells with 20-s calibration runs (campaigns M, N), 17 and 19 with 60-s runs (K, L), 13 and 17
        with 5-s runs (I, J); the host's slow stretches last seconds.
    profile : str or None
        Use this profile instead of profiling the model first.
    profile_seconds : float
        Time budget per profile point (s).
    seed : int
        Seed of zoo weights, inputs, LoadGen schedules and simulations.
    sim_requests, sim_replications : int
        Simulated requests per replication (0: as many as the measured run had, its arrival rate ×
        ``duration_s``, so that a replication is one simulated run and the prediction, the mean of the
        replications' percentiles, estimates what the mean of the real runs' percentiles measures) and
        replications per prediction (800: near saturation with host drift one replication's p99 varies
        by ~25 %, so that 4 replications of 50,000 requests left a prediction's p99 uncertain by 10-15 %
        (sd over seeds), as large as the goal's limit; 800 run-length replications take it to ~2 % for a
        load's prediction, in under a second each).
    engine : str
        Simulation engine.
    server : str
        ``process``: one worker process per replica (what Python model servers deploy; no shared GIL),
        each with the host's cores shared out as TensorFlow intra-op threads (:func:`replica_threads`);
        ``thread``: worker threads of one process (replicas share the GIL and TensorFlow's pools).
    replay : bool
        Also simulate each measured run with its own in-server service times (a diagnostic that
        separates the queue model's error from the host's drift between runs; not a prediction).
    ordered : bool
        Also predict with the calibrated service times in their measured order (a block bootstrap that
        keeps their autocorrelation, :mod:`.ordered`), beside drawing them independently.
    keep_records : bool
        Keep every run's server timestamps (``raw/.../server_records.npz``) and an index of the runs
        (``raw/runs.json``), so that :func:`load_live` can predict the same live data again (a changed
        model, without the host) — ``simulator validate --reevaluate DIR``.
    """

    model: str
    replicas: tuple[int, ...] = (1,)
    utilizations: tuple[float, ...] = (0.5, 0.7, 0.85)
    batch_size: int = 1
    batch_timeout_s: float = 0.0
    repeats: int = 3
    duration_s: float = 20.0
    calibration_s: float | None = None
    profile: str | None = None
    profile_seconds: float = 5.0
    min_query_count: int = 100
    seed: int = 0
    sim_requests: int = 0
    sim_replications: int = 800
    engine: str = "auto"
    server: str = "process"
    replay: bool = True
    ordered: bool = True
    keep_records: bool = False

    def sim_requests_for(self, arrival_rate: float) -> int:
        """Requests per simulated replication of a run at ``arrival_rate``: ``sim_requests``, or with 0 the
        measured run's own length (:func:`run_requests`)."""
        return self.sim_requests or run_requests(arrival_rate, self.duration_s)

    def simulation(self, arrival_rate: float, seed: int) -> dict:
        """The keyword arguments of :func:`predict` for one measured run at ``arrival_rate``: the server's
        batching and this campaign's simulation budget and engine."""
        return dict(batch_size=self.batch_size, batch_timeout_s=self.batch_timeout_s,
                    requests=self.sim_requests_for(arrival_rate), replications=self.sim_replications, seed=seed,
                    engine=self.engine)

    def __post_init__(self) -> None:
        if not self.replicas:
            raise InputError("replicas must list at least one value")
        for c in self.replicas:
            check_integer("replicas", c, minimum=1, maximum=64)
        if not self.utilizations:
            raise InputError("utilizations must list at least one load")
        for u in self.utilizations:
            check_probability("utilization", u, open_low=True, open_high=True)
        check_integer("batch_size", self.batch_size, minimum=1, maximum=1024)
        if not (math.isfinite(self.batch_timeout_s) and self.batch_timeout_s >= 0):
            raise InputError(f"batch_timeout must be a finite number >= 0 ms, got {self.batch_timeout_s * 1e3}")
        check_integer("repeats", self.repeats, minimum=1, maximum=100)
        check_positive("duration_s", self.duration_s)
        if self.calibration_s is None:
            object.__setattr__(self, "calibration_s", self.duration_s)
        if not (math.isfinite(self.calibration_s) and self.calibration_s >= 0):
            raise InputError(f"calibration_s must be a finite number >= 0, got {self.calibration_s}")
        check_positive("profile_seconds", self.profile_seconds)
        check_integer("min_query_count", self.min_query_count, minimum=1)
        check_integer("seed", self.seed, minimum=0, maximum=2**31 - 1)
        if isinstance(self.sim_requests, bool) or not isinstance(self.sim_requests, int) \
                or not (self.sim_requests == 0 or self.sim_requests >= 1000):
            raise InputError(f"sim_requests must be 0 (each measured run's own length) or an integer >= 1000, "
                             f"got {self.sim_requests!r}")
        check_integer("sim_replications", self.sim_replications, minimum=2)
        check_choice("server", self.server, SERVERS)
        object.__setattr__(self, "replicas", tuple(sorted(set(self.replicas))))
        object.__setattr__(self, "utilizations", tuple(sorted(set(self.utilizations))))


@dataclass
class Case:
    """One configuration (replicas, batch size, load) with its real runs and predictions."""

    replicas: int
    batch_size: int
    utilization: float | None
    measured: list[dict[str, float]] = field(default_factory=list)
    arrival_rates: list[float] = field(default_factory=list)
    repeats: list[int] = field(default_factory=list)
    predictions: dict[str, list[Result]] = field(default_factory=dict)
    summary_paths: list[str] = field(default_factory=list)
    loadavg: list = field(default_factory=list)
    server: list[dict] = field(default_factory=list)
    host_levels: list[float] = field(default_factory=list)  # each measured run over the calibration line, − 1
    band: list = field(default_factory=list)  # per measured run: the recommended profile's HostBand

    def measured_mean(self, metric: str) -> float:
        vals = [m[metric] for m in self.measured if m.get(metric) is not None]
        return float(np.mean(vals)) if vals else math.nan

    def predicted_mean(self, model: str, metric: str) -> float:
        vals = [r.latency_ms.get(metric) for r in self.predictions.get(model, [])]
        if not vals or any(v is None or not math.isfinite(v) for v in vals):
            return math.nan
        return float(np.mean(vals))

    def _halfwidths(self, model: str, metric: str) -> list[float] | None:
        """Each run's prediction's 95 % confidence half-width (ms) of ``metric``; None when one has no
        finite interval."""
        widths = []
        for r in self.predictions.get(model, []):
            ci = (r.latency_ms_ci95 or {}).get(metric)
            if not ci or not all(math.isfinite(v) for v in ci):
                return None
            widths.append((ci[1] - ci[0]) / 2)
        return widths

    def predicted_halfwidth_pct(self, model: str, metric: str) -> float | None:
        """The simulation's own 95 % confidence half-width of :meth:`predicted_mean`, in percent of it
        (the runs' predictions are independent: their half-widths add in quadrature); None when a
        prediction has no interval."""
        widths = self._halfwidths(model, metric)
        pred = self.predicted_mean(model, metric)
        if not widths or not math.isfinite(pred) or pred <= 0:
            return None
        return float(np.sqrt(np.sum(np.square(widths))) / len(widths) / pred * 100)

    def predicted_run_sd_pct(self, model: str, metric: str) -> float | None:
        """How much one real run's statistic varies by chance alone if ``model`` is right: the standard
        deviation over its replications (each one run as long as the real one, starting empty), in percent
        of its prediction; root mean square over the runs' predictions. Recovered from the replications'
        Student-t interval, sd = half-width · √R / t(0.975, R − 1). None without an interval."""
        widths = self._halfwidths(model, metric)
        if not widths:
            return None
        variances = []
        for r, hw in zip(self.predictions[model], widths):
            pred = r.latency_ms.get(metric)
            if r.replications < 2 or not pred or not math.isfinite(pred):
                return None
            sd = hw * math.sqrt(r.replications) / stats.t.ppf(0.975, r.replications - 1)
            variances.append((sd / pred * 100) ** 2)
        return float(math.sqrt(np.mean(variances)))

    def rows(self) -> list[dict]:
        """One row per metric: measured, spread, predictions and errors (ms and percent)."""
        out = []
        for metric in METRICS:
            values = [v for v in (m.get(metric) for m in self.measured) if v is not None]
            row = {"replicas": self.replicas, "batch_size": self.batch_size,
                   "utilization": self.utilization, "arrival_rate": float(np.mean(self.arrival_rates)),
                   "repeats": len(self.measured), "metric": metric,
                   "measured_ms": self.measured_mean(metric),
                   "measured_runs_ms": values, "spread_pct": spread(values),
                   "measured_run_sd_pct": run_sd_pct(values),
                   "measured_busy": _mean_of(st.get("busy_fraction") for st in self.server),
                   "measured_level_pct": _mean_of(v * 100 for v in self.host_levels),
                   "loadavg_1min_max": max((la["end"][0] for la in self.loadavg if la and la.get("end")),
                                           default=None)}
            for model in self.predictions:
                pred = self.predicted_mean(model, metric)
                err = relative_error(pred, row["measured_ms"])
                goal = meets_goal(metric, err, row["spread_pct"])
                row[f"{model}_ms"] = pred
                row[f"{model}_error_pct"] = err
                row[f"{model}_meets_limit"] = goal["limit"]
                row[f"{model}_meets_spread"] = goal["spread"]
                row[f"{model}_unstable"] = any(not r.stable for r in self.predictions[model])
                row[f"{model}_sim_ci_pct"] = self.predicted_halfwidth_pct(model, metric)
                # What an exact prediction would reach here: the measured mean of k runs carries the
                # model's run-to-run sd / √k of sampling noise.
                run_sd = self.predicted_run_sd_pct(model, metric)
                row[f"{model}_run_sd_pct"] = run_sd
                row[f"{model}_exact_chance"] = (chance_within_limit(metric, run_sd / math.sqrt(len(values)))
                                                if run_sd is not None and values else None)
            row |= self._band_columns(metric)
            out.append(row)
        return out

    def _band_columns(self, metric: str) -> dict:
        """The recommended profile's host-level band at ``metric`` (means over the runs' bands; the slow
        end infinite where that level cannot carry the load), whether the measured mean lies in it, and
        how many of the runs lie in their own run's band ({} without a band)."""
        if not self.band or len(self.band) != len(self.measured):
            return {}

        def end(r: Result) -> float:
            v = r.latency_ms.get(metric) if r.stable else math.inf
            return v if v is not None else math.nan

        lows = [end(b.fast) for b in self.band]
        highs = [end(b.slow) for b in self.band]
        low, high = float(np.mean(lows)), float(np.mean(highs))
        measured = self.measured_mean(metric)
        inside = sum(lo <= m.get(metric, math.nan) <= hi for lo, hi, m in zip(lows, highs, self.measured))
        return {"host_band_low_ms": low, "host_band_high_ms": high, "host_band_sd_pct": self.band[0].sd * 100,
                "host_band_covers": bool(low <= measured <= high), "host_band_runs_inside": int(inside)}


def _mean_of(values) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


# -- live phase (child process) ------------------------------------------------------------------------
def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def _batch_sizes(b: int) -> tuple[int, ...]:
    """Profile batch sizes for a server batching up to ``b``: powers of two up to b, and b."""
    sizes = {1, b}
    s = 2
    while s < b:
        sizes.add(s)
        s *= 2
    return tuple(sorted(sizes))


def replica_service_mean(profile: Profile, replicas: int) -> float:
    """E[S] of one replica when ``replicas`` share the host (s): the profile's serving-path mean at
    concurrency ``replicas`` (the nearest measured level below it, else 1), smallest batch size.

    The nominal load ρ of a run is λ·E[S]/C with this E[S], so ρ → 1 is the closed-loop capacity of C
    workers on this host, not C times the capacity of one worker alone.
    """
    b0 = profile.batch_sizes[0]
    levels = [k for k in profile.concurrency_levels if k <= replicas] or [1]
    return profile.mean(b0, max(levels))


def live_phase(config: ValidationConfig, outdir: str, progress: Progress | None = print) -> dict:
    """Profile the model, then measure every run with LoadGen against a live server. Needs TensorFlow.

    Returns ``{"profile": dict, "runs": [dict]}``; each run has ``kind`` (``targeting``, ``calibration``
    or ``measurement``), ``replicas``, ``utilization``, ``repeat`` (-1 for targeting), ``label`` (its
    folder under ``raw/``) and the :class:`~.loadgen.LiveRun`.
    """
    from ..profiling.profiler import ProfileConfig, run_profile
    from ..profiling.timing import StoppingRule
    from .loadgen import import_loadgen, loadgen_completion, run_server_scenario

    import_loadgen()
    out = Path(outdir)
    if config.profile is not None:
        profile = Profile.load(config.profile)
    else:
        rule = StoppingRule(min_samples=500, max_seconds=config.profile_seconds, rel_ci=0.01)
        pc = ProfileConfig(config.model, batch_sizes=_batch_sizes(config.batch_size),
                           concurrency=tuple(range(1, max(config.replicas) + 1)), serving_path=True,
                           rule=rule, seed=config.seed)
        _say(progress, f"profiling {config.model} (serving path, concurrency 1..{max(config.replicas)})")
        profile = run_profile(pc, progress)
        profile.save(out / "profile.json")
    runs: list[dict] = []
    raw = out / "raw"

    def measure(server, c: int, kind: str, u: float, qps: float, label: str, seed: int, repeat: int) -> LiveRun:
        duration = config.duration_s if kind == "measurement" else config.calibration_s
        settings = RunSettings(qps, duration, config.min_query_count, seed, SAMPLE_COUNT)
        where = raw / f"C{c}_b{config.batch_size}" / f"rho{u:g}" / label
        run = run_server_scenario(server, settings, where)
        for junk in ("mlperf_log_accuracy.json", "mlperf_log_trace.json"):
            (where / junk).unlink(missing_ok=True)
        if config.keep_records:
            save_run(run, where)
        lat = run.summary.latency_ms()
        rho = busy_fraction(run.records, c, config.batch_timeout_s)
        _say(progress, f"  C={c} rho={u:g} {label}: {run.summary.arrival_rate:.1f} req/s, busy {rho:.3f}, "
                       f"mean {lat['mean']:.3f} ms, p99 {lat['p99']:.3f} ms, load {run.loadavg['end']}")
        runs.append({"kind": kind, "replicas": c, "utilization": u, "repeat": repeat, "label": label, "run": run})
        # Let the host settle between runs (page cache, the response backlog's garbage, CPU frequency),
        # longer after a saturated run, so that one run's overload does not leak into the next.
        time.sleep(COOLDOWN_S * (3 if rho >= SATURATED else 1))
        return run

    for c in config.replicas:
        with _start_server(config, c, loadgen_completion()) as server:
            # Replica processes share no GIL: their nominal E[S] is the profile's alone (concurrency 1).
            nominal_s = replica_service_mean(profile, c if config.server == "thread" else 1)
            rates = {u: u * c / nominal_s for u in config.utilizations}
            seed = config.seed * 1000 + 100 * c
            if config.calibration_s > 0:
                # Targeting: a run at the nominal rate, then one at the rate that its measured busy fraction
                # says gives utilization u; the rate the two runs point to is used from then on.
                for u in config.utilizations:
                    def targeting(rate: float, step: int, u=u, c=c) -> tuple[float, float]:
                        nonlocal seed
                        seed += 1
                        run = measure(server, c, "targeting", u, rate, f"targeting{step}", seed + 500, -1)
                        return run.summary.arrival_rate, busy_fraction(run.records, c, config.batch_timeout_s)

                    rates[u] = aim_rate(targeting, rates[u], u)
            for r in range(config.repeats):
                for u in config.utilizations:
                    if config.calibration_s > 0:
                        seed += 1
                        measure(server, c, "calibration", u, rates[u], f"repeat{r + 1}-calibration", seed + 500, r)
                    seed += 1
                    measure(server, c, "measurement", u, rates[u], f"repeat{r + 1}", seed, r)
    if config.keep_records:
        save_index(out, config, runs)
    return {"profile": profile.to_dict(), "runs": runs}


RECORD_FIELDS = ("enqueued", "started", "finished", "done", "batch_size", "busy", "worker")


def save_run(run: LiveRun, folder: str | os.PathLike) -> Path:
    """Write a run's server timestamps and settings beside its LoadGen logs (``server_records.npz``)."""
    meta = {"settings": asdict(run.settings), "wall_s": run.wall_s, "loadavg": run.loadavg}
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.asarray(json.dumps(meta)), **{f: getattr(run.records, f) for f in RECORD_FIELDS})
    return atomic_write_bytes(Path(folder) / "server_records.npz", buf.getvalue())


def save_index(outdir: str | os.PathLike, config: ValidationConfig, runs: list[dict]) -> Path:
    """``raw/runs.json``: the campaign's configuration and its runs in order, each with its folder."""
    out = Path(outdir)
    return atomic_write_json(out / "raw" / "runs.json", {
        "config": asdict(config),
        "runs": [{k: item[k] for k in _RUN_KEYS} | {"folder": str(item["run"].summary_path.parent.relative_to(out))}
                 for item in runs]})


_RUN_KEYS = ("kind", "replicas", "utilization", "repeat", "label")
CAMPAIGN_KEYS = ("command", "started_at", "finished_at", "machine", "versions", "loadavg_before", "loadavg_after")


def save_campaign(outdir: str | os.PathLike, context: dict) -> Path:
    """``raw/campaign.json``: where, when and how a kept campaign was measured (its command, times,
    machine, software, load averages), so that a report predicted again from it still says so."""
    raw = Path(outdir) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(raw / "campaign.json", {k: context[k] for k in CAMPAIGN_KEYS if k in context})


def load_campaign(outdir: str | os.PathLike) -> dict:
    """What :func:`save_campaign` wrote ({} for a campaign kept before it existed, or an unreadable file)."""
    try:
        data = json.loads((Path(outdir) / "raw" / "campaign.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: data[k] for k in CAMPAIGN_KEYS if k in data} if isinstance(data, dict) else {}


def load_run(folder: str | os.PathLike) -> LiveRun:
    """The :class:`LiveRun` :func:`save_run` wrote into ``folder`` (with its LoadGen summary)."""
    from .server import ServerRecords
    from .summary import read_summary

    folder = Path(folder)
    try:
        with np.load(folder / "server_records.npz") as data:
            records = ServerRecords(*(np.asarray(data[f]) for f in RECORD_FIELDS))
            meta = json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{folder}: no readable server_records.npz ({exc}); was the run kept "
                         "with --keep-records?") from None
    summary_path = folder / "mlperf_log_summary.txt"
    return LiveRun(RunSettings(**meta["settings"]), read_summary(summary_path), summary_path, records,
                   meta["wall_s"], meta["loadavg"])


def load_live(outdir: str | os.PathLike) -> tuple[ValidationConfig, dict]:
    """A kept campaign (``--keep-records``) as :func:`live_phase` returned it, and its configuration."""
    out = Path(outdir)
    index_path = out / "raw" / "runs.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        profile = Profile.load(out / "profile.json")
    except (OSError, ValueError) as exc:
        raise InputError(f"{out} holds no kept campaign (raw/runs.json, profile.json): {exc}; run "
                         "simulator validate ... --keep-records first") from None
    config = ValidationConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in index["config"].items()})
    runs = [{k: item[k] for k in _RUN_KEYS} | {"run": load_run(out / item["folder"])} for item in index["runs"]]
    return config, {"profile": profile.to_dict(), "runs": runs}


def aim_rate(run_at: Callable[[float, int], tuple[float, float]], nominal_rate: float, utilization: float,
             steps: int = 2) -> float:
    """The arrival rate for ``utilization``, from ``steps`` short targeting runs: the first at
    ``nominal_rate``, each next one at the rate the runs so far point to (:func:`target_rate`).
    ``run_at(rate, step)`` runs one and returns its (measured rate, measured busy fraction); a run that
    measured no busy fraction leaves the rate as it was."""
    rate, seen = nominal_rate, []
    for step in range(1, steps + 1):
        measured, busy = run_at(rate, step)
        if math.isfinite(busy) and busy > 0 and measured > 0:
            seen.append((measured, busy))
            rate = target_rate(seen, utilization)
    return rate


def target_rate(seen: list[tuple[float, float]], utilization: float) -> float:
    """The arrival rate that should keep the replicas ``utilization`` busy, from targeting runs
    ``(measured rate, measured busy fraction)``.

    Busy fraction is not proportional to the rate here: effective service times shrink as the load rises
    (fewer wake-ups after idle), so scaling the last run's rate by ``u / busy`` falls short near capacity
    (a 0.85 target reached 0.74). Through two runs a power law busy = k·rate^α is fitted and solved for
    u, with α clamped to [0.5, 1.5] and the answer to within 20% of the proportional one, so that two
    noisy runs cannot send the rate far off (a saturated run measures nothing); with one run
    (or two at the same rate) it scales proportionally.
    """
    (r2, b2) = seen[-1]
    proportional = r2 * utilization / b2
    if len(seen) < 2:
        return proportional
    (r1, b1) = seen[-2]
    if r1 <= 0 or r2 <= 0 or abs(math.log(r2 / r1)) < 0.02 or b1 <= 0:
        return proportional
    alpha = min(max(math.log(b2 / b1) / math.log(r2 / r1), 0.5), 1.5)
    solved = r2 * (utilization / b2) ** (1.0 / alpha)
    return min(max(solved, proportional / MAX_TARGET_STEP), proportional * MAX_TARGET_STEP)


def replica_threads(replicas: int) -> int:
    """Intra-op threads of each replica process: the usable cores shared out, at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // replicas)


def _start_server(config: ValidationConfig, replicas: int, complete):
    """The serving process's model replicas: worker processes (default) or threads of this process."""
    if config.server == "process":
        from .process_server import ProcessModelServer

        return ProcessModelServer(config.model, config.seed, SAMPLE_COUNT, complete, workers=replicas,
                                  max_batch_size=config.batch_size, batch_timeout_s=config.batch_timeout_s,
                                  threads=replica_threads(replicas))
    from ..profiling.profiler import ProfileConfig, prepare
    from ..profiling.zoo import make_inputs
    from .server import ModelServer

    prepared = prepare(ProfileConfig(config.model, seed=config.seed), None)
    samples = list(make_inputs(prepared.input, SAMPLE_COUNT, np.random.default_rng([config.seed, 11])))
    return ModelServer(prepared.factory(None), samples, complete, workers=replicas,
                       max_batch_size=config.batch_size, batch_timeout_s=config.batch_timeout_s)


def _live_in_child(config: ValidationConfig, outdir: str, verbose: bool) -> dict:
    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    return live_phase(config, outdir, progress=progress if verbose else None)


# -- prediction ----------------------------------------------------------------------------------------
def predict(profile_path: str | os.PathLike, replicas: int, arrival_rate: float, *, batch_size: int = 1,
            batch_timeout_s: float = 0.0, overhead_s: float = 0.0, requests: int = 50_000,
            replications: int = 4, seed: int = 0, engine: str = "auto", contention: str = "auto",
            order: ServiceOrder | None = None, host_level: float = 1.0) -> Result:
    """Simulate a server of ``replicas`` workers with the profile's service times at ``arrival_rate``.

    ``order``: draw service times by a block bootstrap of measured ones in their measured order
    (:mod:`.ordered`) instead of independently. ``contention``: ``auto`` = ``shared`` when the profile has a concurrency sweep (replicas slow each
    other down by its factors), else ``none``. The client-side overhead and load factors a profile
    measured under load carries (``under_load``) are applied by ``simulate`` itself; ``overhead_s`` > 0 adds
    one to a profile without (a deterministic post-processing stage, a pure delay). Each
    replication starts empty and keeps every request, as a LoadGen run does. ``host_level``: service times ×
    this (:attr:`~simulator.scenario.Service.host_level`).
    """
    from ..simulate import simulate

    scenario = _scenario(profile_path, replicas, arrival_rate, batch_size, batch_timeout_s, overhead_s, requests,
                         replications, seed, contention, host_level)
    return simulate(scenario, engine=engine, seed=seed, service_order=order)


def predict_band(profile_path: str | os.PathLike, replicas: int, arrival_rate: float, *, batch_size: int = 1,
                 batch_timeout_s: float = 0.0, requests: int = 50_000, replications: int = 4, seed: int = 0,
                 engine: str = "auto"):
    """:func:`predict`'s scenario at the host levels its profile's ``under_load.host_level`` spans
    (:func:`~simulator.simulate.host_level_band`; None when the profile does not say)."""
    from ..simulate import host_level_band

    scenario = _scenario(profile_path, replicas, arrival_rate, batch_size, batch_timeout_s, 0.0, requests,
                         replications, seed, "auto", 1.0)
    return host_level_band(scenario, engine=engine, seed=seed)


def _scenario(profile_path, replicas, arrival_rate, batch_size, batch_timeout_s, overhead_s, requests,
              replications, seed, contention, host_level) -> Scenario:
    """The scenario :func:`predict` simulates (see there)."""
    if contention == "auto":
        contention = "shared" if len(load_profile_cached(profile_path).concurrency_levels) >= 2 else "none"
    if overhead_s > 0 and _profile_overhead(load_profile_cached(profile_path)) > 0:
        raise InputError(f"{profile_path} already carries a client-side overhead (under_load); "
                         "give no other overhead with it")
    stages = (Stage("client overhead", overhead_s, 0.0, "deterministic", None),) if overhead_s > 0 else ()
    return Scenario(arrivals=Arrivals(rate=arrival_rate),
                    service=Service(profile=str(profile_path), contention=contention, host_level=host_level),
                    replicas=replicas, batching=Batching(batch_size, batch_timeout_s if batch_size > 1 else 0.0),
                    post_stages=stages, run=Run(requests=requests, replications=replications, seed=seed, warmup="none"))


def recommended_variant(config: ValidationConfig) -> str:
    """The under-load profile a campaign recommends: the measured-order one when its calibration runs are
    as long as the measured ones (slow stretches last seconds: with 20-s runs it met 23 and 21 of 24 cells
    against 22 and 18 for drift windows, campaigns M and N; with 60-s runs 17 and 19 against 16 and 17,
    K and L), the drift-window one with shorter runs (13 and 17 against 17 and 15 with 5-s runs, I and J)."""
    return "under_load_ordered" if config.calibration_s >= config.duration_s else "under_load"


def _profile_overhead(profile: Profile) -> float:
    """Client-side overhead (s) a profile measured under load carries, else 0."""
    under = profile.under_load
    return under.client_overhead_s if under is not None else 0.0


def _cases_from_runs(config: ValidationConfig, runs: list[dict]) -> list[Case]:
    cases: dict[tuple[int, float], Case] = {}
    for item in runs:
        if item["kind"] != "measurement":
            continue
        run: LiveRun = item["run"]
        key = (item["replicas"], item["utilization"])
        case = cases.setdefault(key, Case(item["replicas"], config.batch_size, item["utilization"]))
        case.measured.append(run.summary.latency_ms())
        case.arrival_rates.append(run.summary.arrival_rate)
        case.repeats.append(item["repeat"])
        case.summary_paths.append(str(run.summary_path))
        case.loadavg.append(run.loadavg)
        case.server.append(_server_stats(run, item["replicas"], config.batch_timeout_s))
    return [cases[k] for k in sorted(cases)]


def _server_stats(run: LiveRun, replicas: int, batch_timeout_s: float) -> dict:
    """What the server saw in one run: effective service (all, after an idle worker, back to back),
    busy fraction, mean batch size, enqueue → done mean, LoadGen's minus the server's mean latency."""
    r = run.records
    if r.n == 0:
        return {"requests": 0}
    eff = effective_batches(r, batch_timeout_s)
    s, idle = eff["service_s"], eff["found_idle"]

    def ms(x: np.ndarray) -> float | None:
        return float(x.mean() * 1e3) if x.size else None

    return {"requests": r.n, "batches": int(s.size), "effective_service_mean_ms": ms(s),
            "effective_service_after_idle_ms": ms(s[idle]), "effective_service_back_to_back_ms": ms(s[~idle]),
            "found_idle_fraction": float(idle.mean()), "model_call_mean_ms": ms(r.model_s),
            "mean_batch_size": float(eff["batch_size"].mean()),
            "busy_fraction": busy_fraction(r, replicas, batch_timeout_s),
            "server_sojourn_mean_ms": ms(r.sojourn_s),
            "client_overhead_mean_ms": run.summary.mean_ns / 1e6 - float(r.sojourn_s.mean() * 1e3)}


def _measured_runs(runs: list[dict], case: Case) -> list[LiveRun]:
    return [item["run"] for item in runs if item["kind"] == "measurement" and item["replicas"] == case.replicas
            and item["utilization"] == case.utilization]


def _replay(config: ValidationConfig, profile: Profile, case: Case, point: LoadPoint, rate: float, *, seed: int,
            tmp: str) -> Result:
    """Diagnostic, not a prediction: simulate a measured run (``point``, its own server records, at its
    ``rate``) with the service times measured inside the server *during that run*. What remains of the
    error is the queue model's (i.i.d. service times, contention at the start of service, a constant
    overhead), not the host's drift between runs."""
    prof, _ = calibrated_profile(profile, [point], rate)
    path = Path(tmp) / f"replay_{case.replicas}_{case.utilization}_{seed}.json"
    prof.save(path)
    return predict(path, case.replicas, rate, **config.simulation(rate, seed))


def _in_measured_order(config: ValidationConfig, profile: Profile, point: LoadPoint, replicas: int, rate: float,
                       path: Path, seed: int) -> Result:
    """Predict with ``point``'s service times drawn in their measured order (a block bootstrap,
    :mod:`.ordered`): the order carries the host's drift itself, so the profile has no environment."""
    plain, _ = calibrated_profile(profile, [point], rate, drift=False)
    plain.save(path)
    return predict(path, replicas, rate, order=point.without_drift().order(), **config.simulation(rate, seed))


def _measured_point(config: ValidationConfig, case: Case, run: LiveRun) -> LoadPoint:
    """A measured run's own server records as a load point (diagnostics only: no prediction uses them)."""
    return load_point(run.records, run.summary.mean_ns / 1e9, run.summary.arrival_rate, case.replicas,
                      case.utilization or 0.0, config.batch_timeout_s)


def _drift_scales(points: dict[str, list[LoadPoint]]) -> dict[str, dict[float, float | None]]:
    """Per kind of run, the host drift's sd at each time scale (:func:`drift_by_scale`), root mean square
    over the runs that have that scale."""
    out = {}
    for kind, pts in points.items():
        per_run = [drift_by_scale(p) for p in pts]
        scales: dict[float, float | None] = {}
        for w in DRIFT_SCALES_S:
            vals = [r[w] for r in per_run if r.get(w) is not None]
            scales[w] = float(np.sqrt(np.mean(np.square(vals)))) if vals else None
        out[kind] = scales
    return out


def _calibration_point(config: ValidationConfig, runs: list[dict], case: Case, repeat: int) -> LoadPoint | None:
    """The calibration run right before a measured run (same replicas, load and repeat) as a load point:
    the nearest measurement in time, so the host's drift between runs matters least. None when
    calibration is off."""
    for item in runs:
        if (item["kind"] == "calibration" and item["replicas"] == case.replicas
                and item["utilization"] == case.utilization and item["repeat"] == repeat):
            run: LiveRun = item["run"]
            return load_point(run.records, run.summary.mean_ns / 1e9, run.summary.arrival_rate, case.replicas,
                              case.utilization, config.batch_timeout_s,
                              meta={"run": str(run.summary_path), "loadavg": run.loadavg,
                                    "busy": busy_fraction(run.records, case.replicas, config.batch_timeout_s)},
                              loadgen_latency_ms=run.summary.latency_ms())
    return None


def run_validation(config: ValidationConfig, outdir: str | os.PathLike, progress: Progress | None = print,
                   in_child: bool = True) -> tuple[list[Case], dict]:
    """Run the campaign, predict every measured run, and return the cases and the context of the run.

    ``in_child``: run the live phase in a fresh (spawned) process, as a real server would be.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if in_child:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            live = pool.submit(_live_in_child, config, str(out), progress is not None).result()
    else:
        live = live_phase(config, str(out), progress)
    return evaluate(config, live, out, progress)


def evaluate(config: ValidationConfig, live: dict, outdir: str | os.PathLike,
             progress: Progress | None = print) -> tuple[list[Case], dict]:
    """Predict every measured run of a live phase's result and return the cases and their context."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    profile = Profile.from_dict(live["profile"], origin=str(out / "profile.json"))
    profile_path = out / "profile.json"
    profile.save(profile_path)
    runs = live["runs"]
    cases = _cases_from_runs(config, runs)
    cal_dir = out / "profiles"
    cal_dir.mkdir(exist_ok=True)
    calibration_points: dict[int, list] = {}
    live_points: dict[int, list[LoadPoint]] = {}
    measured_points: dict[int, list[LoadPoint]] = {}  # every measured run, in case order
    _say(progress, "predicting")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            iso, cal, ordered, points = [], [], [], []
            for i, (rate, repeat) in enumerate(zip(case.arrival_rates, case.repeats)):
                kw = config.simulation(rate, config.seed + i)
                # The profile's concurrency sweep ran threads of one process: it describes thread replicas
                # (a shared GIL), not replica processes.
                iso.append(predict(profile_path, case.replicas, rate,
                                   contention="auto" if config.server == "thread" else "none", **kw))
                point = _calibration_point(config, runs, case, repeat)
                if point is not None:
                    points.append(point)
                    prof, _ = calibrated_profile(profile, [point], rate)
                    path = Path(tmp) / f"cal_{case.replicas}_{case.utilization}_{i}.json"
                    prof.save(path)
                    cal.append(predict(path, case.replicas, rate, **kw))  # the overhead is in the profile
                    if config.ordered:
                        ordered.append(_in_measured_order(config, profile, point, case.replicas, rate,
                                                          Path(tmp) / f"ord_{case.replicas}_{case.utilization}_{i}.json",
                                                          config.seed + i))
                    if i == 0:
                        prof.save(cal_dir / f"calibrated_C{case.replicas}_b{config.batch_size}"
                                            f"_rho{case.utilization:g}.json")
            case.predictions["isolated"] = iso
            if cal:
                case.predictions["calibrated"] = cal
            if ordered:
                case.predictions["ordered"] = ordered
            own = [_measured_point(config, case, run) for run in _measured_runs(runs, case)]
            if config.replay:
                case.predictions["replay"] = [
                    _replay(config, profile, case, point, rate, seed=config.seed + i, tmp=tmp)
                    for i, (point, rate) in enumerate(zip(own, case.arrival_rates))]
            if config.replay and config.ordered and len(own) >= 2:
                # Diagnostic: each measured run predicted from the next measured run of the same load,
                # in its measured order: what a calibration run as long as the measured ones, whose slow
                # stretches are kept, would give (a real prediction would need such a run beforehand).
                case.predictions["neighbour"] = [
                    _in_measured_order(config, profile, own[(i + 1) % len(own)], case.replicas, rate,
                                       Path(tmp) / f"nb_{case.replicas}_{case.utilization}_{i}.json", config.seed + i)
                    for i, rate in enumerate(case.arrival_rates)]
            calibration_points.setdefault(case.replicas, []).extend(
                {"arrival_rate": p.arrival_rate, "utilization": p.utilization, "mean_ms": p.mean() * 1e3,
                 "busy": p.meta.get("busy"), "overhead_ms": p.overhead_s * 1e3, "slowdown": p.slowdown(),
                 "warmup": {"idle_s": list(p.warmup[0]), "factor": list(p.warmup[1])},
                 "drift_sd": float(np.std(p.environment[1])) if p.environment[1] else 0.0}
                for p in points)
            live_points.setdefault(case.replicas, []).extend(points)
            measured_points.setdefault(case.replicas, []).extend(own)
        # One profile per replica count from every calibration run at every load: the model that
        # `simulate --profile` and `plan` use (service times under load, load factors, client overhead).
        # The same without the host drift (under_load.environment), published beside it for comparison.
        # The same with the samples in their measured order instead (slow stretches kept as they came).
        variants = {"under_load": {"drift": True}, "under_load_no_drift": {"drift": False},
                    "under_load_ordered": {"ordered": True}}
        variant_paths: dict[str, dict[int, str]] = {name: {} for name in variants}
        levels_by_c = {c: host_level(pts) for c, pts in sorted(live_points.items())}  # refits every run: once
        for c, pts in live_points.items():
            for name, kw in variants.items():
                path = cal_dir / f"{name}_C{c}_b{config.batch_size}.json"
                under_load_profile(profile, pts, level=levels_by_c[c], **kw).save(path)
                variant_paths[name][c] = str(path)
        # Diagnostic: how far each measured run's host was from the calibration runs' line at its load (one
        # line per replica count; measured_points holds the runs in case order, so they are dealt back)
        for c, pts in live_points.items():
            if len(pts) >= 2:
                levels = iter(levels_against(pts, measured_points[c]))
                for case in cases:
                    if case.replicas == c:
                        case.host_levels = [next(levels) for _ in case.arrival_rates]
        use = recommended_variant(config)
        for case in cases:
            for key, paths in variant_paths.items():
                if case.replicas in paths:
                    case.predictions[key] = [
                        predict(paths[case.replicas], case.replicas, rate, **config.simulation(rate, config.seed + i))
                        for i, rate in enumerate(case.arrival_rates)]
            if case.replicas in variant_paths[use]:
                path = variant_paths[use][case.replicas]
                # How sure: the recommended profile at the host levels its calibration runs' spread spans
                bands = [predict_band(path, case.replicas, rate, **config.simulation(rate, config.seed + i))
                         for i, rate in enumerate(case.arrival_rates)]
                if all(b is not None for b in bands):
                    case.band = bands
                if case.host_levels:
                    # Diagnostic: the same profile at each measured run's own host level (known only after)
                    case.predictions["at_level"] = [
                        predict(path, case.replicas, rate, host_level=1.0 + level,
                                **config.simulation(rate, config.seed + i))
                        for i, (rate, level) in enumerate(zip(case.arrival_rates, case.host_levels))]
            _say(progress, _case_line(case))
    context = {"config": _config_dict(config), "profile": str(profile_path), "recommended_variant": use,
               "isolated_mean_ms": {c: replica_service_mean(profile, c) * 1e3 for c in config.replicas},
               "calibration_points": calibration_points,
               **{f"{name}_profiles": paths for name, paths in variant_paths.items()},
               "host_level": levels_by_c,
               "drift_by_scale": {c: _drift_scales({"calibration": live_points.get(c, []),
                                                    "measured": measured_points.get(c, [])})
                                  for c in sorted(set(live_points) | set(measured_points))},
               "loadavg_runs": [c.loadavg for c in cases]}
    return cases, context


def _config_dict(config: ValidationConfig) -> dict:
    d = asdict(config)
    d["batch_timeout_ms"] = d.pop("batch_timeout_s") * 1e3
    return d


def _case_line(case: Case) -> str:
    parts = [f"C={case.replicas} rho={case.utilization if case.utilization is not None else '-'}"]
    for row in case.rows():
        errs = " ".join(f"{m}={row[f'{m}_error_pct']:+.1f}%" for m in case.predictions
                        if math.isfinite(row.get(f"{m}_error_pct", math.nan)))
        parts.append(f"{row['metric']} {row['measured_ms']:.2f} ms ({errs}; spread {row['spread_pct']:.1f}%)")
    return "  " + "; ".join(parts)


# -- offline: LoadGen summaries measured elsewhere ----------------------------------------------------
def compare_summaries(summaries: list[tuple[str, LoadGenSummary]], profile_path: str | os.PathLike,
                      replicas: int, *, batch_size: int = 1, batch_timeout_s: float = 0.0,
                      overhead_s: float | None = None, requests: int = 0, replications: int = 800,
                      seed: int = 0, engine: str = "auto") -> list[Case]:
    """Predict each LoadGen summary at its measured arrival rate and compare.

    ``requests`` per replication; 0: as many as the run had (its rate × LoadGen's ``min_duration``, 50,000
    when the summary does not say), as for a live campaign (:meth:`ValidationConfig.sim_requests_for`).

    Summaries with the same ``target_qps`` are repeats of one case (their spread is reported). The
    client-side overhead defaults to the one a calibrated profile carries (0 for an isolated profile).
    """
    prof = Profile.load(profile_path)
    if overhead_s is None:
        overhead_s = _profile_overhead(prof)
    groups: dict[float, Case] = {}
    runs_of: dict[float, list[LoadGenSummary]] = {}
    for path, s in summaries:
        key = round(s.target_qps or s.arrival_rate, 3)
        case = groups.setdefault(key, Case(replicas, batch_size, None))
        runs_of.setdefault(key, []).append(s)
        case.measured.append(s.latency_ms())
        case.arrival_rates.append(s.arrival_rate)
        case.summary_paths.append(path)
    mean_s = replica_service_mean(prof, replicas)
    for key, case in groups.items():
        case.utilization = round(float(np.mean(case.arrival_rates)) * mean_s / replicas, 4)
        case.predictions["profile"] = [
            predict(profile_path, replicas, s.arrival_rate, batch_size=batch_size, batch_timeout_s=batch_timeout_s,
                    overhead_s=overhead_s, requests=requests or _run_length(s), replications=replications,
                    seed=seed + i, engine=engine)
            for i, s in enumerate(runs_of[key])]
    return [groups[k] for k in sorted(groups)]


def run_requests(arrival_rate: float, duration_s: float) -> int:
    """Requests of a run of ``duration_s`` at ``arrival_rate``: what a simulated replication as long as the
    measured run holds (at least 1,000)."""
    return max(1000, round(arrival_rate * duration_s))


def _run_length(summary: LoadGenSummary) -> int:
    """Requests of a run measured elsewhere: :func:`run_requests` over LoadGen's min_duration (50,000 when
    the summary does not say)."""
    duration = summary.duration_s
    return run_requests(summary.arrival_rate, duration) if duration else 50_000
