"""Compiled fast engine (numba) for the common subset of a Scenario.

FCFS G/G/c by the Kiefer–Wolfowitz recursion, dynamic batching (greedy and TF-Serving timeout), a
result cache, any arrival process, a queue limit and contention slow-down — the same per-request
outcomes as the SimPy engine (:mod:`simulator.des`) from the same variates, about 140-190x faster end to
end, variates included, and ~390x for the engines alone (see benchmarks/bench_fast.py).

* :func:`supports` — None, or the feature a scenario uses outside the subset.
* :func:`run_replication` — one replication with every request's outcome (:class:`ReplicationOutput`).
* :func:`run_streaming` — one long replication drawn chunk by chunk, statistics only, bounded memory.
* :func:`run_replications` — many replications on all cores (threads), identical to a serial run.
"""

from ._stale import drop_stale_cache

drop_stale_cache()  # before any kernel loads its cached machine code

from .engine import run_replication, supports  # noqa: E402
from .parallel import run_replications  # noqa: E402
from .sketch import RELATIVE_ERROR, LatencySketch  # noqa: E402
from .streaming import run_streaming  # noqa: E402

__all__ = ["RELATIVE_ERROR", "LatencySketch", "run_replication", "run_replications", "run_streaming",
           "supports"]
