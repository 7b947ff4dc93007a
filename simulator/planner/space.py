"""The search space: one configuration = hardware × model variant × batching × cache (replicas searched).

Seeds are derived from the root seed and the configuration's *service* (hardware, variant), never from
the order in which configurations are evaluated, so a plan run serially or on a Dask cluster is the
same plan. Replicas, batching, cache and arrival rate are deliberately left out of the seed: candidates
of one service then share their random numbers (same arrival times, keys and service variates per
request), which turns "one replica fewer", "cache on/off" and "batch 4 vs 8" into paired comparisons.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import InputError
from ..scenario import CACHE_POLICIES
from ..validation import check_integer, check_nonnegative

__all__ = ["Config", "config_seed", "parse_cache_list", "parse_float_list", "parse_int_list"]


@dataclass(frozen=True, order=True)
class Config:
    """One candidate configuration (replicas are searched for each)."""

    hardware: str
    variant: str
    batch_size: int = 1
    batch_timeout_ms: float = 0.0
    cache: str | None = None  # "lru:1000" or None

    @property
    def cache_policy(self) -> str | None:
        return None if self.cache is None else self.cache.split(":")[0]

    @property
    def cache_capacity(self) -> int:
        return 0 if self.cache is None else int(self.cache.split(":")[1])

    def label(self) -> str:
        batch = f"batch {self.batch_size}" + (f"/{self.batch_timeout_ms:g}ms" if self.batch_size > 1 else "")
        return f"{self.hardware} {self.variant} {batch} cache {self.cache or 'none'}"

    def sort_key(self) -> tuple:
        return (self.hardware, self.variant, self.batch_size, self.batch_timeout_ms, self.cache or "")


def config_seed(root: int, hardware: str, variant: str) -> int:
    """Seed of every simulation of one service: a hash of (root seed, hardware, variant), 63 bits."""
    digest = hashlib.blake2b(f"{int(root)}|{hardware}|{variant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


def parse_int_list(name: str, text: str | list | tuple | None, *, minimum: int = 1,
                   maximum: int | None = None) -> list[int]:
    """``"1,4,8"`` (or a list) → sorted unique ints, each validated."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        try:
            v = int(str(item).strip()) if isinstance(item, str) else item
        except ValueError:
            raise InputError(f"{name} must be a comma-separated list of integers, got {text!r}") from None
        out.append(check_integer(name, v, minimum=minimum, maximum=maximum))
    if not out:
        raise InputError(f"{name} must list at least one value")
    return sorted(set(out))


def parse_float_list(name: str, text: str | list | tuple | None) -> list[float]:
    """``"0,2,5"`` (or a list) → sorted unique non-negative floats."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        try:
            v = float(item)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
        out.append(check_nonnegative(name, v))
    if not out:
        raise InputError(f"{name} must list at least one value")
    return sorted(set(out))


def parse_cache_list(text: str | list | tuple | None, keys: int) -> list[str | None]:
    """``"none,lru:1000,lru:10000"`` → [None, "lru:1000", "lru:10000"] (validated against ``keys``)."""
    if text is None:
        return [None]
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str | None] = []
    for item in items:
        item = (item or "none").strip() if isinstance(item, str) or item is None else item
        if item in ("none", "0", ""):
            out.append(None)
            continue
        policy, sep, cap = str(item).partition(":")
        if not sep:
            raise InputError(f"cache must be POLICY:CAPACITY (e.g. lru:1000) or none, got {item!r}")
        if policy not in CACHE_POLICIES:
            raise InputError(f"cache policy must be one of {', '.join(CACHE_POLICIES)}; got {policy!r}")
        try:
            capacity = int(cap)
        except ValueError:
            raise InputError(f"cache capacity must be an integer, got {cap!r}") from None
        capacity = check_integer("cache_capacity", capacity, minimum=0)
        if capacity > keys:
            raise InputError(f"cache_capacity must be <= keys ({keys}), got {capacity}")
        out.append(None if capacity == 0 else f"{policy}:{capacity}")
    seen: list[str | None] = []
    for c in out:
        if c not in seen:
            seen.append(c)
    return seen
