"""Replications on all cores: one thread per core, each drawing its own variates and running the kernel.

The kernels release the GIL (``nogil``) and numpy draws random numbers without it, so threads scale
without the start-up cost of a process pool (each process would import numba and load the compiled
kernels). Replication r always runs on ``seed_seqs[r]`` and results come back in that order, so a
parallel run is identical to a serial one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..scenario import Scenario
from ..service import ServiceModel
from ..validation import check_integer
from ..variates import draw_variates, streams
from ..workload import load_trace
from .engine import check_supported, run_replication
from .streaming import run_streaming

__all__ = ["default_workers", "run_replications"]


def default_workers() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_replications(scenario: Scenario, model: ServiceModel, seed_seqs: Sequence[np.random.SeedSequence],
                     n_requests: int | None = None, *, workers: int | None = None, streaming: bool = False,
                     reduce: Callable | None = None, **stream_kwargs) -> list:
    """Run one replication per seed, in parallel; results in the order of ``seed_seqs``.

    Parameters
    ----------
    scenario, model : Scenario, ServiceModel
        Within :func:`simulator.fast.supports`.
    seed_seqs : sequence of SeedSequence
        One per replication (e.g. :func:`simulator.variates.replication_seeds`).
    n_requests : int, optional
        Requests per replication; default ``scenario.run.requests``.
    workers : int, optional
        Threads; default the cores available; 1 runs serially in this thread.
    streaming : bool
        Use :func:`run_streaming` (summaries, bounded memory) instead of :func:`run_replication`.
    reduce : callable, optional
        Applied to each result inside its worker (e.g. ``lambda o: summarize(o, run)``) so that the
        per-request arrays of finished replications need not be kept.
    **stream_kwargs
        Passed to :func:`run_streaming` (chunk, quantiles, warmup_fraction, return_sketch).
    """
    n = check_integer("requests", scenario.run.requests if n_requests is None else n_requests, minimum=1)
    workers = default_workers() if workers is None else check_integer("workers", workers, minimum=1)
    check_supported(scenario, model)
    trace = load_trace(scenario.arrivals.trace) if scenario.arrivals.process == "trace" else None

    def one(seed_seq):
        if streaming:
            res = run_streaming(scenario, model, n, seed_seq, trace=trace, **stream_kwargs)
        else:
            rngs = streams(seed_seq)
            res = run_replication(scenario, model, draw_variates(scenario, model, n, rngs, trace=trace), rngs)
        return reduce(res) if reduce is not None else res

    if workers == 1 or len(seed_seqs) <= 1:
        return [one(s) for s in seed_seqs]
    with ThreadPoolExecutor(max_workers=min(workers, len(seed_seqs))) as pool:
        return list(pool.map(one, seed_seqs))
