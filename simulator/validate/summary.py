"""MLPerf LoadGen's ``mlperf_log_summary.txt``: read the latency figures of a run.

LoadGen writes ``key : value`` lines; the ones used here (LoadGen 4.x-6.x) are::

    Scenario : Server
    Completed samples per second    : 296.69
    Result is : VALID
    Scheduled samples per second : 296.86
    Min latency (ns)                : 1109784
    Mean latency (ns)               : 1460667
    50.00 percentile latency (ns)   : 1224099     (also 90, 95, 97, 99, 99.90)
    target_qps : 300

Latencies are nanoseconds from a query's *scheduled* issue time to its completion, so they include the
delay of LoadGen's issue thread and of the SUT's issue callback. Only the Server scenario has the
Poisson arrivals that a queue model predicts; other scenarios are refused with the reason.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

__all__ = ["LoadGenSummary", "parse_summary", "read_summary"]

_LINE = re.compile(r"^\s*([^:]+?)\s*:\s*(.*?)\s*$")
_PCT = re.compile(r"^(\d+(?:\.\d+)?) percentile latency \(ns\)$")


@dataclass(frozen=True)
class LoadGenSummary:
    """The figures of one LoadGen run (latencies in nanoseconds as LoadGen prints them).

    Attributes
    ----------
    scenario, mode, validity : str
        ``Server``, ``PerformanceOnly``, ``VALID``/``INVALID`` as printed.
    completed_qps, scheduled_qps : float
        Completed and scheduled samples per second (the measured arrival rate is ``scheduled_qps``).
    target_qps : float or None
        The requested Server-scenario rate.
    mean_ns, min_ns, max_ns : float
        Latency statistics over all queries.
    percentiles_ns : dict
        Quantile (fraction, e.g. 0.99) → latency in ns.
    fields : dict
        Every ``key : value`` line of the file, as strings.
    """

    scenario: str
    mode: str
    validity: str
    completed_qps: float
    scheduled_qps: float | None
    target_qps: float | None
    mean_ns: float
    min_ns: float
    max_ns: float
    percentiles_ns: dict[float, float]
    fields: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def arrival_rate(self) -> float:
        """Measured arrival rate (requests/s): LoadGen's scheduled rate, else its completed rate."""
        return self.scheduled_qps if self.scheduled_qps else self.completed_qps

    @property
    def duration_s(self) -> float | None:
        """The run's minimum duration (s, LoadGen's ``min_duration``), None when the file does not say."""
        try:
            v = float(self.fields["min_duration (ms)"]) / 1e3
        except (KeyError, ValueError):
            return None
        return v if math.isfinite(v) and v > 0 else None

    def latency_ms(self) -> dict[str, float]:
        """Mean and percentiles in milliseconds, keyed like :class:`simulator.result.Result`
        (``mean``, ``p50``, ``p90``, ``p95``, ``p97``, ``p99``, ``p999``)."""
        out = {"mean": self.mean_ns / 1e6}
        for q, v in sorted(self.percentiles_ns.items()):
            out[_pkey(q)] = v / 1e6
        return out


def _pkey(q: float) -> str:
    """0.5 → p50, 0.999 → p999."""
    text = f"{q * 100:.10g}".replace(".", "")
    return "p" + text


def parse_summary(text: str, origin: str = "<text>") -> LoadGenSummary:
    """Parse the text of an ``mlperf_log_summary.txt``; ``origin`` names it in error messages."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and not line.lstrip().startswith(("*", "=")):
            fields.setdefault(m.group(1), m.group(2))
    if "Scenario" not in fields and "Mean latency (ns)" not in fields:
        raise InputError(f"LoadGen summary {origin!r} is not an mlperf_log_summary.txt "
                         "(no 'Scenario' or 'Mean latency (ns)' line)")
    scenario = fields.get("Scenario", "")
    if scenario != "Server":
        raise InputError(f"LoadGen summary {origin!r} is from scenario {scenario or 'unknown'!r}; only Server "
                         "runs (Poisson arrivals) can be predicted by a queue model")

    def number(key: str, required: bool = True) -> float | None:
        raw = fields.get(key)
        if raw is None:
            if required:
                raise InputError(f"LoadGen summary {origin!r} has no {key!r} line")
            return None
        try:
            v = float(raw)
        except ValueError:
            raise InputError(f"LoadGen summary {origin!r}: {key!r} must be a number, got {raw!r}") from None
        if not math.isfinite(v) or v < 0:
            raise InputError(f"LoadGen summary {origin!r}: {key!r} must be a finite number >= 0, got {raw!r}")
        return v

    percentiles: dict[float, float] = {}
    for key in fields:
        m = _PCT.match(key)
        if m:
            percentiles[round(float(m.group(1)) / 100, 6)] = number(key)
    if not percentiles:
        raise InputError(f"LoadGen summary {origin!r} has no 'NN.NN percentile latency (ns)' lines")
    mean = number("Mean latency (ns)")
    if mean <= 0:
        raise InputError(f"LoadGen summary {origin!r}: mean latency must be > 0 ns, got {mean:g}")
    completed = number("Completed samples per second", required=False)
    scheduled = number("Scheduled samples per second", required=False)
    if not completed and not scheduled:
        raise InputError(f"LoadGen summary {origin!r} has no positive 'Scheduled samples per second' or "
                         "'Completed samples per second' line: the arrival rate is unknown")
    return LoadGenSummary(
        scenario=scenario, mode=fields.get("Mode", ""), validity=fields.get("Result is", ""),
        completed_qps=completed or 0.0, scheduled_qps=scheduled, target_qps=number("target_qps", required=False),
        mean_ns=mean, min_ns=number("Min latency (ns)", required=False) or 0.0,
        max_ns=number("Max latency (ns)", required=False) or 0.0,
        percentiles_ns=percentiles, fields=fields)


def read_summary(path: str | os.PathLike) -> LoadGenSummary:
    """Read and parse an ``mlperf_log_summary.txt`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(f"LoadGen summary {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"LoadGen summary {str(p)!r} is a directory; give the mlperf_log_summary.txt "
                         "file") from None
    except OSError as exc:
        raise InputError(f"LoadGen summary {str(p)!r} cannot be read: {exc}") from None
    return parse_summary(text, origin=str(p))
