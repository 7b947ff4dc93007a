"""The bundled measured profiles (profiles/cpu-*/) load, say how they were measured, and cover the promise:
three zoo models x at least three variants x batch sizes 1-8, and a serving-path default with concurrency."""

from __future__ import annotations

from itertools import pairwise
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


GPU_DIRS = sorted(d for d in ROOT.glob("gpu-*") if d.is_dir())
GPU_FILES = sorted(p for d in GPU_DIRS for p in d.glob("*/*.json"))


def test_gpu_bundle_jobs_cover_eager_and_graph_variants():
    from simulator.profiling.bundle import GPU_JOBS

    pairs = {(j.model, j.variant) for j in GPU_JOBS}
    for model in ("mobilenet_v2", "resnet50", "transformer_small"):
        assert {(model, v) for v in ("fp32", "fp16", "fp32-cudagraph", "fp16-cudagraph")} <= pairs
    assert all(j.batch_sizes.split(",")[-1] == "64" for j in GPU_JOBS)


@pytest.mark.skipif(not GPU_FILES, reason="no GPU profiles measured yet (needs a CUDA machine)")
@pytest.mark.parametrize("path", GPU_FILES, ids=[str(p.relative_to(ROOT)) for p in GPU_FILES])
def test_gpu_profile_says_where_and_how_it_was_measured(path):
    p = Profile.load(path)
    assert p.source == "measured" and p.device["kind"] == "gpu" and p.device["gpu"] == p.device["name"]
    assert p.device["framework_versions"]["torch"] and p.measured_at.endswith("Z")
    assert p.model["runtime"] == "torch-cuda" and p.method["path"] == "serving"
    assert p.batch_sizes == [1, 2, 4, 8, 16, 32, 64]
    graphs = p.model["variant"].endswith("-cudagraph")
    assert p.model["variant_info"].get("execution", "eager") == ("CUDA graph per batch size, replayed" if graphs else "eager")
    for pt in p.points:
        assert pt.n >= 88 and pt.extra["summary"]["stopping_outcome"] in ("converged", "time_budget", "sample_budget")


@pytest.mark.skipif(not GPU_FILES, reason="no GPU profiles measured yet (needs a CUDA machine)")
def test_cuda_graphs_remove_the_launch_bound_floor():
    """What the GPU profiles show (and why the planner prefers the graph variants): eager PyTorch pays
    several ms of CPU-side kernel launches per call whatever the batch; replaying a CUDA graph does not."""
    d = GPU_DIRS[0] / "resnet50"
    eager, graph = Profile.load(d / "fp16.json"), Profile.load(d / "fp16-cudagraph.json")
    assert graph.mean(1) < 0.5 * eager.mean(1)
    means = [graph.mean(b) for b in graph.batch_sizes]
    assert all(b > a for a, b in pairwise(means))  # a graph's time grows with the batch
