"""Profile files: measured (or published) service times per batch size and concurrency.

A profile is the simulator's only source of truth about a model on a device, so loading is strict:
a file that is not JSON, has the wrong major schema version, misses a field, or holds an empty,
non-finite or non-positive sample is refused with a :class:`~simulator.errors.ProfileError` naming
the file. Saving is atomic (see :mod:`simulator.io`).

Layout (schema 1.x)::

    {"schema_version": "1.0",
     "source": "measured" | "published",
     "citation": "...",                      # required when source == "published"
     "model":  {"name", "framework", "variant", "input_shape", "file_sha256", "size_bytes", ...},
     "device": {"kind": "cpu"|"gpu"|"tpu", "name", "cores", "threads", "framework_versions", ...},
     "measured_at": "2026-11-27T18:00:00Z",
     "method": {"path": "bare"|"serving"|"csv"|"published", "warmup", "stopping_rule", ...},
     "points": [{"batch_size": 1, "concurrency": 1, "samples_s": [0.0041, ...]}, ...],
     "under_load": {"client_overhead_s": ..., "load_factors": [...]}}   # optional, schema 1.1

``under_load`` (optional, written by the validation harness) says how the model behaves inside a live
server under load: see :mod:`simulator.under_load`.

A published point may give ``mean_s`` (and an assumed ``cv``, stated in the file) instead of raw
samples; it is then modelled as a gamma distribution with that mean and CV (deterministic if cv = 0).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ProfileError
from .io import atomic_write_json
from .under_load import UnderLoad, parse_under_load

SCHEMA_VERSION = "1.0"
SUPPORTED_MAJOR = 1
SOURCES = ("measured", "published")
DEVICE_KINDS = ("cpu", "gpu", "tpu")

__all__ = ["SCHEMA_VERSION", "Profile", "ProfilePoint", "default_profile_path", "load_profile_cached",
           "profiles_root"]


@dataclass(frozen=True)
class ProfilePoint:
    """Service times of one (batch size, concurrency) measurement point, in seconds."""

    batch_size: int
    concurrency: int
    samples: np.ndarray | None = None
    mean_s: float | None = None
    cv: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(self.samples.mean()) if self.samples is not None else float(self.mean_s)

    @property
    def n(self) -> int:
        return 0 if self.samples is None else int(self.samples.size)

    @property
    def scv(self) -> float:
        """Squared coefficient of variation of the service time."""
        if self.samples is not None:
            m = self.samples.mean()
            return float(self.samples.var(ddof=1) / m**2) if self.samples.size > 1 else 0.0
        return float((self.cv or 0.0) ** 2)

    def to_dict(self) -> dict:
        d: dict = {"batch_size": self.batch_size, "concurrency": self.concurrency}
        if self.samples is not None:
            d["samples_s"] = [float(x) for x in self.samples]
        else:
            d["mean_s"] = self.mean_s
            d["cv"] = self.cv
        d.update(self.extra)
        return d


class Profile:
    """A validated service-time profile. Build with :meth:`load` or :meth:`from_dict`."""

    def __init__(self, data: dict, points: list[ProfilePoint], origin: str = "<memory>"):
        self._data = data
        self._points = {(p.batch_size, p.concurrency): p for p in points}
        self.origin = origin

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> Profile:
        """Read and validate a profile JSON file."""
        p = Path(path)
        return cls.from_text(_read_text(p), origin=str(p))

    @classmethod
    def from_text(cls, text: str, origin: str = "<memory>") -> Profile:
        """Parse and validate a profile document given as JSON text."""
        if not text.strip():
            raise ProfileError(f"profile file {origin!r} is empty")
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            raise ProfileError(f"profile file {origin!r} is not valid JSON: {exc}") from None
        return cls.from_dict(data, origin=origin)

    @classmethod
    def from_dict(cls, data: object, origin: str = "<memory>") -> Profile:
        """Validate a parsed profile document."""
        where = f"profile {origin!r}"
        if not isinstance(data, dict):
            raise ProfileError(f"{where}: top level must be a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if not isinstance(version, str) or not re.fullmatch(r"[0-9]+(\.[0-9]+)*", version):
            raise ProfileError(f"{where}: schema_version must be a string like '1.0', got {version!r}")
        major = int(version.split(".")[0])
        if major != SUPPORTED_MAJOR:
            raise ProfileError(f"{where}: schema_version {version} is not supported "
                               f"(this simulator reads major version {SUPPORTED_MAJOR}.x)")
        for key in ("model", "device", "method", "points"):
            if key not in data:
                raise ProfileError(f"{where}: missing required field {key!r}")
        source = data.get("source", "measured")
        if source not in SOURCES:
            raise ProfileError(f"{where}: source must be one of {', '.join(SOURCES)}; got {source!r}")
        if source == "published" and not data.get("citation"):
            raise ProfileError(f"{where}: a published profile needs a 'citation' naming its source")
        model, device = data["model"], data["device"]
        if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not model["name"]:
            raise ProfileError(f"{where}: model.name must be a non-empty string")
        if not isinstance(device, dict) or device.get("kind") not in DEVICE_KINDS:
            kind = device.get("kind") if isinstance(device, dict) else None
            raise ProfileError(f"{where}: device.kind must be one of {', '.join(DEVICE_KINDS)}; got {kind!r}")
        raw_points = data["points"]
        if not isinstance(raw_points, list) or not raw_points:
            raise ProfileError(f"{where}: points must be a non-empty list of measurement points")
        points = [_parse_point(raw, i, where, published=(source == "published"))
                  for i, raw in enumerate(raw_points)]
        keys = [(p.batch_size, p.concurrency) for p in points]
        if len(set(keys)) != len(keys):
            raise ProfileError(f"{where}: duplicate (batch_size, concurrency) points")
        if not any(p.concurrency == 1 for p in points):
            raise ProfileError(f"{where}: at least one point must have concurrency 1")
        parse_under_load(data.get("under_load"), where)
        return cls(data, points, origin)

    # -- contract ------------------------------------------------------------------------------------
    @property
    def source(self) -> str:
        return self._data.get("source", "measured")

    @property
    def citation(self) -> str | None:
        return self._data.get("citation")

    @property
    def model(self) -> dict:
        return self._data["model"]

    @property
    def device(self) -> dict:
        return self._data["device"]

    @property
    def method(self) -> dict:
        return self._data["method"]

    @property
    def under_load(self) -> UnderLoad | None:
        """What the profile says about service under live load (None for isolated measurements)."""
        return parse_under_load(self._data.get("under_load"), f"profile {self.origin!r}")

    @property
    def measured_at(self) -> str | None:
        return self._data.get("measured_at")

    @property
    def name(self) -> str:
        variant = self.model.get("variant", "fp32")
        return f"{self.model['name']}/{variant}@{self.device.get('name', self.device['kind'])}"

    @property
    def batch_sizes(self) -> list[int]:
        """Batch sizes measured at concurrency 1, ascending."""
        return sorted(b for (b, c) in self._points if c == 1)

    @property
    def concurrency_levels(self) -> list[int]:
        """Concurrency levels measured at batch size 1 (or the smallest batch size), ascending."""
        b0 = self.batch_sizes[0]
        return sorted(c for (b, c) in self._points if b == b0)

    @property
    def points(self) -> list[ProfilePoint]:
        return [self._points[k] for k in sorted(self._points)]

    def point(self, batch_size: int, concurrency: int = 1) -> ProfilePoint:
        try:
            return self._points[(batch_size, concurrency)]
        except KeyError:
            raise ProfileError(
                f"profile {self.origin!r} has no point for batch_size={batch_size}, concurrency={concurrency}; "
                f"measured batch sizes: {self.batch_sizes}") from None

    def samples(self, batch_size: int, concurrency: int = 1) -> np.ndarray:
        """Raw service-time samples (seconds) for one point; read-only array."""
        pt = self.point(batch_size, concurrency)
        if pt.samples is None:
            raise ProfileError(f"profile {self.origin!r} point batch_size={batch_size} holds a published mean, "
                               "not samples")
        return pt.samples

    def mean(self, batch_size: int, concurrency: int = 1) -> float:
        """Mean service time (seconds) for one point."""
        return self.point(batch_size, concurrency).mean

    def to_dict(self) -> dict:
        out = {k: v for k, v in self._data.items() if k != "points"}
        out["schema_version"] = self._data.get("schema_version", SCHEMA_VERSION)
        out["points"] = [p.to_dict() for p in self.points]
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the profile atomically (temp file + fsync + rename)."""
        return atomic_write_json(path, self.to_dict())

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, source={self.source!r}, batch_sizes={self.batch_sizes})"


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"profile file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile file {str(p)!r} cannot be read: {exc}") from None


