"""The bundled measured profiles (profiles/cpu-*/) load, say how they were measured, and cover the promise:
three zoo models x at least three variants x batch sizes 1-8, and a serving-path default with concurrency."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.profiles import Profile
from simulator.profiling.bundle import DEFAULT_JOB, JOBS

ROOT = Path(__file__).resolve().parents[2] / "profiles"
DEVICE_DIRS = sorted(d for d in ROOT.glob("cpu-*") if d.is_dir())
FILES = sorted(p for d in DEVICE_DIRS for p in d.glob("*/*.json"))


def test_bundle_jobs_cover_the_promise():
    by_model: dict[str, set[str]] = {}
    for job in JOBS:
        by_model.setdefault(job.model, set()).add(job.variant)
    assert {"mobilenet_v2", "resnet50", "transformer_small"} <= set(by_model)
    assert all(len(v) >= 3 for v in by_model.values())
    assert (DEFAULT_JOB.model, DEFAULT_JOB.variant, DEFAULT_JOB.serving_path) == ("mobilenet_v2", "fp32", True)
    assert DEFAULT_JOB.concurrency == "1,2" and DEFAULT_JOB.batch_sizes == "1,2,4,8"


@pytest.mark.skipif(not FILES, reason="no bundled profiles under profiles/cpu-*/ yet")
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_bundled_profile_is_valid_and_documented(path):
    p = Profile.load(path)
    assert p.source == "measured" and p.device["kind"] == "cpu"
    assert p.batch_sizes[:4] == [1, 2, 4, 8]
    assert p.method["path"] in ("serving", "bare")
    assert p.method["loadavg"]["max_1min"] is not None
    assert p.model["size_bytes"] > 0 and "output_difference" in p.model
    for pt in p.points:
        assert pt.extra["summary"]["stopping_outcome"] in ("converged", "time_budget", "sample_budget")


@pytest.mark.skipif(not DEVICE_DIRS, reason="no bundled profiles under profiles/cpu-*/ yet")
def test_default_profile_present():
    default = DEVICE_DIRS[0] / DEFAULT_JOB.model / DEFAULT_JOB.filename
    p = Profile.load(default)
    assert p.method["path"] == "serving"
    assert p.concurrency_levels == [1, 2]
    assert all("handoff_s" in pt.extra for pt in p.points)
