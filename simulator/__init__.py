"""Queueing-theory latency simulator and capacity planner for serving ML models.

Public API (see DESIGN.md)::

    from simulator import Profile, Scenario, Result, simulate, analytic, plan

Heavy parts (the SimPy and compiled engines, the planner) load on first use, so ``import simulator``
stays fast and never needs TensorFlow.
"""

from __future__ import annotations

import importlib

from .errors import InputError, ProfileError, UnstableSystemError
from .profiles import Profile
from .result import Result
from .scenario import Arrivals, Batching, Cache, Pool, Run, Scenario, Service, Stage, load_scenario

__version__ = "0.1.0"

_LAZY = {
    "analytic": ("simulator.analytic", None),
    "simulate": ("simulator.simulate", "simulate"),
    "analytic_reference": ("simulator.simulate", "analytic_reference"),
    "make_service_model": ("simulator.simulate", "make_service_model"),
    "plan": ("simulator.planner", "plan"),
}

__all__ = [
    "Arrivals", "Batching", "Cache", "InputError", "Pool", "Profile", "ProfileError", "Result", "Run",
    "Scenario", "Service", "Stage", "UnstableSystemError", "analytic", "analytic_reference", "load_scenario", "make_service_model", "plan",
    "simulate",
]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
