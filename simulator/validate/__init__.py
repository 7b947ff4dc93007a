"""Validation: a real server under MLPerf LoadGen, its measured latencies against the simulator's.

Modules: :mod:`.server` (the serving process: queue, worker threads, dynamic batcher), :mod:`.loadgen`
(LoadGen's Server scenario against it), :mod:`.summary` (``mlperf_log_summary.txt``), :mod:`.calibration`
(service times under load), :mod:`.compare` (errors, spread, goal), :mod:`.harness` (the campaign),
:mod:`.report` (CSV, Markdown, PNG, JSON). Importing this package needs neither TensorFlow nor LoadGen.
"""

from __future__ import annotations

from .compare import ERROR_LIMITS, METRICS, meets_goal, relative_error, spread
from .summary import LoadGenSummary, parse_summary, read_summary

__all__ = ["ERROR_LIMITS", "METHOD", "METRICS", "LoadGenSummary", "meets_goal", "parse_summary", "read_summary",
           "relative_error", "spread"]

METHOD = """
1. **Profile** the model through the project's serving path (request queue → worker thread → response),
   with a concurrency sweep 1..C (`simulator profile MODEL --serving-path --concurrency 1,..,C`).
2. **Serve** it from a fresh process as a Python model server would: one FCFS request queue in front of
   C model replicas — by default C worker *processes* (gunicorn/TorchServe style: a Keras model called
   eagerly is mostly Python, and threads of one interpreter serialise on the GIL), each with the host's
   cores shared out as TensorFlow intra-op threads; `--server thread` runs C threads of one process
   instead — a dynamic batcher when the batch size is above 1 (a batch starts when B requests wait or
   the oldest has waited the timeout, and a replica is free), and LoadGen's `QuerySamplesComplete` as
   the response path.
3. **Drive** it with MLPerf LoadGen's Server scenario (Poisson arrivals, `min_duration`,
   `min_query_count`). The load is a utilization ρ: two short *targeting* runs per load, the first at
   `ρ·C / E[S]` (E[S] from the profile), the second at the rate that the first's measured busy fraction
   says gives ρ; the rate the second refines is then used by every run at that load. Each measured run
   is repeated (a different schedule seed each time) to measure the real system's own spread. The
   measured latencies are LoadGen's (`mlperf_log_summary.txt`: scheduled issue → completion), the
   measured arrival rate is LoadGen's scheduled samples per second.
4. **Calibrate** (service times under load): right before each measured run, a short live run at the
   same rate records, inside the server, every batch's *effective service time* — the time its worker
   is unavailable, `done − max(previous done of that worker, enqueue of the batch's oldest request)`,
   which includes the worker's wake-up when the request found it idle and the response hand-off — grouped
   by the number of busy workers at its start (the contention slow-down of replicas sharing the cores),
   and the *client-side overhead*: LoadGen's mean latency minus the server's mean enqueue → done time
   (LoadGen's issue thread, the request and response paths, which do not occupy a worker), and the
   *warm-up after idle*: how much slower a batch is served when its worker sat idle for t seconds before
   the batch's oldest request arrived, against the batches nearest in time whose oldest request waited
   (back to back; nearest, so that the host's slow stretches, where queues form, do not pass for
   warm-up), as a table of factors by idle time (`under_load.idle_factors`, fitted by
   `simulator.validate.calibration.fit_warmup`), and the *host drift*: each 0.25-s window's mean
   service over the run's (`under_load.environment`, `fit_environment`; with several workers only the
   part their window means share, their covariance, since the factor slows every replica at once). These become a profile with
   `method.path = "serving-under-load"` (back-to-back samples with the drift divided out at
   concurrency 1, busy-worker groups as concurrency points, the warm-up table, the drift and the
   overhead in its `under_load` block).
5. **Predict** every measured run at its own measured arrival rate with `simulate` (C replicas,
   `contention = shared`, the calibrated profile: every engine applies the warm-up factor of each batch's
   replica idle time and the drift factor of the window it starts in, and the overhead as a pure delay),
   and, for comparison, with the isolated profile alone. The measured-order models draw the calibration
   runs' service times by a block bootstrap in their measured order (`simulator.ordered`) instead of
   independently with drift windows, so that slow stretches keep their length: *calibrated, measured
   order* from the calibration run before each measured run, *under-load profile, measured order* from
   all of them (`under_load.service_order`), and, as a diagnostic, each measured run from the next
   measured run of the same load. Each prediction is the mean over 800 simulated
   runs as long as the real one (its rate × duration, starting empty, as a LoadGen run does) of their
   mean and percentiles, as the measured figure is the mean over the real runs of theirs. Errors are
   taken against the mean of the real runs; the real system's spread is the largest deviation of one
   run from that mean.
"""
