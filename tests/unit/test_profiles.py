"""Profile loading refuses every malformed file with a message naming the file; saving is atomic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.errors import ProfileError
from simulator.profiles import Profile
from tests.conftest import make_profile_dict


def test_round_trip(tmp_path, synthetic_profile):
    prof = Profile.load(synthetic_profile)
    assert prof.batch_sizes == [1, 2, 8]
    assert prof.concurrency_levels == [1, 2]
    out = tmp_path / "copy.json"
    prof.save(out)
    again = Profile.load(out)
    np.testing.assert_array_equal(again.samples(8), prof.samples(8))
    assert again.name == prof.name


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema_version="2.0"), "schema_version 2.0 is not supported"),
    (lambda d: d.update(schema_version=1), "schema_version must be a string"),
    (lambda d: d.pop("points"), "missing required field 'points'"),
    (lambda d: d.update(points=[]), "points must be a non-empty list"),
    (lambda d: d["points"][0].update(samples_s=[]), "samples_s must be a non-empty list"),
    (lambda d: d["points"][0].update(samples_s=[0.1, -1.0]), "must be > 0 seconds"),
    (lambda d: d["points"][0].update(samples_s=[0.1, "x"]), "must hold only numbers"),
    (lambda d: d["points"][0].update(batch_size=0), "batch_size must be an integer >= 1"),
    (lambda d: d["points"][0].update(batch_size=1.5), "batch_size must be an integer >= 1"),
    (lambda d: d["device"].update(kind="fpga"), "device.kind must be one of cpu, gpu, tpu"),
    (lambda d: d.update(source="guessed"), "source must be one of measured, published"),
    (lambda d: d.update(source="published"), "needs a 'citation'"),
    (lambda d: d["model"].update(name=""), "model.name must be a non-empty string"),
    (lambda d: d["points"].append(dict(d["points"][0])), "duplicate"),
])
def test_malformed_documents_are_refused(tmp_path, mutate, message):
    doc = make_profile_dict({1: np.array([0.01, 0.02])})
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ProfileError) as err:
        Profile.load(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("{not json", "is not valid JSON"),
    ('{"schema_version": "1.0", "points": [{"samples_s": [NaN]}]}', "is not valid JSON"),
    ("[1, 2]", "top level must be a JSON object"),
])
def test_corrupt_files_are_refused(tmp_path, text, message):
    path = tmp_path / "corrupt.json"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message):
        Profile.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        Profile.load(tmp_path / "nope.json")


def test_published_points_need_citation_and_positive_mean(tmp_path):
    doc = make_profile_dict({1: np.array([0.01])})
    doc.update(source="published", citation="vendor table, 2025")
    doc["points"] = [{"batch_size": 1, "concurrency": 1, "mean_s": 0.002, "cv": 0.1},
                     {"batch_size": 8, "concurrency": 1, "mean_s": 0.006, "cv": 0.1}]
    prof = Profile.from_dict(doc)
    assert prof.mean(8) == pytest.approx(0.006)
    doc["points"][0]["mean_s"] = float("inf")
    with pytest.raises(ProfileError, match="mean_s must be a finite number > 0"):
        Profile.from_dict(doc)


def test_cached_load_parses_once_per_content(tmp_path):
    from simulator.profiles import load_profile_cached

    path = tmp_path / "p.json"
    path.write_text(json.dumps(make_profile_dict({1: np.array([0.010, 0.012])})))
    first = load_profile_cached(path)
    assert load_profile_cached(path) is first
    # same size, other content: parsed again
    path.write_text(json.dumps(make_profile_dict({1: np.array([0.020, 0.012])})))
    again = load_profile_cached(path)
    assert again is not first and again.mean(1) == pytest.approx(0.016)
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile_cached(tmp_path / "missing.json")
