"""Routing of requests across replica pools: round-robin, join-shortest-queue, random.

Each policy is a small class with ``choose(i) -> pool index``, chosen by name through :func:`get_router`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["JoinShortestQueue", "RandomRouting", "RoundRobin", "Router", "get_router"]


class Router:
    """Picks the pool of each request; ``pools`` are stations with an ``in_system`` count."""

    name = ""

    def __init__(self, pools: list, rng: np.random.Generator, n: int):
        self.pools = pools

    def choose(self, i: int) -> int:
        raise NotImplementedError


class RoundRobin(Router):
    """Pools in turn, 0, 1, …, k-1, 0, … (whatever their size)."""

    name = "round-robin"

    def __init__(self, pools, rng, n):
        super().__init__(pools, rng, n)
        self._next = 0

    def choose(self, i: int) -> int:
        k = self._next
        self._next = (k + 1) % len(self.pools)
        return k


class JoinShortestQueue(Router):
    """The pool with the fewest requests in it (waiting + in service); ties go to the lowest index."""

    name = "join-shortest-queue"

    def choose(self, i: int) -> int:
        counts = [p.in_system for p in self.pools]
        return counts.index(min(counts))


class RandomRouting(Router):
    """A pool chosen with probability proportional to its replicas (pre-drawn from ``rngs["routing"]``)."""

    name = "random"

    def __init__(self, pools, rng, n):
        super().__init__(pools, rng, n)
        weights = np.array([p.servers for p in pools], dtype=float)
        self._choice = rng.choice(len(pools), size=n, p=weights / weights.sum()).tolist()

    def choose(self, i: int) -> int:
        return self._choice[i]


_REGISTRY: dict[str, type[Router]] = {r.name: r for r in (RoundRobin, JoinShortestQueue, RandomRouting)}


def get_router(name: str) -> type[Router]:
    """The routing policy registered under ``name``; unknown names raise, listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"routing must be one of {', '.join(_REGISTRY)}; got {name!r}") from None
