"""Reading a plan JSON (the output of ``simulator plan --json``) for the report.

The report shows the plan's own numbers and derives nothing it cannot trace back to them, so reading
is strict about the shape that every report needs (a top-level object with a ``recommendation``
object, or ``null`` when no configuration meets the SLO) and lenient about the rest: optional sections
that are missing are shown as "not available", never filled in.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import InputError

__all__ = ["load_plan", "validate_plan"]

# Fields a recommendation must carry for the report to say anything useful, with their JSON types.
_REQUIRED_RECOMMENDATION = {"hardware": str, "replicas": int}
_OPTIONAL_NUMBERS = ("cost_per_hour", "p99_ms", "batch_timeout_ms")


def load_plan(path: str | os.PathLike) -> dict:
    """Read and check a plan JSON file; every failure is an :class:`InputError` naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"plan file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"plan file {str(p)!r} is a directory, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"plan file {str(p)!r} cannot be read: {exc}") from None
    if not text.strip():
        raise InputError(f"plan file {str(p)!r} is empty")
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise InputError(f"plan file {str(p)!r} is not valid JSON: {exc}") from None
    return validate_plan(doc, origin=str(p))


def validate_plan(doc: object, origin: str = "<memory>") -> dict:
    """Check the shape the report relies on; return ``doc`` unchanged."""
    where = f"plan file {origin!r}"
    if not isinstance(doc, dict):
        raise InputError(f"{where}: top level must be a JSON object (the output of "
                         f"'simulator plan --json'), got {type(doc).__name__}")
    if "recommendation" not in doc:
        raise InputError(f"{where}: missing required field 'recommendation' "
                         "(is this the output of 'simulator plan --json'?)")
    rec = doc["recommendation"]
    if rec is not None:
        if not isinstance(rec, dict):
            raise InputError(f"{where}: recommendation must be an object or null, got {type(rec).__name__}")
        for key, kind in _REQUIRED_RECOMMENDATION.items():
            value = rec.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InputError(f"{where}: recommendation.{key} must be a {kind.__name__}, got {value!r}")
        for key in _OPTIONAL_NUMBERS:
            _check_number(where, f"recommendation.{key}", rec.get(key))
        ci = rec.get("p99_ms_ci95")
        if ci is not None and not (isinstance(ci, list) and len(ci) == 2):
            raise InputError(f"{where}: recommendation.p99_ms_ci95 must be [low, high] or null, got {ci!r}")
        for i, v in enumerate(ci or []):
            _check_number(where, f"recommendation.p99_ms_ci95[{i}]", v)
    for key in ("candidates", "per_hardware", "pareto", "provenance"):
        value = doc.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(x, dict) for x in value)):
            raise InputError(f"{where}: {key} must be a list of objects, got {_describe(value)}")
    for key in ("growth", "minimality", "versions"):
        value = doc.get(key)
        if value is not None and not isinstance(value, dict):
            raise InputError(f"{where}: {key} must be an object, got {_describe(value)}")
    _check_number(where, "arrival_rate", doc.get("arrival_rate"))
    return doc


def _check_number(where: str, name: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where}: {name} must be a finite number or null, got {value!r}")


def _describe(value) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _refuse_constant(token: str):
    raise ValueError(f"non-finite number {token} is not allowed")
