"""Replications in parallel: the same results as serially, in seed order."""

from __future__ import annotations

import numpy as np

from simulator import fast
from simulator.montecarlo import summarize
from simulator.scenario import Cache, Run
from simulator.variates import draw_variates, replication_seeds, streams

from .test_fast_engine import make


def test_parallel_equals_serial_exact():
    sc, model = make(B=4, T=0.002)
    seeds = replication_seeds(31, 5)
    serial = fast.run_replications(sc, model, seeds, 5000, workers=1)
    parallel = fast.run_replications(sc, model, seeds, 5000, workers=2)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.latency, b.latency)
        assert a.busy_time == b.busy_time
    # and replication r is exactly the one run on its own from seeds[r]
    alone = fast.run_replication(sc, model, draw_variates(sc, model, 5000, streams(seeds[3])))
    np.testing.assert_array_equal(alone.latency, parallel[3].latency)


def test_parallel_equals_serial_streaming_and_reduce():
    sc, model = make(cache=Cache("lru", 40, 0.9, 400, 0.001))
    seeds = replication_seeds(32, 4)
    kw = {"chunk": 1000, "warmup_fraction": 0.1}
    serial = fast.run_replications(sc, model, seeds, 6000, workers=1, streaming=True, **kw)
    parallel = fast.run_replications(sc, model, seeds, 6000, workers=2, streaming=True, **kw)
    assert serial == parallel
    run = Run(warmup="fraction", warmup_fraction=0.1)
    reduced = fast.run_replications(sc, model, seeds, 6000, workers=2, reduce=lambda o: summarize(o, run))
    assert [r.completed for r in reduced] == [s.completed for s in serial]
