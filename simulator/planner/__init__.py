"""Capacity planner: the cheapest hardware × replicas × batching × cache × variant meeting a latency SLO.

``plan(...)`` returns a :class:`PlanResult` (``.table``, ``.recommendation``, ``.to_dict()``); the
hardware catalog (prices with sources, profiles per model/variant) is :func:`load_catalog`.
"""

from .catalog import HOURS_PER_MONTH, Catalog, Hardware, ServiceSpec, load_catalog
from .plan import PlanResult, plan

__all__ = ["HOURS_PER_MONTH", "Catalog", "Hardware", "PlanResult", "ServiceSpec", "load_catalog", "plan"]
