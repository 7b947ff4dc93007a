"""SimPy model of a serving system: every feature of a Scenario; the reference engine.

``run_replication(scenario, model, variates, rngs) -> ReplicationOutput`` simulates one replication from
the pre-drawn per-request variates (:mod:`simulator.variates`) that the compiled engine also reads.
"""

from .engine import run_replication

__all__ = ["run_replication"]
