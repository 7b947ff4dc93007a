"""Drive a :class:`~simulator.validate.server.ModelServer` with MLPerf LoadGen's Server scenario.

LoadGen issues queries at Poisson arrival times (rate ``target_qps``) to a SystemUnderTest whose
``issue_query`` puts each sample on the server's queue; the server's workers call
``QuerySamplesComplete`` when a batch is done. LoadGen measures every query from its scheduled issue time
to its completion and writes ``mlperf_log_summary.txt`` (parsed by :mod:`.summary`) and
``mlperf_log_detail.txt`` into the run's folder.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..validation import check_integer, check_positive
from .server import ModelServer, Request, ServerRecords
from .summary import LoadGenSummary, read_summary

__all__ = ["LiveRun", "RunSettings", "import_loadgen", "loadgen_completion", "run_server_scenario"]


def import_loadgen():
    """Import ``mlperf_loadgen`` or explain how to install it."""
    try:
        import mlperf_loadgen
    except ImportError as exc:
        raise InputError("live validation needs MLPerf LoadGen: pip install 'serving-simulator[loadgen]' "
                         f"(mlcommons-loadgen) ({exc})") from None
    return mlperf_loadgen


@dataclass(frozen=True)
class RunSettings:
    """One LoadGen Server-scenario run.

    Parameters
    ----------
    target_qps : float
        Poisson arrival rate LoadGen schedules (requests/s).
    duration_s : float
        LoadGen's ``min_duration``: the run lasts at least this long (s).
    min_query_count : int
        LoadGen's ``min_query_count``.
    seed : int
        LoadGen's schedule, sample-index and QSL seeds (different seeds: different Poisson schedules).
    sample_count : int
        Size of the query sample library (inputs held in memory).
    trace : bool
        Also write LoadGen's per-query trace (``mlperf_log_trace.json``; large, and its writer costs CPU).
    """

    target_qps: float
    duration_s: float
    min_query_count: int = 100
    seed: int = 0
    sample_count: int = 256
    trace: bool = False

    def __post_init__(self) -> None:
        check_positive("target_qps", self.target_qps)
        check_positive("duration_s", self.duration_s)
        check_integer("min_query_count", self.min_query_count, minimum=1)
        check_integer("seed", self.seed, minimum=0, maximum=2**63 - 1)
        check_integer("sample_count", self.sample_count, minimum=1)


@dataclass
class LiveRun:
    """What one run measured: LoadGen's summary, the server's own timestamps, wall time, machine load."""

    settings: RunSettings
    summary: LoadGenSummary
    summary_path: Path
    records: ServerRecords
    wall_s: float
    loadavg: dict


def loadgen_completion():
    """The server's completion callback: report a finished batch to LoadGen (no response payload)."""
    lg = import_loadgen()
    response, complete = lg.QuerySampleResponse, lg.QuerySamplesComplete

    def complete_batch(batch: list[Request]) -> None:
        complete([response(r.id, 0, 0) for r in batch])

    return complete_batch


def run_server_scenario(server: ModelServer, settings: RunSettings, outdir: str | os.PathLike) -> LiveRun:
    """Run one LoadGen Server-scenario test against a started ``server``; logs go to ``outdir``."""
    lg = import_loadgen()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    submit = server.submit

    def issue_query(query_samples) -> None:
        for s in query_samples:
            submit(s.id, s.index)

    def flush_queries() -> None:
        pass

    def load_samples(indices) -> None:  # inputs live in the server's sample store already
        pass

    ts = lg.TestSettings()
    ts.scenario = lg.TestScenario.Server
    ts.mode = lg.TestMode.PerformanceOnly
    ts.server_target_qps = float(settings.target_qps)
    ts.min_duration_ms = int(settings.duration_s * 1000)
    # A run that cannot finish its queries in 4x the planned time is overloaded; LoadGen stops it then.
    ts.max_duration_ms = int(settings.duration_s * 4000) + 10_000
    ts.min_query_count = settings.min_query_count
    # The latency bound only decides LoadGen's VALID/INVALID verdict, not what is measured.
    ts.server_target_latency_ns = 10**9
    ts.schedule_rng_seed = ts.sample_index_rng_seed = ts.qsl_rng_seed = settings.seed
    log = lg.LogSettings()
    log.log_output.outdir = str(out)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = settings.trace

    sut = lg.ConstructSUT(issue_query, flush_queries)
    qsl = lg.ConstructQSL(settings.sample_count, settings.sample_count, load_samples, load_samples)
    load_start = _loadavg()
    server.start_recording()
    start = time.perf_counter()
    try:
        lg.StartTestWithLogSettings(sut, qsl, ts, log)
    finally:
        wall = time.perf_counter() - start
        records = server.stop_recording()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    path = out / "mlperf_log_summary.txt"
    return LiveRun(settings, read_summary(path), path, records, wall,
                   {"start": load_start, "end": _loadavg()})


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None
