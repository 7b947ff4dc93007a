"""Checks for public inputs. Each raises :class:`~simulator.errors.InputError` naming field, value and range.

`math.isfinite` is checked before any comparison: ``nan <= 0`` is False, so a plain ``x <= 0`` test lets
NaN through (SimPy happily schedules ``timeout(nan)``, which never fires).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from .errors import InputError, UnstableSystemError

__all__ = [
    "check_choice",
    "check_finite",
    "check_integer",
    "check_nonnegative",
    "check_positive",
    "check_probability",
    "check_quantile",
    "check_stable",
]


def _as_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    return float(value)


def check_finite(name: str, value: object) -> float:
    """Return ``value`` as float if it is a finite real number."""
    x = _as_real(name, value)
    if not math.isfinite(x):
        raise InputError(f"{name} must be a finite number, got {x}")
    return x


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as float if it is finite and > 0."""
    x = _as_real(name, value)
    if not (math.isfinite(x) and x > 0):
        raise InputError(f"{name} must be a finite number > 0, got {x}")
    return x


def check_nonnegative(name: str, value: object) -> float:
    """Return ``value`` as float if it is finite and ≥ 0."""
    x = _as_real(name, value)
    if not (math.isfinite(x) and x >= 0):
        raise InputError(f"{name} must be a finite number >= 0, got {x}")
    return x


def check_integer(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as int if it is a whole number in [minimum, maximum].

    Floats with an integral value (``4.0``) are accepted; ``2.5``, ``True`` and strings are not.
    """
    if isinstance(value, bool):
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(value, numbers.Integral):
        n = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        n = int(value)
    else:
        bound = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise InputError(f"{name} must be {bound}, got {value!r}")
    if n < minimum or (maximum is not None and n > maximum):
        bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise InputError(f"{name} must be an integer {bound}, got {n}")
    return n


def check_probability(name: str, value: object, *, open_low: bool = False, open_high: bool = False) -> float:
    """Return ``value`` as float if it lies in [0, 1] (ends optionally open)."""
    x = _as_real(name, value)
    lo_ok = x > 0 if open_low else x >= 0
    hi_ok = x < 1 if open_high else x <= 1
    if not (math.isfinite(x) and lo_ok and hi_ok):
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise InputError(f"{name} must be in {interval}, got {x}")
    return x


def check_quantile(name: str, value: object) -> float:
    """A percentile as a fraction strictly inside (0, 1), e.g. 0.99 for p99."""
    return check_probability(name, value, open_low=True, open_high=True)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; the error lists the known ones."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_stable(utilization: float, *, offered_load: float | None = None, servers: int | None = None,
                 what: str = "system") -> None:
    """Refuse ρ ≥ 1 with a message that prints ρ (and the fewest servers that would do, if known)."""
    if utilization >= 1.0 or not math.isfinite(utilization):
        hint = ""
        min_servers = None
        if offered_load is not None and math.isfinite(offered_load):
            min_servers = math.floor(offered_load) + 1
            hint = f"; offered load {offered_load:.4g} Erlang needs at least {min_servers} servers"
        where = f" with {servers} server(s)" if servers is not None else ""
        raise UnstableSystemError(
            f"unstable {what}{where}: utilization rho = {utilization:.4g} >= 1 (no steady state){hint}",
            utilization=utilization, offered_load=offered_load, min_servers=min_servers)
