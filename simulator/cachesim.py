"""Result-cache policies (LRU, LFU, FIFO): which requests hit, computed once for all engines.

Semantics (shared by the SimPy and the compiled engine, so both see the same hits):

* The cache is consulted and updated at a request's **arrival**, in arrival order. A miss inserts its
  key at once (evicting one key if the cache is full); later requests for that key hit even while the
  first is still being served. Request coalescing and insert-on-completion are not modelled.
* Hence whether request i hits depends only on the key sequence, not on the queue: :func:`cache_hits`
  computes the whole hit mask before the queue simulation starts.
* ``lru``: evict the key used least recently (a hit refreshes it).
* ``fifo``: evict the key inserted earliest (a hit does not refresh it).
* ``lfu``: evict the key with the fewest requests over the **whole history** (counts survive eviction:
  "perfect LFU", the policy of :func:`simulator.analytic.cache_hit_ratio`); ties go to the key used least
  recently. Every miss is inserted, so one slot churns through rare keys; in steady state the cache
  holds the ``capacity - 1`` most popular keys plus the latest miss.

The small classes below are the readable reference of each policy (one access at a time) and the
registry by name; :func:`cache_hits` is the compiled kernel the engines call, checked against the
classes request by request in ``tests/unit/test_des_cache.py``.
"""

from __future__ import annotations

from collections import OrderedDict

import numba
import numpy as np

from .errors import InputError

__all__ = ["POLICY_CODES", "CachePolicy", "FIFOCache", "LFUCache", "LRUCache", "cache_hits", "get_policy",
           "hit_mask"]

POLICY_CODES = {"lru": 0, "lfu": 1, "fifo": 2}


class CachePolicy:
    """One cache of ``capacity`` keys; :meth:`access` looks a key up and updates the cache."""

    name = ""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)

    def access(self, key: int) -> bool:
        """Look ``key`` up at its arrival; True on a hit. A miss inserts the key (evicting if full)."""
        raise NotImplementedError


class LRUCache(CachePolicy):
    name = "lru"

    def __init__(self, capacity: int):
        super().__init__(capacity)
        self._d: OrderedDict[int, None] = OrderedDict()

    def access(self, key: int) -> bool:
        if key in self._d:
            self._d.move_to_end(key)
            return True
        if self.capacity > 0:
            if len(self._d) >= self.capacity:
                self._d.popitem(last=False)
            self._d[key] = None
        return False


class FIFOCache(CachePolicy):
    name = "fifo"

    def __init__(self, capacity: int):
        super().__init__(capacity)
        self._d: OrderedDict[int, None] = OrderedDict()

    def access(self, key: int) -> bool:
        if key in self._d:
            return True
        if self.capacity > 0:
            if len(self._d) >= self.capacity:
                self._d.popitem(last=False)
            self._d[key] = None
        return False


class LFUCache(CachePolicy):
    name = "lfu"

    def __init__(self, capacity: int):
        super().__init__(capacity)
        self._count: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._cached: set[int] = set()
        self._clock = 0

    def access(self, key: int) -> bool:
        self._clock += 1
        self._count[key] = self._count.get(key, 0) + 1
        self._last[key] = self._clock
        if key in self._cached:
            return True
        if self.capacity > 0:
            if len(self._cached) >= self.capacity:
                victim = min(self._cached, key=lambda k: (self._count[k], self._last[k]))
                self._cached.remove(victim)
            self._cached.add(key)
        return False


_REGISTRY: dict[str, type[CachePolicy]] = {"lru": LRUCache, "lfu": LFUCache, "fifo": FIFOCache}


