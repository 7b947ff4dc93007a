"""Bring your own measurements: a CSV of service times becomes a profile.

Columns: ``service_time_s`` (seconds, required), ``batch_size`` and ``concurrency`` (integers ≥ 1,
optional, default 1). Every bad cell is refused with the file, the line and the column named.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from pathlib import Path

from ..errors import InputError
from ..profiles import SCHEMA_VERSION, Profile
from .environment import utc_now
from .tf_backend import file_sha256

__all__ = ["profile_from_csv"]

REQUIRED = "service_time_s"
OPTIONAL = ("batch_size", "concurrency")


def _integer(text: str, where: str, column: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: column {column!r} must be an integer >= 1, got {text!r}") from None
    if not (math.isfinite(value) and value.is_integer() and value >= 1):
        raise InputError(f"{where}: column {column!r} must be an integer >= 1, got {text!r}")
    return int(value)


def profile_from_csv(path: str | os.PathLike, *, name: str | None = None, device_kind: str = "cpu",
                     device_name: str | None = None, variant: str = "fp32") -> Profile:
    """Read service times from ``path`` and return a validated profile (``method.path`` is ``csv``).

    Parameters
    ----------
    path : path-like
        CSV file with a header row.
    name : str, optional
        Model name to record; default: the file's stem.
    device_kind, device_name : str
        What the measurements ran on (the CSV cannot tell).
    variant : str
        Variant label to record.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"CSV file {str(p)!r} does not exist")
    groups: dict[tuple[int, int], list[float]] = defaultdict(list)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not header:
                raise InputError(f"CSV file {str(p)!r} is empty (expected a header with {REQUIRED!r})")
            if REQUIRED not in header:
                raise InputError(f"CSV file {str(p)!r} has no {REQUIRED!r} column (columns: {', '.join(header)}); "
                                 f"service times must be in seconds")
            reader.fieldnames = header
            for index, row in enumerate(reader, start=1):
                where = f"{p}, row {index} (line {reader.line_num})"
                raw = (row.get(REQUIRED) or "").strip()
                try:
                    value = float(raw)
                except ValueError:
                    raise InputError(f"{where}: column {REQUIRED!r} must be a number of seconds, "
                                     f"got {raw!r}") from None
                if not (math.isfinite(value) and value > 0):
                    raise InputError(f"{where}: column {REQUIRED!r} must be a finite number > 0 seconds, "
                                     f"got {raw!r}")
                keys = []
                for col in OPTIONAL:
                    cell = (row.get(col) or "").strip() if col in header else ""
                    keys.append(_integer(cell, where, col) if cell else 1)
                groups[(keys[0], keys[1])].append(value)
    except UnicodeDecodeError as exc:
        raise InputError(f"CSV file {str(p)!r} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise InputError(f"CSV file {str(p)!r} is malformed: {exc}") from None
    if not groups:
        raise InputError(f"CSV file {str(p)!r} has a header but no data rows")
    if not any(c == 1 for (_, c) in groups):
        raise InputError(f"CSV file {str(p)!r}: at least one row must have concurrency 1")
    points = [{"batch_size": b, "concurrency": c, "samples_s": samples}
              for (b, c), samples in sorted(groups.items())]
    data = {
        "schema_version": SCHEMA_VERSION, "source": "measured",
        "model": {"name": name or p.stem, "framework": "unknown", "variant": variant,
                  "input_shape": None, "file": str(p), "file_sha256": file_sha256(p)},
        "device": {"kind": device_kind, "name": device_name or "unknown (imported from CSV)"},
        "measured_at": utc_now(),
        "method": {"path": "csv", "description": f"imported from {p.name}; how the times were taken is not "
                                                 "recorded in the CSV", "imported_from": str(p)},
        "points": points,
    }
    return Profile.from_dict(data, origin=str(p))
