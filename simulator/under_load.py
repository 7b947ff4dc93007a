"""Service *under load*: what a profile may say about a live server beyond its isolated service times.

A profile measured in isolation (closed loop, one request right after another) understates what a
server shows under open Poisson load: between requests a worker goes idle and must be woken, the load
generator and the response path compete for the same cores, and the request and response paths add
latency that never occupies a worker. The validation harness measures these inside a live server
(:mod:`simulator.validate.calibration`); a profile carries what it found in an optional block, read by
``simulate`` and ``plan`` alike::

    "under_load": {
        "client_overhead_s": 0.00031,        # latency outside the replicas: a pure delay on every request
        "client_overhead_by_load": [         # or by load and statistic (s): mean, p50, p90, p95, p99, p999
            {"per_replica_rate": 250.0, "mean": 0.00021, "p50": 0.00016, "p90": 0.00027, "p95": 0.0003,
             "p99": 0.00039, "p999": 0.0005}],
        "load_factors": [                    # service-time multiplier against per-replica arrival rate
            {"per_replica_rate": 170.0, "factor": 1.00},
            {"per_replica_rate": 290.0, "factor": 0.93}],
        "idle_factors": [                    # warm-up: multiplier against the replica's preceding idle time
            {"idle_s": 0.001, "factor": 1.03},
            {"idle_s": 0.010, "factor": 1.45}],
        "environment": {                     # host speed drift: a factor per window of time
            "window_s": 0.25, "factors": [0.93, 0.97, 1.0, 1.02, 1.31]},
        "service_order": {"block": 240},     # or: the samples are in measured order (drift kept in them)
        "host_level": {"sd": 0.016, "run_s": 20.0, "runs": 9},  # the host's level between runs
        "measured": "how and where"          # free text, kept for the record
    }

* ``client_overhead_s`` becomes a deterministic post-processing stage with unlimited servers (a pure
  delay), which shifts every latency by the same amount. Every engine runs it, the compiled one too.
* ``client_overhead_by_load`` (instead of the constant, where given): the client-side overhead differs by
  statistic, since it is not a constant delay but depends on what the cores are doing when a request
  arrives and completes. Each row holds LoadGen's mean and percentiles minus the server's own at one
  load (per-replica rate); ``simulate`` adds to each statistic of the simulated sojourn the overhead of
  that statistic, interpolated linearly in the per-replica rate (flat beyond) and, between the
  percentiles given, in the percentile. On the validation host at C = 2, ρ = 0.7 the median's is 0.46
  ms where the mean's is 0.31 ms, and at ρ = 0.5 0.16 against 0.21 ms: one constant cannot carry both.
* ``load_factors`` scale the profile's service times (all batch sizes, the samples' shape kept) by the
  factor interpolated linearly at the scenario's per-replica arrival rate λ·(1 − expected cache hit
  ratio)/replicas, flat beyond the measured range. Factors are relative to the profile's own samples
  (1.0 at the rate they were measured at).
* ``idle_factors`` (warm-up after idle): a batch whose replica sat idle for t seconds before the batch's
  oldest request arrived takes w(t) times longer, w linear from w(0) = 1 (served back to back, after a
  wait) through the table, flat beyond it. The profile's samples are then the back-to-back times. On
  the 2-core validation host a request that found its worker idle 10 ms was served ~1.5x slower than
  one that queued (CPU caches, TensorFlow's thread pool and the host's vCPUs go cold between requests);
  since idle times shrink as the load grows, this one table carries the load dependence across loads
  and replica counts, where ``load_factors`` only interpolate between the rates measured. Every engine
  applies it per batch (:func:`simulator.service.service_time`); the planner's screen applies its mean
  (:meth:`UnderLoad.warm_mean_factor`).
* ``environment`` (host speed drift): time is cut into windows of ``window_s``; every batch starting in
  a window is multiplied by that window's factor, drawn (by a stateless hash, the same in every engine)
  from ``factors`` (mean 1: the profile's samples carry the level, the factors only the drift). A shared
  host's speed drifts over fractions of a second (other tenants, CPU steal, frequency); such a slow
  stretch builds a queue that independent service times never build, and it is what sets the p99 on
  the validation host. The profile's samples are then the service times with the drift divided out.
* ``service_order`` (the other way to carry drift, not combined with ``environment``): the smallest batch
  size's samples at concurrency 1 are in the order they were measured (start order, several runs one
  after another), and each replication draws them by a circular block bootstrap of ``block`` consecutive
  samples from random starts (:mod:`simulator.ordered`): the marginal distribution is the samples', and
  slow stretches keep the length and the sequence they had. On the validation host slow stretches last
  seconds, longer than the 0.25-s windows of ``environment`` resolve independently, and the measured
  order predicted C = 2 tails that the windows under-predicted by 14-38 % (see reports/validation).
* ``host_level`` (not a law the engines apply, a statement of how sure a prediction is): a shared host's
  mean speed moves from one run of ``run_s`` seconds to the next by a relative standard deviation
  ``sd`` (measured over ``runs`` calibration runs, beyond their sampling noise). Near capacity a few
  percent in service time is tens of percent in latency (the wait grows like ρ/(1 − ρ)), so ``simulate``
  shows the band that the host levels 1 ± 2·sd span, and ``plan --host-margin Z`` requires the SLO at
  level 1 + Z·sd (:attr:`simulator.scenario.Service.host_level`).

A profile without the block behaves exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from .errors import ProfileError
from .result import PERCENTILES

__all__ = ["OVERHEAD_KEYS", "OVERHEAD_STAGE", "UnderLoad", "parse_under_load", "scale_model"]

OVERHEAD_STAGE = "client overhead (profile)"
OVERHEAD_KEYS = tuple(PERCENTILES)  # the percentiles of client_overhead_by_load: p50 ... p999


@dataclass(frozen=True)
class UnderLoad:
    """The parsed ``under_load`` block of a profile (seconds, requests/s)."""

    client_overhead_s: float = 0.0
    rates: tuple[float, ...] = ()
    factors: tuple[float, ...] = ()
    measured: str | None = None
    idle_s: tuple[float, ...] = ()
    idle_factors: tuple[float, ...] = ()
    env_window_s: float = 0.0
    env_factors: tuple[float, ...] = ()
    order_block: int = 0  # > 0: samples in measured order, drawn in blocks of this many (service_order)
    host_level_sd: float = 0.0  # relative sd of the host's level between runs of host_level_run_s (0: unknown)
    host_level_run_s: float = 0.0
    host_level_runs: int = 0
    overhead_rates: tuple[float, ...] = ()  # client_overhead_by_load: per-replica rates
    overhead_rows: tuple[tuple[float, ...], ...] = ()  # per rate: mean, then OVERHEAD_KEYS (s)

    def overhead(self, per_replica_rate: float | None) -> tuple[float, dict[float, float]]:
        """(mean overhead, {percentile: overhead}) at ``per_replica_rate`` (s): ``client_overhead_by_load``
        interpolated in the rate (flat beyond); without it the constant for every statistic."""
        if not self.overhead_rates or per_replica_rate is None or not math.isfinite(per_replica_rate):
            return self.client_overhead_s, {}
        rows = np.asarray(self.overhead_rows)
        at = [float(np.interp(per_replica_rate, self.overhead_rates, rows[:, j])) for j in range(rows.shape[1])]
        return at[0], {PERCENTILES[k]: v for k, v in zip(OVERHEAD_KEYS, at[1:])}

    def overhead_at(self, per_replica_rate: float | None, q: float) -> float:
        """The overhead of the ``q`` percentile at ``per_replica_rate`` (s): :meth:`overhead`, linear between
        the percentiles given and flat beyond them."""
        _, by_q = self.overhead(per_replica_rate)
        if not by_q:
            return self.client_overhead_s
        qs = sorted(by_q)
        return float(np.interp(q, qs, [by_q[p] for p in qs]))

    def factor(self, per_replica_rate: float | None) -> float:
        """Service-time multiplier at ``per_replica_rate`` (1.0 without load factors or rate)."""
        if not self.rates or per_replica_rate is None or not math.isfinite(per_replica_rate):
            return 1.0
        return float(np.interp(per_replica_rate, self.rates, self.factors))

    @property
    def min_factor(self) -> float:
        """Smallest mean multiplier at any load and idle time: what a capacity upper bound may assume. With
        drift, a saturated replica serves more batches in fast windows than in slow ones, so its capacity
        goes with the harmonic mean of the drift factors (≤ their mean, 1)."""
        drift = 1.0 / float(np.mean(1.0 / np.asarray(self.env_factors))) if self.env_factors else 1.0
        return min(self.factors, default=1.0) * min(min(self.idle_factors, default=1.0), 1.0) * min(drift, 1.0)

    def warm_mean_factor(self, per_replica_rate: float, mean_s: float) -> float:
        """Mean warm-up multiplier of a replica's services at ``per_replica_rate`` (1 without a table).

        A screen's estimate, not an engine's law: a replica finds an arrival idle with probability about
        1 − ρ (ρ = λ·E[S]·factor, solved by fixed-point iteration, since ρ depends on the factor) and has
        then been idle an exponential time of mean 1/per_replica_rate (mean_s: its back-to-back mean); the factor
        is 1 + (1 − ρ)·(E[w(I)] − 1). The simulation that verifies a plan applies the table per batch.
        """
        if not self.idle_s or not per_replica_rate > 0:
            return 1.0
        # E[w(I)], I ~ Exp(rate): w is piecewise linear and flat beyond the table, so a fine quadrature
        # on the exponential's quantiles is exact enough for a screen
        u = (np.arange(512) + 0.5) / 512
        idle = -np.log1p(-u) / per_replica_rate
        xs = np.concatenate([[0.0], self.idle_s])
        fs = np.concatenate([[1.0], self.idle_factors])
        mean_w = float(np.interp(idle, xs, fs).mean())
        f = 1.0
        for _ in range(50):
            rho = min(per_replica_rate * mean_s * f, 1.0)
            nxt = 1.0 + (1.0 - rho) * (mean_w - 1.0)
            if abs(nxt - f) < 1e-9:
                break
            f = nxt
        return f

    def to_dict(self) -> dict:
        out: dict = {"client_overhead_s": self.client_overhead_s}
        if self.rates:
            out["load_factors"] = [{"per_replica_rate": r, "factor": f} for r, f in zip(self.rates, self.factors)]
        if self.idle_s:
            out["idle_factors"] = [{"idle_s": t, "factor": f} for t, f in zip(self.idle_s, self.idle_factors)]
        if self.env_factors:
            out["environment"] = {"window_s": self.env_window_s, "factors": list(self.env_factors)}
        if self.order_block:
            out["service_order"] = {"block": self.order_block}
        if self.overhead_rates:
            out["client_overhead_by_load"] = [{"per_replica_rate": r} | dict(zip(("mean", *OVERHEAD_KEYS), row))
                                              for r, row in zip(self.overhead_rates, self.overhead_rows)]
        if self.host_level_run_s:
            out["host_level"] = {"sd": self.host_level_sd, "run_s": self.host_level_run_s,
                                 "runs": self.host_level_runs}
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
    known = ("client_overhead_s", "client_overhead_by_load", "load_factors", "idle_factors", "environment",
             "service_order", "host_level", "measured")
    unknown = set(raw) - set(known)
    if unknown:
        raise ProfileError(f"{where}: under_load has unknown field(s) {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(known)}")
    overhead = _number(raw.get("client_overhead_s", 0.0), "client_overhead_s", where, positive=False)
    rates, factors = _table(raw, "load_factors", "per_replica_rate", where)
    idle_s, idle_factors = _table(raw, "idle_factors", "idle_s", where)
    measured = raw.get("measured")
    if measured is not None and not isinstance(measured, str):
        raise ProfileError(f"{where}: under_load.measured must be a string")
    window, env = _environment(raw.get("environment"), where)
    block = _service_order(raw.get("service_order"), where)
    if block and env:
        raise ProfileError(f"{where}: under_load.environment and under_load.service_order both carry the host's "
                           "drift; give one of them")
    level = _host_level(raw.get("host_level"), where)
    by_load = _overhead_by_load(raw.get("client_overhead_by_load"), where)
    return UnderLoad(overhead, rates, factors, measured, idle_s, idle_factors, window, env, block, *level, *by_load)


def _overhead_by_load(raw: object, where: str) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """The ``client_overhead_by_load`` table: rows of per_replica_rate > 0 (increasing) and mean, p50 ... p999
    >= 0 (s); ((), ()) when absent."""
    if raw is None:
        return (), ()
    keys = ("mean", *OVERHEAD_KEYS)
    if not isinstance(raw, list) or not raw:
        raise ProfileError(f"{where}: under_load.client_overhead_by_load must be a non-empty list of "
                           f"{{per_replica_rate, {', '.join(keys)}}} objects")
    rates, rows = [], []
    for i, row in enumerate(raw):
        if not isinstance(row, dict) or set(row) != {"per_replica_rate", *keys}:
            raise ProfileError(f"{where}: under_load.client_overhead_by_load[{i}] must have exactly the fields "
                               f"per_replica_rate, {', '.join(keys)}")
        rates.append(_number(row["per_replica_rate"], f"client_overhead_by_load[{i}].per_replica_rate", where,
                             positive=True))
        rows.append(tuple(_number(row[k], f"client_overhead_by_load[{i}].{k}", where, positive=False) for k in keys))
    if any(b <= a for a, b in pairwise(rates)):
        raise ProfileError(f"{where}: under_load.client_overhead_by_load must be in increasing per_replica_rate, "
                           f"got {rates}")
    return tuple(rates), tuple(rows)


def _host_level(raw: object, where: str) -> tuple[float, float, int]:
    """The ``host_level`` block: (sd in [0, 1), run_s > 0, runs >= 2); (0, 0, 0) when absent."""
    if raw is None:
        return 0.0, 0.0, 0
    if not isinstance(raw, dict) or set(raw) != {"sd", "run_s", "runs"}:
        raise ProfileError(f"{where}: under_load.host_level must be {{\"sd\": S, \"run_s\": T, \"runs\": N}} "
                           f"(relative sd of the host's level between runs of T seconds, over N runs), got {raw!r}")
    sd = _number(raw["sd"], "host_level.sd", where, positive=False)
    if sd >= 1:
        raise ProfileError(f"{where}: under_load.host_level.sd must be a relative sd below 1, got {sd!r}")
    run_s = _number(raw["run_s"], "host_level.run_s", where, positive=True)
    runs = raw["runs"]
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 2:
        raise ProfileError(f"{where}: under_load.host_level.runs must be an integer >= 2, got {runs!r}")
    return sd, run_s, runs


def _service_order(raw: object, where: str) -> int:
    """The ``service_order`` block's block length (an integer >= 1); 0 when absent."""
    if raw is None:
        return 0
    block = raw.get("block") if isinstance(raw, dict) and set(raw) == {"block"} else None
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ProfileError(f"{where}: under_load.service_order must be {{\"block\": B}} with B an integer >= 1 "
                           f"(consecutive samples per bootstrap block), got {raw!r}")
    return block