def get_policy(name: str) -> type[CachePolicy]:
    """The policy class registered under ``name``; unknown names raise, listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"cache_policy must be one of {', '.join(_REGISTRY)}; got {name!r}") from None


def hit_mask(policy: str, capacity: int, keys: np.ndarray) -> np.ndarray:
    """Hit (True) or miss of every request, keys in arrival order (the engines' entry point)."""
    get_policy(policy)
    return cache_hits(POLICY_CODES[policy], int(capacity), np.ascontiguousarray(keys, dtype=np.int64))


@numba.njit(cache=True, inline="always")
def _before(code, a, b, count, last):
    """Key a should be evicted before key b."""
    if code == 1 and count[a] != count[b]:
        return count[a] < count[b]
    return last[a] < last[b]


@numba.njit(cache=True)
def _sift_down(heap, pos, size, i, code, count, last):
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        right = left + 1
        if right < size and _before(code, heap[right], heap[left], count, last):
            child = right
        if _before(code, heap[child], heap[i], count, last):
            heap[i], heap[child] = heap[child], heap[i]
            pos[heap[i]] = i
            pos[heap[child]] = child
            i = child
        else:
            break


@numba.njit(cache=True)
def _sift_up(heap, pos, i, code, count, last):
    while i > 0:
        parent = (i - 1) // 2
        if _before(code, heap[i], heap[parent], count, last):
            heap[i], heap[parent] = heap[parent], heap[i]
            pos[heap[i]] = i
            pos[heap[parent]] = parent
            i = parent
        else:
            break


@numba.njit(cache=True)
def cache_hits(policy_code, capacity, keys):
    """Hit mask of a key sequence under LRU (0), LFU (1) or FIFO (2) with ``capacity`` entries.

    Compiled (callable from other numba code). One indexed binary heap ordered by the eviction
    priority — last use (LRU), (whole-history count, last use) (LFU), insertion time (FIFO) — so each
    request costs O(log capacity). Keys may be any int64 values; they are relabelled densely first.
    """
    n = keys.size
    hits = np.zeros(n, dtype=np.bool_)
    if capacity <= 0 or n == 0:
        return hits
    order = np.argsort(keys, kind="mergesort")
    dense = np.empty(n, dtype=np.int64)
    label = -1
    for j in range(n):
        if j == 0 or keys[order[j]] != keys[order[j - 1]]:
            label += 1
        dense[order[j]] = label
    n_keys = label + 1
    pos = np.full(n_keys, -1, dtype=np.int64)      # heap index of a cached key, -1 if not cached
    count = np.zeros(n_keys, dtype=np.int64)
    last = np.zeros(n_keys, dtype=np.int64)        # priority time: last use (LRU/LFU), insertion (FIFO)
    heap = np.empty(capacity, dtype=np.int64)
    state = np.zeros(2, dtype=np.int64)
    return lookup_dense(policy_code, capacity, dense, pos, count, last, heap, state)


@numba.njit(cache=True, nogil=True)
def lookup_dense(policy_code, capacity, keys, pos, count, last, heap, state):
    """Look up dense keys (labels in [0, n_keys)) in order, updating the cache held in the arrays.

    ``state`` = [entries held, requests seen so far]; keeping the arrays between calls continues the
    same cache, so a key sequence cut in chunks gives the same hits as one call (the streaming engine
    relies on that).
    """
    n = keys.size
    hits = np.zeros(n, dtype=np.bool_)
    if capacity <= 0:
        return hits
    size = state[0]
    t0 = state[1]
    for j in range(n):
        t = t0 + j
        k = keys[j]
        count[k] += 1
        p = pos[k]
        if p >= 0:
            hits[j] = True
            if policy_code != 2:  # FIFO does not refresh on a hit
                last[k] = t + 1
                _sift_down(heap, pos, size, p, policy_code, count, last)
            continue
        last[k] = t + 1
        if size < capacity:
            heap[size] = k
            pos[k] = size
            size += 1
            _sift_up(heap, pos, size - 1, policy_code, count, last)
        else:
            pos[heap[0]] = -1
            heap[0] = k
            pos[k] = 0
            _sift_down(heap, pos, size, 0, policy_code, count, last)
    state[0] = size
    state[1] = t0 + n
    return hits
