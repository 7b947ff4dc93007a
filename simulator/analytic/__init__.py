"""Closed-form and approximate queue models (seconds, requests/second).

One module per family; the names below are the public contract (see DESIGN.md). Every model validates
its inputs and refuses an unstable system (ρ ≥ 1) with :class:`~simulator.errors.UnstableSystemError`.
"""

from .base import QueueMetrics

# --- queue models: mmc.py, md.py, mg1.py, ggc.py (exports added below) ---
from .ggc import GGC_METHODS, GGcMetrics, ggc
from .md import MDcMetrics, cosmetatos_mdc, md1, mdc
from .mg1 import MG1Metrics, mg1
from .mmc import MMcKMetrics, MMcMetrics, erlang_b, erlang_c, mm1, mmc, mmck

# --- batching, fork-join, cache: batching.py, forkjoin.py, cache.py (exports added below) ---
# isort: split
from .batching import BatchingMetrics, batching
from .cache import CACHE_POLICIES, CacheMetrics, cache_hit_ratio, cache_model, zipf
from .forkjoin import ForkJoinMetrics, fork_join

__all__ = ["QueueMetrics",
           "GGC_METHODS", "GGcMetrics", "MDcMetrics", "MG1Metrics", "MMcKMetrics", "MMcMetrics",
           "cosmetatos_mdc", "erlang_b", "erlang_c", "ggc", "md1", "mdc", "mg1", "mm1", "mmc", "mmck",
           "CACHE_POLICIES", "BatchingMetrics", "CacheMetrics", "ForkJoinMetrics",
           "batching", "cache_hit_ratio", "cache_model", "fork_join", "zipf"]
