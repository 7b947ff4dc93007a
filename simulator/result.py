"""The Result every engine returns, and its JSON form (the contract of ``simulate --json``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}
LATENCY_KEYS = ("mean", *PERCENTILES)

__all__ = ["LATENCY_KEYS", "PERCENTILES", "Result"]


@dataclass
class Result:
    """Predicted behaviour of one scenario at one arrival rate. Latencies in milliseconds.

    ``stable`` is False when the offered load is at or above capacity; the latency fields are then None
    and ``verdict`` says why (offered load, ρ, the fewest replicas that would carry it).
    """

    engine: str
    arrival_rate: float
    requests_simulated: int
    replications: int
    wall_seconds: float
    latency_ms: dict[str, float | None]
    latency_ms_ci95: dict[str, list[float] | None]
    throughput_rps: float | None
    utilization: float | None
    cache_hit_ratio: float | None
    drop_rate: float | None
    mean_batch_size: float | None
    stable: bool
    offered_load: float | None = None
    verdict: str | None = None
    breakdown_ms: dict[str, float] = field(default_factory=dict)
    realtime_ratio: float | None = None
    warmup: dict = field(default_factory=dict)
    precision: dict = field(default_factory=dict)
    analytic: dict | None = None
    seed: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict; non-finite floats become None (strict JSON has no NaN)."""
        return _clean(asdict(self))

    @classmethod
    def unstable(cls, engine: str, arrival_rate: float, utilization: float, offered_load: float,
                 verdict: str, seed: int | None = None) -> Result:
        empty = dict.fromkeys(LATENCY_KEYS)
        return cls(engine=engine, arrival_rate=arrival_rate, requests_simulated=0, replications=0,
                   wall_seconds=0.0, latency_ms=empty, latency_ms_ci95=dict(empty), throughput_rps=None,
                   utilization=utilization, cache_hit_ratio=None, drop_rate=None, mean_batch_size=None,
                   stable=False, offered_load=offered_load, verdict=verdict, seed=seed)


def _clean(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar
        return _clean(obj.item())
    return obj
