"""The hardware catalog: what each kind of hardware costs and which profile a model/variant uses on it.

A catalog is a TOML file that users edit (the bundled one is ``profiles/catalog.toml``)::

    schema_version = "1.0"

    [hardware.cpu-2core]
    kind = "cpu"                       # cpu | gpu | tpu
    price_per_hour = 0.085             # USD per replica-hour, public on-demand list price
    price_source = "https://..."       # where the price was read
    price_seen = "2026-11-27"          # when
    priced_as = "AWS c6i.large"        # the cloud instance type the price is that of
    description = "..."

    [models.resnet50.cpu-2core]
    fp32 = "cpu-2core/resnet50/fp32.json"          # a profile, relative to the catalog's folder
    int8-dynamic = "cpu-2core/resnet50/int8-dynamic.json"

    [models.toy.sim-gpu]
    fp16 = { service_time_ms = 2.0, cv = 0.3, dist = "gamma", batch_time_ms = [1.5, 0.4] }

A hardware table may also name ``profiles_dir`` (a folder or glob, relative to the catalog): every
``<model>/<variant>.json`` below it becomes that model's variant on that hardware, so profiles measured
with ``simulator profile`` join the catalog as they appear (when a glob matches several folders, the
first in name order wins); ``*-bare.json`` files (bare-call timings, no serving path) are skipped, and
explicit ``[models...]`` entries win.

A variant is a profile path or a parametric service (``service_time_ms``, ``cv``, ``dist`` and, for
batching, ``batch_time_ms = [A, B]``: a batch of n takes A + B·n ms). Unknown keys are refused, and a
profile named by the catalog must exist: a typo never silently drops a candidate.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..profiles import DEVICE_KINDS, Profile, profiles_root
from ..scenario import SERVICE_DISTS, Service
from ..validation import check_choice, check_nonnegative, check_positive

__all__ = ["HOURS_PER_MONTH", "Catalog", "Hardware", "ServiceSpec", "default_catalog_path", "load_catalog"]

SCHEMA_MAJOR = 1
HOURS_PER_MONTH = 730.0
"""Hours in the monthly cost (365 · 24 / 12 = 730, the convention of AWS and GCP price pages)."""

_HW_KEYS = {"kind", "price_per_hour", "price_source", "price_seen", "priced_as", "description", "notes",
            "price_verified", "profiles_dir"}
_PARAM_KEYS = {"service_time_ms", "cv", "dist", "batch_time_ms", "label"}


@dataclass(frozen=True)
class Hardware:
    """One kind of replica and its price (USD per replica-hour)."""

    name: str
    kind: str
    price_per_hour: float
    price_source: str = ""
    price_seen: str = ""
    priced_as: str = ""
    description: str = ""
    notes: str = ""
    price_verified: bool = True
    profiles_dir: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "price_per_hour": self.price_per_hour,
                "price_source": self.price_source, "price_seen": self.price_seen, "priced_as": self.priced_as,
                "price_verified": self.price_verified, "description": self.description, "notes": self.notes}


@dataclass(frozen=True)
class ServiceSpec:
    """How one model variant runs on one hardware: a profile file or a parametric service time.

    ``source`` is ``"measured"`` or ``"published"`` (from the profile) or ``"parametric"``; published
    figures carry their citation and are never presented as measured.
    """

    model: str
    hardware: str
    variant: str
    source: str
    profile_path: str | None = None
    profile_text: str | None = field(default=None, repr=False, compare=False)
    mean_s: float | None = None
    cv: float | None = None
    dist: str = "exponential"
    batch_time_s: tuple[float, float] | None = None
    citation: str | None = None
    device: str = ""
    measured_at: str | None = None
    method: str = ""
    accuracy: dict | None = field(default=None, compare=False)
    measured_batch_sizes: tuple[int, ...] | None = field(default=None, compare=False)
    host_level: float = 1.0  # multiplier on every service time (plan --host-margin: a slow host level)

    def service(self) -> Service:
        """The scenario Service of one replica. Replicas are separate instances: no shared-host contention."""
        if self.profile_path is not None:
            return Service(profile=self.profile_path, contention="none", host_level=self.host_level)
        return Service(mean_s=None if self.batch_time_s else self.mean_s, cv=self.cv, dist=self.dist,
                       batch_time=self.batch_time_s, contention="none", host_level=self.host_level)

    def service_flags(self) -> list[str]:
        """The ``simulate`` flags that select this service."""
        if self.profile_path is not None:
            return ["--profile", _display_path(self.profile_path), "--contention", "none", *self._level_flags()]
        flags = []
        if self.batch_time_s is not None:
            flags += ["--batch-time-ms", f"{self.batch_time_s[0] * 1e3:g},{self.batch_time_s[1] * 1e3:g}"]
        else:
            flags += ["--service-time-ms", f"{self.mean_s * 1e3:g}"]
        flags += ["--service-dist", self.dist]
        if self.cv is not None and self.dist not in ("exponential", "deterministic"):
            flags += ["--service-cv", f"{self.cv:g}"]
        return flags + self._level_flags()

    def _level_flags(self) -> list[str]:
        return ["--host-level", f"{self.host_level:.6g}"] if self.host_level != 1.0 else []

    def provenance(self) -> dict:
        return {"model": self.model, "hardware": self.hardware, "variant": self.variant, "device": self.device,
                "date": self.measured_at, "method": self.method, "source": self.source,
                "citation": self.citation, "profile": self.profile_path, "accuracy": self.accuracy,
                **({"host_level": self.host_level} if self.host_level != 1.0 else {})}

    def key(self) -> str:
        """A stable identifier of the service (for seeds and caches): name plus content hash."""
        h = hashlib.blake2b(digest_size=8)
        h.update(f"{self.model}|{self.hardware}|{self.variant}|{self.mean_s}|{self.cv}|{self.dist}|"
                 f"{self.batch_time_s}|{self.host_level}".encode())
        if self.profile_text is not None:
            h.update(self.profile_text.encode())
        return h.hexdigest()


@dataclass
class Catalog:
    """Hardware prices and, per model, the service spec of each (hardware, variant)."""

    path: str
    hardware: dict[str, Hardware]
    models: dict[str, dict[str, dict[str, ServiceSpec]]]

    def model_names(self) -> list[str]:
        return sorted(self.models)

    def specs(self, model: str, hardware: list[str] | None = None,
              variants: list[str] | None = None) -> list[ServiceSpec]:
        """Every (hardware, variant) of ``model``, filtered; unknown names raise listing the known ones."""
        if model not in self.models:
            raise InputError(f"unknown model {model!r}; known models in {self.path}: "
                             f"{', '.join(self.model_names()) or '(none)'}")
        per_hw = self.models[model]
        if hardware:
            for h in hardware:
                if h not in self.hardware:
                    raise InputError(f"unknown hardware {h!r}; known hardware in {self.path}: "
                                     f"{', '.join(sorted(self.hardware))}")
                if h not in per_hw:
                    raise InputError(f"hardware {h!r} has no profile for model {model!r}; hardware with one: "
                                     f"{', '.join(sorted(per_hw)) or '(none)'}")
        chosen = [h for h in sorted(per_hw) if not hardware or h in hardware]
        known_variants = sorted({v for h in chosen for v in per_hw[h]})
        if variants:
            for v in variants:
                if v not in known_variants:
                    raise InputError(f"unknown variant {v!r} for model {model!r}; known variants: "
                                     f"{', '.join(known_variants)}")
        out = [per_hw[h][v] for h in chosen for v in sorted(per_hw[h]) if not variants or v in variants]
        if not out:
            raise InputError(f"no (hardware, variant) of model {model!r} matches the filters")
        return out


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it (portable reports), else as is."""
    p = Path(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def default_catalog_path() -> Path:
    """The bundled catalog (``profiles/catalog.toml``; SIMULATOR_PROFILES moves the folder)."""
    return profiles_root() / "catalog.toml"


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalog TOML file (see the module docstring for the format)."""
    p = (Path(path) if path is not None else default_catalog_path()).resolve()
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"catalog file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"catalog {str(p)!r} is a directory, not a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"catalog file {str(p)!r} is not valid TOML: {exc}") from None
    where = f"catalog {str(p)!r}"
    version = doc.get("schema_version", "1.0")
    if not isinstance(version, str) or not version.split(".")[0].isdigit() \
            or int(version.split(".")[0]) != SCHEMA_MAJOR:
        raise InputError(f"{where}: schema_version {version!r} is not supported (reads {SCHEMA_MAJOR}.x)")
    for key in doc:
        if key not in ("schema_version", "hardware", "models", "notes"):
            raise InputError(f"{where}: unknown top-level key {key!r}; known: hardware, models, notes, "
                             "schema_version")
    hardware = {name: _hardware(name, table, where) for name, table in _table(doc, "hardware", where).items()}
    if not hardware:
        raise InputError(f"{where}: needs at least one [hardware.NAME] table")
    models: dict[str, dict[str, dict[str, ServiceSpec]]] = {}
    for hw_name, table in _table(doc, "hardware", where).items():
        for model, variant, path in _discover(table.get("profiles_dir"), p.parent, f"{where}: [hardware.{hw_name}]"):
            spec = _spec(model, hardware[hw_name], variant, str(path), p.parent, where)
            models.setdefault(model, {}).setdefault(hw_name, {})[variant] = spec
    for model, per_hw in _table(doc, "models", where).items():
        if not isinstance(per_hw, dict):
            raise InputError(f"{where}: [models.{model}] must be a table of hardware names")
        models.setdefault(model, {})
        for hw, variants in per_hw.items():
            if hw not in hardware:
                raise InputError(f"{where}: [models.{model}.{hw}] names unknown hardware {hw!r}; known: "
                                 f"{', '.join(sorted(hardware))}")
            if not isinstance(variants, dict) or not variants:
                raise InputError(f"{where}: [models.{model}.{hw}] must map variant names to profiles")
            models[model].setdefault(hw, {}).update(
                {v: _spec(model, hardware[hw], v, entry, p.parent, where) for v, entry in variants.items()})
    return Catalog(str(p), hardware, models)


def _accuracy(model: dict) -> dict | None:
    """What the profile says about the variant's outputs against fp32 (max relative difference, top-1)."""
    diff = model.get("output_difference")
    if not isinstance(diff, dict):
        return None
    return {k: diff[k] for k in ("max_rel_diff", "top1_agreement", "examples") if k in diff} or None


def _discover(pattern: object, base: Path, where: str) -> list[tuple[str, str, Path]]:
    """(model, variant, path) of every ``<model>/<variant>.json`` under the folders matching ``pattern``."""
    if pattern is None:
        return []
    if not isinstance(pattern, str) or not pattern:
        raise InputError(f"{where} profiles_dir must be a folder name or glob, got {pattern!r}")
    found: dict[tuple[str, str], Path] = {}
    folders = sorted(q for q in base.glob(pattern) if q.is_dir())
    for folder in folders:
        for path in sorted(folder.glob("*/*.json")):
            if path.stem.endswith("-bare"):
                continue  # bare-call timings (no serving path) understate what a server sees
            found.setdefault((path.parent.name, path.stem), path)  # the first folder in name order wins
    return [(m, v, path) for (m, v), path in sorted(found.items())]


def _table(doc: dict, key: str, where: str) -> dict:
    t = doc.get(key, {})
    if not isinstance(t, dict):
        raise InputError(f"{where}: [{key}] must be a table")
    return t


def _hardware(name: str, table: object, where: str) -> Hardware:
    at = f"{where}: [hardware.{name}]"
    if not isinstance(table, dict):
        raise InputError(f"{at} must be a table")
    unknown = set(table) - _HW_KEYS
    if unknown:
        raise InputError(f"{at} has unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_HW_KEYS))}")
    if "kind" not in table or "price_per_hour" not in table:
        raise InputError(f"{at} needs kind (cpu|gpu|tpu) and price_per_hour (USD)")
    kind = check_choice(f"{at} kind", table["kind"], DEVICE_KINDS)
    try:
        price = check_positive(f"{at} price_per_hour", table["price_per_hour"])
    except InputError as exc:
        raise InputError(str(exc)) from None
    verified = table.get("price_verified", True)
    if not isinstance(verified, bool):
        raise InputError(f"{at} price_verified must be true or false, got {verified!r}")
    return Hardware(name=name, kind=kind, price_per_hour=price,
                    price_source=str(table.get("price_source", "")), price_seen=str(table.get("price_seen", "")),
                    priced_as=str(table.get("priced_as", "")), description=str(table.get("description", "")),
                    notes=str(table.get("notes", "")), price_verified=verified,
                    profiles_dir=table.get("profiles_dir"))


def _spec(model: str, hw: Hardware, variant: str, entry: object, base: Path, where: str) -> ServiceSpec:
    at = f"{where}: models.{model}.{hw.name}.{variant}"
    if isinstance(entry, str):
        path = Path(entry)
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise InputError(f"{at}: profile {str(path)!r} does not exist")
        prof = Profile.load(path)
        text = path.read_text(encoding="utf-8")
        method = prof.method if isinstance(prof.method, dict) else {}
        return ServiceSpec(model=model, hardware=hw.name, variant=variant, source=prof.source,
                           profile_path=str(path.resolve()), profile_text=text, citation=prof.citation,
                           device=str(prof.device.get("name", prof.device.get("kind", ""))),
                           measured_at=prof.measured_at, method=str(method.get("path", "")),
                           accuracy=_accuracy(prof.model), measured_batch_sizes=tuple(prof.batch_sizes))
    if isinstance(entry, dict):
        unknown = set(entry) - _PARAM_KEYS
        if unknown:
            raise InputError(f"{at} has unknown key(s) {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(sorted(_PARAM_KEYS))}")
        dist = check_choice(f"{at} dist", entry.get("dist", "exponential"), SERVICE_DISTS)
        cv = entry.get("cv", {"exponential": 1.0, "deterministic": 0.0}.get(dist))
        if cv is None:
            raise InputError(f"{at}: dist {dist} needs cv")
        cv = check_nonnegative(f"{at} cv", cv)
        bt = entry.get("batch_time_ms")
        mean = entry.get("service_time_ms")
        if bt is None and mean is None:
            raise InputError(f"{at} needs service_time_ms or batch_time_ms = [A, B]")
        batch_time = None
        if bt is not None:
            if not isinstance(bt, list) or len(bt) != 2:
                raise InputError(f"{at} batch_time_ms must be [A, B] (ms), got {bt!r}")
            batch_time = (check_nonnegative(f"{at} batch_time_ms A", bt[0]) * 1e-3,
                          check_positive(f"{at} batch_time_ms B", bt[1]) * 1e-3)
            mean_s = batch_time[0] + batch_time[1]
        else:
            mean_s = check_positive(f"{at} service_time_ms", mean) * 1e-3
        if not math.isfinite(mean_s):
            raise InputError(f"{at}: service time must be finite")
        return ServiceSpec(model=model, hardware=hw.name, variant=variant, source="parametric", mean_s=mean_s,
                           cv=cv, dist=dist, batch_time_s=batch_time, device=hw.name, method="parametric",
                           citation=entry.get("label"))
    raise InputError(f"{at} must be a profile path or a table of parametric service settings")
