"""`simulator profile` without TensorFlow: --from-csv, `profile show`, and refusals of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from simulator.cli import main
from simulator.errors import InputError
from simulator.profiles import Profile
from simulator.profiling.csv_import import profile_from_csv


def write_csv(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_from_csv_round_trip(tmp_path, capsys):
    rng = np.random.default_rng(3)
    rows = ["batch_size,concurrency,service_time_s"]
    expected = {}
    for b, c in [(1, 1), (4, 1), (1, 2)]:
        s = rng.gamma(5.0, 0.001 * b, 50)
        expected[(b, c)] = s
        rows += [f"{b},{c},{float(v)!r}" for v in s]
    csv_path = write_csv(tmp_path / "times.csv", "\n".join(rows) + "\n")
    out = tmp_path / "p.json"
    assert main(["profile", "--from-csv", str(csv_path), "--output", str(out)]) == 0
    profile = Profile.load(out)
    assert profile.batch_sizes == [1, 4]
    assert profile.concurrency_levels == [1, 2]
    for (b, c), s in expected.items():
        np.testing.assert_array_equal(profile.samples(b, c), s)  # exact: repr round-trips floats
    assert profile.method["path"] == "csv"
    assert profile.model["name"] == "times"
    assert len(profile.model["file_sha256"]) == 64
    assert "wrote" in capsys.readouterr().out


def test_from_csv_defaults_batch_and_concurrency(tmp_path):
    p = profile_from_csv(write_csv(tmp_path / "t.csv", "service_time_s\n0.01\n0.02\n"), name="mine")
    assert p.batch_sizes == [1] and p.model["name"] == "mine"
    np.testing.assert_array_equal(p.samples(1), [0.01, 0.02])


@pytest.mark.parametrize("text, match", [
    ("latency_ms\n3\n", "no 'service_time_s' column"),
    ("service_time_s\n0.1\nabc\n", r"row 2 \(line 3\): column 'service_time_s' must be a number of seconds, got 'abc'"),
    ("service_time_s\n0.1\nnan\n", r"row 2 \(line 3\): column 'service_time_s' must be a finite number > 0"),
    ("service_time_s\n-0.1\n", r"row 1 \(line 2\): column 'service_time_s' must be a finite number > 0"),
    ("service_time_s\n0\n", r"row 1 \(line 2\): .*> 0"),
    ("service_time_s\ninf\n", r"row 1 \(line 2\): .*finite"),
    ("service_time_s,batch_size\n0.1,2.5\n", r"row 1 \(line 2\): column 'batch_size' must be an integer >= 1, got '2.5'"),
    ("service_time_s,concurrency\n0.1,0\n", r"row 1 \(line 2\): column 'concurrency' must be an integer >= 1"),
    ("service_time_s,concurrency\n0.1,2\n", "at least one row must have concurrency 1"),
    ("", "is empty"),
    ("service_time_s\n", "no data rows"),
])
def test_from_csv_errors_name_file_line_column(tmp_path, text, match):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=match) as info:
        profile_from_csv(path)
    assert "bad.csv" in str(info.value)


def test_from_csv_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        profile_from_csv(tmp_path / "nope.csv")


def test_from_csv_error_is_exit_2_one_line(tmp_path, capsys):
    path = write_csv(tmp_path / "bad.csv", "service_time_s\n0.1\nNaN\n")
    assert main(["profile", "--from-csv", str(path), "--output", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.csv, row 2 (line 3)" in err and "service_time_s" in err
    assert not (tmp_path / "o.json").exists()


def _bad_profiles(tmp_path, good: dict) -> dict:
    nan_doc = json.dumps(good).replace(str(good["points"][0]["samples_s"][0]), "NaN", 1)
    wrong = dict(good, schema_version="2.0")
    files = {"corrupt": "{not json", "empty": "", "nan": nan_doc, "version": json.dumps(wrong),
             "no_points": json.dumps(dict(good, points=[]))}
    out = {}
    for name, text in files.items():
        (tmp_path / f"{name}.json").write_text(text)
        out[name] = tmp_path / f"{name}.json"
    return out


@pytest.mark.parametrize("kind, match", [("corrupt", "not valid JSON"), ("empty", "is empty"),
                                         ("nan", "non-finite"), ("version", "schema_version 2.0"),
                                         ("no_points", "points"), ("missing", "does not exist")])
def test_show_refuses_bad_profiles_with_one_line(tmp_path, synthetic_profile, capsys, kind, match):
    files = _bad_profiles(tmp_path, json.loads(synthetic_profile.read_text()))
    path = files.get(kind, tmp_path / "missing.json")
    assert main(["profile", "show", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0, err
    assert str(path) in err and __import__("re").search(match, err), err
    assert "Traceback" not in captured.err


def test_show_cli_subprocess_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    proc = subprocess.run([sys.executable, "-m", "simulator", "profile", "show", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "bad.json" in proc.stderr


def test_show_prints_table_and_plot(tmp_path, synthetic_profile, capsys):
    png = tmp_path / "p.png"
    assert main(["profile", "show", str(synthetic_profile), "--plot", str(png), "--fit"]) == 0
    out = capsys.readouterr().out
    assert "mean_ms" in out and "p99_ms" in out and "CV" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "2 ", "8 "))]
    assert {(r[0], r[1]) for r in rows} >= {("1", "1"), ("2", "1"), ("8", "1"), ("1", "2")}
    assert "batch curve" in out and "best" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, match", [
    (["profile"], "MODEL_FILE"),
    (["profile", "zoo:tiny_cnn"], "--output"),
    (["profile", "show"], "usage"),
    (["profile", "zoo:tiny_cnn", "--output", "/nonexistent-dir/x.json"], "does not exist"),
    (["profile", "zoo:nope", "--output", "OUT"], "unknown zoo model 'zoo:nope'; known: zoo:tiny_cnn"),
    (["profile", "zoo:tiny_cnn", "--output", "OUT", "--batch-sizes", "1,x"], "batch_sizes"),
    (["profile", "zoo:tiny_cnn", "--output", "OUT", "--batch-sizes", "0"], "batch_size must be"),
    (["profile", "zoo:tiny_cnn", "--output", "OUT", "--rel-ci", "nan"], "rel_ci"),
    (["profile", "model.onnx", "--output", "OUT"], "does not exist"),
])
def test_user_errors_exit_2(tmp_path, capsys, argv, match):
    argv = [str(tmp_path / "o.json") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.strip().count("\n") == 0


def test_import_simulator_does_not_import_tensorflow():
    code = ("import sys, simulator, simulator.profiling, simulator.fitting, simulator.commands.profile_cmd, "
            "simulator.profiling.profiler, simulator.profiling.csv_import, simulator.profiling.summary; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'torch', 'tf_keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]"


def test_show_published_profile_marks_it_and_plots_means(tmp_path, capsys):
    doc = {"schema_version": "1.0", "source": "published", "citation": "Vendor table 3, example.com",
           "model": {"name": "m", "variant": "fp16"}, "device": {"kind": "gpu", "name": "X"},
           "method": {"path": "published"},
           "points": [{"batch_size": b, "concurrency": 1, "mean_s": 0.001 + 0.0005 * b, "cv": 0.05}
                      for b in (1, 2, 4)]}
    path = tmp_path / "pub.json"
    path.write_text(json.dumps(doc))
    png = tmp_path / "pub.png"
    assert main(["profile", "show", str(path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Vendor table 3" in out and "not measured here" in out and "published" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
