"""The result cache across chunks: :func:`simulator.cachesim.cache_hits` with its state kept between calls.

Streaming draws keys chunk by chunk, so the cache must carry its contents (and LFU's whole-history
counts) from one chunk to the next. Same policies and the same heap as :mod:`simulator.cachesim`
(its compiled sift helpers are reused), so a run cut in chunks gives the same hits as one call.
Keys must already be dense labels in [0, n_keys).
"""

from __future__ import annotations

import numba
import numpy as np

from ..cachesim import POLICY_CODES, _sift_down, _sift_up


class CacheState:
    """Contents of one cache of ``capacity`` entries over keys 0..n_keys-1."""

    def __init__(self, policy: str, capacity: int, n_keys: int):
        self.code = POLICY_CODES[policy]
        self.capacity = int(capacity)
        self.pos = np.full(n_keys, -1, np.int64)
        self.count = np.zeros(n_keys, np.int64)
        self.last = np.zeros(n_keys, np.int64)
        self.heap = np.empty(max(self.capacity, 1), np.int64)
        self.state = np.zeros(2, np.int64)  # [entries held, requests seen]

    def hits(self, keys: np.ndarray) -> np.ndarray:
        """Look up ``keys`` in order, updating the cache; the hit mask."""
        return _hits_chunk(self.code, self.capacity, np.ascontiguousarray(keys, dtype=np.int64), self.pos,
                           self.count, self.last, self.heap, self.state)


@numba.njit(cache=True, nogil=True)
def _hits_chunk(code, capacity, keys, pos, count, last, heap, state):
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
            if code != 2:  # FIFO does not refresh on a hit
                last[k] = t + 1
                _sift_down(heap, pos, size, p, code, count, last)
            continue
        last[k] = t + 1
        if size < capacity:
            heap[size] = k
            pos[k] = size
            size += 1
            _sift_up(heap, pos, size - 1, code, count, last)
        else:
            pos[heap[0]] = -1
            heap[0] = k
            pos[k] = 0
            _sift_down(heap, pos, size, 0, code, count, last)
    state[0] = size
    state[1] = t0 + n
    return hits
