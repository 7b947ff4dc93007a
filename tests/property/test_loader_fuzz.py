"""Fuzzing the file loaders: any input gives either a valid object or a clean InputError — nothing else.

Hypothesis generates JSON-like documents (structured around the real schema, plus arbitrary junk) and
arbitrary text for TOML scenarios; an uncaught KeyError/TypeError/AttributeError would be a bug.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.errors import InputError
from simulator.profiles import Profile
from simulator.scenario import load_scenario

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=8))
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                          st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                           max_leaves=12)

points = st.lists(st.fixed_dictionaries({}, optional={
    "batch_size": st.one_of(st.integers(-2, 64), scalars),
    "concurrency": st.one_of(st.integers(-2, 8), scalars),
    "samples_s": st.one_of(st.lists(st.one_of(st.floats(-1, 1), scalars), max_size=5), scalars),
    "mean_s": st.one_of(st.floats(), scalars),
    "cv": st.one_of(st.floats(), scalars),
}), max_size=4)

profile_docs = st.fixed_dictionaries({}, optional={
    "schema_version": st.one_of(st.sampled_from(["1.0", "1.7", "2.0", "0.9", "x", ""]), scalars),
    "source": st.one_of(st.sampled_from(["measured", "published"]), scalars),
    "citation": scalars,
    "model": st.one_of(st.fixed_dictionaries({}, optional={"name": scalars, "variant": scalars}), json_values),
    "device": st.one_of(st.fixed_dictionaries({}, optional={"kind": st.sampled_from(["cpu", "gpu", "tpu", "x"]),
                                                            "name": scalars}), json_values),
    "method": json_values,
    "points": st.one_of(points, json_values),
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(profile_docs, json_values))
def test_profile_loader_never_crashes(doc):
    try:
        prof = Profile.from_dict(doc, origin="fuzz.json")
    except InputError:
        return
    # A profile that loads is usable: every batch size has positive finite service times.
    for b in prof.batch_sizes:
        assert prof.mean(b) > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_profile_file_loader_text(tmp_path, text):
    f = tmp_path / "p.json"
    f.write_text(text, encoding="utf-8")
    try:
        Profile.load(f)
    except InputError:
        pass


toml_scalars = st.one_of(st.integers(-3, 10**5), st.floats(allow_nan=True, allow_infinity=True),
                         st.booleans(), st.text(max_size=6).map(json.dumps))
sections = st.dictionaries(
    st.sampled_from(["arrivals", "service", "system", "batching", "cache", "run", "bogus"]),
    st.dictionaries(st.sampled_from(["rate", "process", "cv", "service_time_ms", "dist", "replicas",
                                     "queue_limit", "max_batch_size", "timeout_ms", "policy", "capacity",
                                     "keys", "requests", "seed", "profile", "batch_time_ms", "x"]),
                    toml_scalars, max_size=4),
    max_size=5)


def _to_toml(doc: dict) -> str:
    lines = []
    for sec, kv in doc.items():
        lines.append(f"[{sec}]")
        for k, v in kv.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, float):
                v = {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(v), repr(v))
            lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(doc=sections)
def test_scenario_loader_never_crashes(tmp_path, doc):
    f = tmp_path / "s.toml"
    f.write_text(_to_toml(doc))
    try:
        load_scenario(f)
    except InputError:
        pass
