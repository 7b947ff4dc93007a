"""Capacity-plan reports: self-contained HTML and Markdown with figures, from a plan JSON.

::

    from simulator.report import build_report, load_plan, resimulate
    plan = load_plan("plan.json")
    build_report(plan, "reports/my-model/", resimulation=resimulate(plan))

The command line is ``simulator report --plan plan.json --output reports/NAME/``.
"""

from __future__ import annotations

from .load import load_plan, validate_plan
from .render import build_report
from .resimulate import Resimulation, ResimulationSettings, resimulate

__all__ = ["Resimulation", "ResimulationSettings", "build_report", "load_plan", "resimulate", "validate_plan"]