def _environment(raw: object, where: str) -> tuple[float, tuple[float, ...]]:
    """The ``environment`` block: (window_s > 0, factors > 0, at least one); (0, ()) when absent."""
    if raw is None:
        return 0.0, ()
    if not isinstance(raw, dict) or set(raw) != {"window_s", "factors"}:
        raise ProfileError(f"{where}: under_load.environment must be {{\"window_s\": W, \"factors\": [F, ...]}}")
    window = _number(raw["window_s"], "environment.window_s", where, positive=True)
    factors = raw["factors"]
    if not isinstance(factors, list) or not factors:
        raise ProfileError(f"{where}: under_load.environment.factors must be a non-empty list of numbers > 0")
    return window, tuple(_number(f, f"environment.factors[{i}]", where, positive=True) for i, f in enumerate(factors))


def _table(raw: dict, name: str, key: str, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A ``[{key: x, "factor": f}, ...]`` table, x > 0 strictly increasing and f > 0 (empty when absent)."""
    table = raw.get(name, [])
    if not isinstance(table, list):
        raise ProfileError(f"{where}: under_load.{name} must be a list of {{{key}, factor}} objects")
    xs, fs = [], []
    for i, row in enumerate(table):
        if not isinstance(row, dict) or set(row) != {key, "factor"}:
            raise ProfileError(f"{where}: under_load.{name}[{i}] must be {{\"{key}\": X, \"factor\": F}}")
        xs.append(_number(row[key], f"{name}[{i}].{key}", where, positive=True))
        fs.append(_number(row["factor"], f"{name}[{i}].factor", where, positive=True))
    if any(b <= a for a, b in pairwise(xs)):
        raise ProfileError(f"{where}: under_load.{name} must be in increasing {key}, got {xs}")
    return tuple(xs), tuple(fs)


def scale_model(model, factor: float,
                why: str = "the profile's under-load factor at this per-replica arrival rate"):
    """``model`` (a :class:`~simulator.service.ServiceModel`) with every service time multiplied by
    ``factor``: the means and the empirical scales, so that both engines read the scaled times. ``why``
    goes into the model's notes."""
    if factor == 1.0:
        return model
    note = f"service times x {factor:.4f}: {why}"
    return replace(model, means=model.means * factor, emp_scale=model.emp_scale * factor,
                   notes=tuple(model.notes) + (note,))