@lru_cache(maxsize=16)
def _parse_cached(text: str, origin: str) -> Profile:
    return Profile.from_text(text, origin)


def load_profile_cached(path: str | os.PathLike) -> Profile:
    """:meth:`Profile.load`, parsed once per content of the file (it is read every time, so an edited file
    is parsed again). For callers that load the same file over and over, like ``simulate`` inside a plan;
    the Profile returned is shared, so treat it as read-only."""
    p = Path(path)
    return _parse_cached(_read_text(p), str(p))


def _refuse_constant(token: str):
    raise ValueError(f"non-finite number {token} is not allowed")


def _parse_point(raw: object, index: int, where: str, *, published: bool) -> ProfilePoint:
    at = f"{where}: points[{index}]"
    if not isinstance(raw, dict):
        raise ProfileError(f"{at} must be an object")
    b, c = raw.get("batch_size", 1), raw.get("concurrency", 1)
    for name, v in (("batch_size", b), ("concurrency", c)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ProfileError(f"{at}.{name} must be an integer >= 1, got {v!r}")
    extra = {k: v for k, v in raw.items() if k not in ("batch_size", "concurrency", "samples_s", "mean_s", "cv")}
    if "samples_s" in raw:
        s = raw["samples_s"]
        if not isinstance(s, list) or not s:
            raise ProfileError(f"{at}.samples_s must be a non-empty list of seconds")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in s):
            raise ProfileError(f"{at}.samples_s must hold only numbers")
        arr = np.asarray(s, dtype=float)
        if not np.all(np.isfinite(arr)):
            raise ProfileError(f"{at}.samples_s holds non-finite values (NaN or inf)")
        if np.any(arr <= 0):
            raise ProfileError(f"{at}.samples_s must be > 0 seconds; min is {arr.min()}")
        arr.setflags(write=False)
        return ProfilePoint(b, c, samples=arr, extra=extra)
    if published and "mean_s" in raw:
        m, cv = raw["mean_s"], raw.get("cv", 0.0)
        if not isinstance(m, (int, float)) or isinstance(m, bool) or not (math.isfinite(m) and m > 0):
            raise ProfileError(f"{at}.mean_s must be a finite number > 0, got {m!r}")
        if not isinstance(cv, (int, float)) or isinstance(cv, bool) or not (math.isfinite(cv) and cv >= 0):
            raise ProfileError(f"{at}.cv must be a finite number >= 0, got {cv!r}")
        return ProfilePoint(b, c, mean_s=float(m), cv=float(cv), extra=extra)
    raise ProfileError(f"{at} needs samples_s (a list of seconds)"
                       + (" or mean_s" if published else ""))


def profiles_root() -> Path:
    """The bundled profiles/ folder (beside the package in a checkout; SIMULATOR_PROFILES overrides)."""
    env = os.environ.get("SIMULATOR_PROFILES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "profiles"


DEFAULT_PROFILE = "cpu-amd-epyc-2c/mobilenet_v2/fp32.json"  # measured by simulator.profiling.bundle


def default_profile_path() -> Path:
    """Path of the profile ``simulate --arrival-rate N`` uses when given no service flags."""
    return profiles_root() / DEFAULT_PROFILE
