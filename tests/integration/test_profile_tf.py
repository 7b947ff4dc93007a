"""End-to-end profiling of small TensorFlow models (zoo:tiny_cnn, a .keras file, a SavedModel, a .tflite
file) with tiny budgets, read back with Profile.load."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from simulator.cli import main
from simulator.profiles import Profile

pytestmark = pytest.mark.tensorflow
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

QUICK = ["--min-samples", "50", "--max-seconds", "0.5", "--rel-ci", "0.05", "--warmup-seconds", "0.1",
         "--accuracy-examples", "16", "--quiet"]


def profile(*argv) -> int:
    return main(["profile", *map(str, argv), *QUICK])


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    from simulator.profiling.zoo import get_entry

    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    get_entry("tiny_cnn").build("keras", seed=1).save(path)
    return path


@pytest.fixture(scope="module")
def tflite_file(tmp_path_factory, keras_file):
    # Converted here through Keras' own export path, independently of the profiler's converter.
    d = tmp_path_factory.mktemp("tflite")
    keras.models.load_model(keras_file).export(d / "saved", verbose=False)
    path = d / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(d / "saved")).convert())
    return path


def test_zoo_model_end_to_end_metadata(tmp_path):
    out = tmp_path / "p.json"
    assert profile("zoo:tiny_cnn", "--output", out, "--batch-sizes", "1,2", "--concurrency", "1,2") == 0
    p = Profile.load(out)
    assert p.batch_sizes == [1, 2] and p.concurrency_levels == [1, 2]
    assert p.model["name"] == "tiny_cnn" and p.model["variant"] == "fp32"
    assert p.model["input_shape"] == [32, 32, 3] and len(p.model["weights_sha256"]) == 64
    assert p.model["size_bytes"] > 0
    assert p.model["output_difference"]["max_abs_diff"] == 0.0
    assert p.device["kind"] == "cpu" and p.device["cores"] >= 1 and p.device["name"]
    assert p.device["framework_versions"]["tensorflow"] == tf.__version__
    assert "numpy" in p.device["framework_versions"]
    assert p.method["path"] == "bare" and p.method["stopping_rule"]["min_samples"] == 50
    assert p.method["warmup"]["excluded"] is True
    assert "max_1min" in p.method["loadavg"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", p.measured_at)
    for pt in p.points:
        summary = pt.extra["summary"]
        assert summary["stopping_outcome"] in ("converged", "time_budget", "sample_budget")
        assert summary["n"] == pt.n
        assert pt.n >= 50 or summary["stopping_outcome"] == "time_budget"
        assert summary["warmup_calls"] >= 5


def _independent_mean(call, x, n=300):
    """Time call(x) directly: 20 warm-up calls, then n timed calls; mean and 95% batch-means half-width."""
    for _ in range(20):
        call(x)
    t = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        call(x)
        t[i] = time.perf_counter() - t0
    means = t.reshape(20, -1).mean(axis=1)
    return t.mean(), 2.093 * means.std(ddof=1) / np.sqrt(20)  # t_{0.975, 19} = 2.093


def _direct_call(kind, keras_file, tflite_file):
    """The same model called without the profiler: Keras eager, or a TFLite interpreter with 1 thread."""
    if kind == "zoo":
        from simulator.profiling.zoo import get_entry

        model = get_entry("tiny_cnn").build("keras", seed=0)
        return "zoo:tiny_cnn", lambda x: model(x).numpy()
    if kind == "keras":
        model = keras.models.load_model(keras_file)
        return str(keras_file), lambda x: model(x).numpy()
    interp = tf.lite.Interpreter(model_path=str(tflite_file), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

    def call(x):
        interp.set_tensor(inp, x)
        interp.invoke()
        return interp.get_tensor(out)

    return str(tflite_file), call


@pytest.mark.parametrize("kind", ["zoo", "keras", "tflite"])
def test_profiled_mean_agrees_with_independent_timing(tmp_path, keras_file, tflite_file, kind):
    """The profiled mean of a bare call equals a hand-rolled timing of the same call.

    Tolerance: 2 x the combined 95% half-widths of the two means (within-run noise), plus the drift
    actually observed between two independent timings taken before and after the profile (a shared
    2-core machine changes load between runs, which no within-run interval covers), plus 5% for the
    profiler's own per-call bookkeeping. Timing noise makes a single failure possible; rerun once.
    """
    target, call = _direct_call(kind, keras_file, tflite_file)
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    failures = []
    for attempt in range(2):
        out = tmp_path / f"p{attempt}.json"
        before, hw_before = _independent_mean(call, x)
        # TFLite threads are per interpreter; TensorFlow's pools are per process, so leave them at default.
        threads = ["--threads", "1"] if kind == "tflite" else []
        assert main(["profile", target, "--output", str(out), "--batch-sizes", "1", "--quiet", *threads,
                     "--min-samples", "300", "--max-seconds", "3", "--rel-ci", "0.02"]) == 0
        after, hw_after = _independent_mean(call, x)
        p = Profile.load(out)
        summary = p.point(1).extra["summary"]
        independent = (before + after) / 2
        hw_ind = np.hypot(hw_before, hw_after) / 2
        tol = 2 * np.hypot(summary["ci95_half_width_s"], hw_ind) + abs(before - after) + 0.05 * independent
        if abs(p.mean(1) - independent) <= tol:
            if kind != "zoo":
                assert p.model["file_sha256"] == hashlib.sha256(Path(target).read_bytes()).hexdigest()
            return
        failures.append((p.mean(1), before, after, tol))
    pytest.fail(f"profiled mean vs independent timing (profile, before, after, tolerance) s: {failures}")


def test_tflite_file_and_thread_sweep(tmp_path, tflite_file):
    out = tmp_path / "p.json"
    assert profile(tflite_file, "--output", out, "--batch-sizes", "1,4", "--threads", "1,2") == 0
    p = Profile.load(out)
    doc = json.loads(out.read_text())
    assert p.model["runtime"] == "tflite" and p.model["format"] == "tflite"
    assert p.model["file_sha256"] == hashlib.sha256(tflite_file.read_bytes()).hexdigest()
    assert p.model["size_bytes"] == tflite_file.stat().st_size
    assert p.points[0].extra["threads"]["num_threads"] == 1
    [sweep] = doc["thread_sweep"]
    assert sweep["threads"]["num_threads"] == 2
    assert [pt["batch_size"] for pt in sweep["points"]] == [1, 4]


def test_tflite_file_refuses_conversion_variants(tmp_path, tflite_file, capsys):
    assert profile(tflite_file, "--output", tmp_path / "p.json", "--variant", "int8-dynamic") == 2
    assert "can only be profiled as it is" in capsys.readouterr().err


def test_savedmodel_directory(tmp_path, keras_file):
    saved = tmp_path / "saved"
    keras.models.load_model(keras_file).export(saved, verbose=False)
    out = tmp_path / "p.json"
    assert profile(saved, "--output", out, "--batch-sizes", "1,2") == 0
    p = Profile.load(out)
    assert p.model["format"] == "savedmodel" and p.model["runtime"] == "tensorflow-savedmodel"
    assert p.model["input_shape"] == [32, 32, 3]


def test_serving_path_records_handoff(tmp_path):
    out = tmp_path / "p.json"
    assert profile("zoo:tiny_cnn", "--output", out, "--batch-sizes", "1,2", "--serving-path") == 0
    p = Profile.load(out)
    assert p.method["path"] == "serving"
    for pt in p.points:
        handoff = np.asarray(pt.extra["handoff_s"])
        assert handoff.size == pt.n and np.all(handoff >= 0)
        assert pt.extra["summary"]["handoff_mean_s"] == pytest.approx(handoff.mean(), rel=1e-6)


@pytest.mark.parametrize("variant", ["xla", "tflite-fp32", "tflite-fp16", "tflite-int8-dynamic",
                                     "tflite-int8-full", "pruned"])
def test_variants_record_size_and_output_difference(tmp_path, variant):
    out = tmp_path / "p.json"
    assert profile("zoo:tiny_cnn", "--output", out, "--batch-sizes", "1", "--variant", variant) == 0
    p = Profile.load(out)
    diff = p.model["output_difference"]
    assert diff["examples"] == 16 and 0.0 <= diff["top1_agreement"] <= 1.0
    assert 0.0 <= diff["max_abs_diff"] < diff["max_abs_reference"]  # close to fp32, but measured
    fp32_tflite = 24_000  # bytes of tiny_cnn as TFLite fp32 (5.8k float32 weights)
    if variant in ("tflite-fp16", "tflite-int8-dynamic", "tflite-int8-full"):
        assert p.model["size_bytes"] < 0.7 * fp32_tflite
        assert diff["max_abs_diff"] > 0  # quantisation changes outputs, and the profile shows it
    if variant == "pruned":
        assert p.model["variant_info"]["sparsity_of_pruned_kernels"] == pytest.approx(0.5, abs=0.01)
        assert p.model["variant_info"]["gzip_bytes"] < p.model["size_bytes"]


def test_unknown_variant_lists_known(tmp_path, capsys):
    assert profile("zoo:tiny_cnn", "--output", tmp_path / "p.json", "--variant", "int4") == 2
    err = capsys.readouterr().err
    assert "int4" in err and "int8-dynamic" in err and "pruned" in err


@pytest.mark.slow
def test_tf_thread_sweep_runs_in_subprocesses(tmp_path):
    # TensorFlow's pools are fixed once it runs an op, so other settings are measured in fresh processes.
    out = tmp_path / "p.json"
    assert profile("zoo:tiny_cnn", "--output", out, "--batch-sizes", "1", "--threads", "1,2") == 0
    doc = json.loads(out.read_text())
    assert doc["thread_sweep"][0]["threads"]["intra_op"] == 2
