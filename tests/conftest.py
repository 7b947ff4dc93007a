"""Shared fixtures. Tests never read files relative to the working directory: paths come from here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def root() -> Path:
    return ROOT


def make_profile_dict(samples_by_batch: dict[int, np.ndarray], concurrency: dict[int, np.ndarray] | None = None,
                      name: str = "synthetic") -> dict:
    """A minimal valid profile document from given samples (seconds)."""
    points = [{"batch_size": b, "concurrency": 1, "samples_s": [float(x) for x in s]}
              for b, s in samples_by_batch.items()]
    for k, s in (concurrency or {}).items():
        points.append({"batch_size": min(samples_by_batch), "concurrency": k, "samples_s": [float(x) for x in s]})
    return {"schema_version": "1.0", "source": "measured",
            "model": {"name": name, "framework": "synthetic", "variant": "fp32"},
            "device": {"kind": "cpu", "name": "test"}, "measured_at": "2026-11-27T00:00:00Z",
            "method": {"path": "synthetic"}, "points": points}


@pytest.fixture
def synthetic_profile(tmp_path) -> Path:
    rng = np.random.default_rng(7)
    doc = make_profile_dict({1: rng.gamma(4.0, 0.0025, 800), 2: rng.gamma(4.0, 0.0035, 800),
                             8: rng.gamma(4.0, 0.0085, 800)},
                            concurrency={2: rng.gamma(4.0, 0.003, 800)})
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(doc))
    return path
