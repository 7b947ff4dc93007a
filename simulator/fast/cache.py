"""The result cache across chunks: :func:`simulator.cachesim.cache_hits` with its state kept between calls.

Streaming draws keys chunk by chunk, so the cache must carry its contents (and LFU's whole-history
counts) from one chunk to the next. Same policies and the same heap as :mod:`simulator.cachesim`
(it calls the same compiled :func:`~simulator.cachesim.lookup_dense`), so a run cut in chunks gives the same hits as one call.
Keys must already be dense labels in [0, n_keys).
"""

from __future__ import annotations

import numpy as np

from ..cachesim import POLICY_CODES, lookup_dense


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
        return lookup_dense(self.code, self.capacity, np.ascontiguousarray(keys, dtype=np.int64), self.pos,
                           self.count, self.last, self.heap, self.state)
