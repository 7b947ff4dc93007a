"""Cache policies: the compiled kernel against the reference classes, hand-worked evictions, registry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cachesim import POLICY_CODES, cache_hits, get_policy, hit_mask
from simulator.errors import InputError


def _reference(policy: str, capacity: int, keys) -> list[bool]:
    cache = get_policy(policy)(capacity)
    return [cache.access(int(k)) for k in keys]


@settings(max_examples=150, deadline=None)
@given(policy=st.sampled_from(sorted(POLICY_CODES)), capacity=st.integers(0, 6),
       keys=st.lists(st.integers(-3, 9), max_size=80))
def test_kernel_matches_reference_classes(policy, capacity, keys):
    got = hit_mask(policy, capacity, np.array(keys, dtype=np.int64)).tolist()
    assert got == _reference(policy, capacity, keys)


def test_kernel_matches_reference_on_long_zipf_sequence():
    rng = np.random.default_rng(0)
    keys = np.minimum(rng.zipf(1.3, 20_000), 400) * 1_000_003  # sparse, large key values
    for policy in POLICY_CODES:
        assert hit_mask(policy, 25, keys).tolist() == _reference(policy, 25, keys)


@pytest.mark.parametrize("policy,expected", [
    # capacity 2; sequence 1 2 1 3 2 1: LRU evicts 2 at "3" (1 was refreshed), then 1 at "2";
    # FIFO evicts 1 at "3" (inserted first, hits do not refresh)
    ("lru", [False, False, True, False, False, False]),
    ("fifo", [False, False, True, False, True, False]),
    # LFU: at "3" counts 1:2, 2:1 -> evict 2; at "2" counts 1:2, 3:1 -> evict 3; "1" still cached
    ("lfu", [False, False, True, False, False, True]),
])
def test_hand_worked_evictions(policy, expected):
    assert hit_mask(policy, 2, np.array([1, 2, 1, 3, 2, 1])).tolist() == expected


def test_lfu_counts_survive_eviction_and_ties_go_to_least_recent():
    # capacity 1: 5 5 7 5 -> at 7 the count of 5 is 2 but the cache holds one key: 5 evicted;
    # whole-history LFU still inserts the miss (7), then 5 returns with count 3 and evicts 7.
    assert hit_mask("lfu", 1, np.array([5, 5, 7, 5, 5])).tolist() == [False, True, False, False, True]
    # capacity 2, counts tie (1 each) -> the least recently used (8) goes
    assert hit_mask("lfu", 2, np.array([8, 9, 10, 9, 8])).tolist() == [False, False, False, True, False]


def test_zero_capacity_never_hits():
    assert not cache_hits(0, 0, np.arange(10, dtype=np.int64) % 2).any()


def test_registry_refuses_unknown_policy_naming_the_known_ones():
    with pytest.raises(InputError, match="lru, lfu, fifo; got 'arc'"):
        get_policy("arc")
    with pytest.raises(InputError):
        hit_mask("random", 3, np.arange(4))
