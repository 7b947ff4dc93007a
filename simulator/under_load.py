"""Service *under load*: what a profile may say about a live server beyond its isolated service times.

A profile measured in isolation (closed loop, one request right after another) understates what a
server shows under open Poisson load: between requests a worker goes idle and must be woken, the load
generator and the response path compete for the same cores, and the request and response paths add
latency that never occupies a worker. The validation harness measures these inside a live server
(:mod:`simulator.validate.calibration`); a profile carries what it found in an optional block, read by
``simulate`` and ``plan`` alike::

    "under_load": {
        "client_overhead_s": 0.00031,        # latency outside the replicas: a pure delay on every request
        "load_factors": [                    # service-time multiplier against per-replica arrival rate
            {"per_replica_rate": 170.0, "factor": 1.00},
            {"per_replica_rate": 290.0, "factor": 0.93}],
        "measured": "how and where"          # free text, kept for the record
    }

* ``client_overhead_s`` becomes a deterministic post-processing stage with unlimited servers (a pure
  delay), which shifts every latency by the same amount. Every engine runs it, the compiled one too.
* ``load_factors`` scale the profile's service times (all batch sizes, the samples' shape kept) by the
  factor interpolated linearly at the scenario's per-replica arrival rate λ·(1 − expected cache hit
  ratio)/replicas, flat beyond the measured range. Factors are relative to the profile's own samples
  (1.0 at the rate they were measured at).

A profile without the block behaves exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from .errors import ProfileError

__all__ = ["OVERHEAD_STAGE", "UnderLoad", "parse_under_load", "scale_model"]

OVERHEAD_STAGE = "client overhead (profile)"


@dataclass(frozen=True)
class UnderLoad:
    """The parsed ``under_load`` block of a profile (seconds, requests/s)."""

    client_overhead_s: float = 0.0
    rates: tuple[float, ...] = ()
    factors: tuple[float, ...] = ()
    measured: str | None = None

    def factor(self, per_replica_rate: float | None) -> float:
        """Service-time multiplier at ``per_replica_rate`` (1.0 without load factors or rate)."""
        if not self.rates or per_replica_rate is None or not math.isfinite(per_replica_rate):
            return 1.0
        return float(np.interp(per_replica_rate, self.rates, self.factors))

    @property
    def min_factor(self) -> float:
        """Smallest multiplier at any load: what a capacity upper bound may assume."""
        return min(self.factors) if self.factors else 1.0

    def to_dict(self) -> dict:
        out: dict = {"client_overhead_s": self.client_overhead_s}
        if self.rates:
            out["load_factors"] = [{"per_replica_rate": r, "factor": f} for r, f in zip(self.rates, self.factors)]
        if self.measured:
            out["measured"] = self.measured
        return out


def _number(value: object, field: str, where: str, *, positive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        bound = "> 0" if positive else ">= 0"
        raise ProfileError(f"{where}: under_load.{field} must be a finite number {bound}, got {value!r}")
    return float(value)


def parse_under_load(raw: object, where: str) -> UnderLoad | None:
    """Validate a profile's ``under_load`` block (None when absent); ProfileError names the bad field."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: under_load must be an object, got {type(raw).__name__}")
    unknown = set(raw) - {"client_overhead_s", "load_factors", "measured"}
    if unknown:
        raise ProfileError(f"{where}: under_load has unknown field(s) {', '.join(sorted(unknown))}; "
                           "known: client_overhead_s, load_factors, measured")
    overhead = _number(raw.get("client_overhead_s", 0.0), "client_overhead_s", where, positive=False)
    table = raw.get("load_factors", [])
    if not isinstance(table, list):
        raise ProfileError(f"{where}: under_load.load_factors must be a list of "
                           "{per_replica_rate, factor} objects")
    rates, factors = [], []
    for i, row in enumerate(table):
        if not isinstance(row, dict) or set(row) != {"per_replica_rate", "factor"}:
            raise ProfileError(f"{where}: under_load.load_factors[{i}] must be "
                               "{\"per_replica_rate\": R, \"factor\": F}")
        rates.append(_number(row["per_replica_rate"], f"load_factors[{i}].per_replica_rate", where, positive=True))
        factors.append(_number(row["factor"], f"load_factors[{i}].factor", where, positive=True))
    if any(b <= a for a, b in pairwise(rates)):
        raise ProfileError(f"{where}: under_load.load_factors must be in increasing per_replica_rate, got {rates}")
    measured = raw.get("measured")
    if measured is not None and not isinstance(measured, str):
        raise ProfileError(f"{where}: under_load.measured must be a string")
    return UnderLoad(overhead, tuple(rates), tuple(factors), measured)


def scale_model(model, factor: float):
    """``model`` (a :class:`~simulator.service.ServiceModel`) with every service time multiplied by
    ``factor``: the means and the empirical scales, so that both engines read the scaled times."""
    if factor == 1.0:
        return model
    note = f"service times x {factor:.4f}: the profile's under-load factor at this per-replica arrival rate"
    return replace(model, means=model.means * factor, emp_scale=model.emp_scale * factor,
                   notes=tuple(model.notes) + (note,))
