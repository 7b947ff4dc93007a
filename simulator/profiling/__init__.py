"""Measuring real devices: model zoo, variants, timing harness, serving loop, backends.

Nothing here imports TensorFlow or PyTorch at import time; the backends do, when a measurement runs.
Entry points: :func:`~simulator.profiling.profiler.run_profile` with a
:class:`~simulator.profiling.profiler.ProfileConfig`, :func:`~simulator.profiling.csv_import.profile_from_csv`,
and ``python -m simulator.profiling.bundle`` to regenerate the bundled profiles.
"""

from __future__ import annotations

from .timing import StoppingRule

__all__ = ["StoppingRule"]
