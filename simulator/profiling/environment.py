"""What the numbers were measured on: CPU, cores, software versions, GPU, machine load."""

from __future__ import annotations

import os
import platform
import re
import sys
from datetime import UTC, datetime
from importlib import metadata

__all__ = ["cpu_name", "device_info", "loadavg", "short_device_name", "usable_cores", "utc_now"]


def utc_now() -> str:
    """The current time as UTC ISO 8601, seconds precision: ``2026-11-27T18:00:00Z``."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def cpu_name() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else :func:`platform.processor`, else ``unknown``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; None where it cannot tell."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    cores = set()
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


def short_device_name(kind: str = "cpu", name: str | None = None, cores: int | None = None) -> str:
    """Folder name for bundled profiles, e.g. ``cpu-amd-epyc-2c``."""
    name = name if name is not None else cpu_name()
    cores = cores if cores is not None else usable_cores()
    slug = re.sub(r"\(r\)|\(tm\)|cpu|processor|@.*$", "", name.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", slug).strip("-") or "unknown"
    return f"{kind}-{slug}" + (f"-{cores}c" if kind == "cpu" else "")


def loadavg() -> list[float] | None:
    """1, 5 and 15-minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def device_info(frameworks: tuple[str, ...] = (), gpu_name: str | None = None) -> dict:
    """The ``device`` block of a profile.

    Parameters
    ----------
    frameworks : tuple of str
        Distribution names whose versions to record (numpy is always recorded).
    gpu_name : str or None
        Name of the GPU the model ran on; ``kind`` is ``gpu`` when given.
    """
    versions = {"python": sys.version.split()[0], "numpy": _version("numpy")}
    for dist in frameworks:
        versions[dist] = _version(dist)
    info = {
        "kind": "gpu" if gpu_name else "cpu",
        "name": gpu_name or cpu_name(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "physical_cores": _physical_cores(),
        "platform": platform.platform(),
        "framework_versions": {k: v for k, v in versions.items() if v is not None},
    }
    if gpu_name:
        info["gpu"] = gpu_name
    return info
