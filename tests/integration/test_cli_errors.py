"""Bad input on the command line: one line on stderr naming the field, exit status 2, no traceback,
no output file, and no simulation started (each case returns in well under a second)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from simulator.cli import main
from tests.conftest import make_profile_dict

S = ["simulate"]
SVC = ["--service-time-ms", "5"]


@pytest.fixture
def files(tmp_path):
    good = make_profile_dict({1: np.full(10, 0.004), 2: np.full(10, 0.006)})
    paths = {}

    def put(name, text):
        p = tmp_path / name
        p.write_text(text)
        paths[name] = str(p)

    put("corrupt.json", "{oops")
    put("empty.json", "")
    nan_doc = json.dumps(good).replace("0.004", "NaN", 1)
    put("nan.json", nan_doc)
    future = dict(good, schema_version="9.0")
    put("future.json", json.dumps(future))
    nofield = {k: v for k, v in good.items() if k != "device"}
    put("nofield.json", json.dumps(nofield))
    put("good.json", json.dumps(good))
    put("unsorted.csv", "0.5\n0.2\n")
    put("negative.csv", "-1\n0.2\n")
    put("bad.toml", "[arrivals\nrate=1")
    put("unknown.toml", "[arrivals]\nrate = 1\nspeed = 2\n[service]\nservice_time_ms = 1\n")
    put("notcsv.csv", "batch_size,foo\n1,2\n")
    put("nonnumeric.csv", "service_time_s\nabc\n")
    put("notjson.json", "not json at all")
    paths["out"] = str(tmp_path / "out")
    return paths


CASES = [
    # (argv, substring expected in the one-line error)
    (["validate", "--reevaluate", "/nonexistent/campaign"], "--keep-records"),
    (["validate", "zoo:tiny_cnn", "--reevaluate", "/nonexistent/campaign"], "takes no MODEL"),
    (["validate", "zoo:tiny_cnn", "--sim-requests", "500"], "sim_requests must be 0"),
    (S + ["--arrival-rate", "-5"] + SVC, "arrival_rate"),
    (S + ["--arrival-rate", "nan"] + SVC, "arrival_rate"),
    (S + ["--arrival-rate", "inf"] + SVC, "arrival_rate"),
    (S + ["--arrival-rate", "0"] + SVC, "arrival_rate"),
    (S + ["--arrival-rate", "abc"] + SVC, "arrival_rate"),
    (S + ["--arrival-rate", "10:5:1"] + SVC, "stop must be >= start"),
    (S + ["--arrival-rate", "1:10:0"] + SVC, "step"),
    (S + ["--arrival-rate", "1:10"] + SVC, "START:STOP:STEP"),
    (S + ["--arrival-rate", "250"] + SVC, "rho = 1.25"),
    (S + ["--arrival-rate", "10", "--replicas", "0"] + SVC, "replicas"),
    (S + ["--arrival-rate", "10", "--replicas", "2.5"] + SVC, "--replicas"),
    (S + ["--arrival-rate", "10", "--service-time-ms", "-1"], "service_time"),
    (S + ["--arrival-rate", "10", "--service-time-ms", "nan"], "service_time"),
    (S + ["--arrival-rate", "10", "--service-time-ms", "5", "--service-dist", "gamma", "--service-cv", "-1"],
     "service_cv"),
    (S + ["--arrival-rate", "10", "--service-time-ms", "5", "--service-cv", "0.5"], "service_cv must be 1"),
    (S + ["--arrival-rate", "10", "--service-cv", "0.5"], "need --service-time-ms"),
    (S + ["--arrival-rate", "10", "--batch-timeout-ms", "5"] + SVC, "needs batch_size > 1"),
    (S + ["--arrival-rate", "10", "--batch-size", "0"] + SVC, "batch_size"),
    (S + ["--arrival-rate", "10", "--batch-size", "4"] + SVC, "batch_time"),
    (S + ["--arrival-rate", "10", "--cache", "lru"] + SVC, "POLICY:CAPACITY"),
    (S + ["--arrival-rate", "10", "--cache", "arc:100"] + SVC, "cache_policy must be one of lru, lfu, fifo"),
    (S + ["--arrival-rate", "10", "--cache", "lru:-1"] + SVC, "cache_capacity"),
    (S + ["--arrival-rate", "10", "--cache", "lru:x"] + SVC, "cache capacity must be an integer"),
    (S + ["--arrival-rate", "10", "--cache", "lru:500", "--keys", "100"] + SVC, "cache_capacity must be <= keys"),
    (S + ["--arrival-rate", "10", "--cache", "lru:10", "--zipf", "-1"] + SVC, "zipf_alpha"),
    (S + ["--arrival-rate", "10", "--zipf", "1.0"] + SVC, "need --cache"),
    (S + ["--arrival-rate", "10", "--queue-limit", "-1"] + SVC, "queue_limit"),
    (S + ["--arrival-rate", "10", "--request-timeout-ms", "0"] + SVC, "request_timeout"),
    (S + ["--arrival-rate", "10", "--arrival-process", "weibull"] + SVC, "arrival_process must be one of"),
    (S + ["--arrival-rate", "10", "--arrival-process", "gamma"] + SVC, "gamma:CV"),
    (S + ["--arrival-rate", "10", "--arrival-process", "gamma:abc"] + SVC, "must be a number"),
    (S + ["--arrival-rate", "10", "--arrival-process", "gamma:-2"] + SVC, "arrival_cv"),
    (S + ["--arrival-rate", "10", "--arrival-process", "diurnal:1.5"] + SVC, "amplitude"),
    (S + ["--arrival-rate", "10", "--arrival-process", "trace:/nonexistent/t.csv"] + SVC, "does not exist"),
    (S + ["--arrival-rate", "10", "--arrival-process", "trace:{unsorted.csv}"] + SVC, "non-decreasing"),
    (S + ["--arrival-rate", "10", "--arrival-process", "trace:{negative.csv}"] + SVC, ">= 0"),
    (S + ["--arrival-rate", "10", "--profile", "/nonexistent/p.json"], "does not exist"),
    (S + ["--arrival-rate", "10", "--profile", "{corrupt.json}"], "not valid JSON"),
    (S + ["--arrival-rate", "10", "--profile", "{empty.json}"], "is empty"),
    (S + ["--arrival-rate", "10", "--profile", "{nan.json}"], "not valid JSON"),
    (S + ["--arrival-rate", "10", "--profile", "{future.json}"], "schema_version 9.0 is not supported"),
    (S + ["--arrival-rate", "10", "--profile", "{nofield.json}"], "missing required field 'device'"),
    (S + ["--arrival-rate", "10", "--profile", "{good.json}"] + SVC, "not both"),
    (S + ["--arrival-rate", "10", "--scenario", "/nonexistent/s.toml"], "does not exist"),
    (S + ["--arrival-rate", "10", "--scenario", "{bad.toml}"], "not valid TOML"),
    (S + ["--arrival-rate", "10", "--scenario", "{unknown.toml}"], "unknown key 'speed'"),
    (S + ["--arrival-rate", "10", "--requests", "5"] + SVC, "requests"),
    (S + ["--arrival-rate", "10", "--replications", "0"] + SVC, "replications"),
    (S + ["--arrival-rate", "10", "--seed", "-1"] + SVC, "seed"),
    (S + ["--arrival-rate", "10", "--plot", "{out}.txt"] + SVC, "plot file must end in .png or .svg"),
    (S + ["--arrival-rate", "10", "--slo", "p99=abc"] + SVC, "slo"),
    (S + ["--arrival-rate", "10", "--slo", "q99=50ms"] + SVC, "slo must look like p99=50ms"),
    (S + ["--arrival-rate", "10", "--slo", "p0=50ms"] + SVC, "slo percentile"),
    (S + ["--arrival-rate", "10", "--engine", "warp"] + SVC, "--engine"),
    (S + ["--arrival-rate", "10", "--engine", "analytic", "--arrival-process", "mmpp"] + SVC, "closed form"),
    (S + ["--arrival-rate", "10", "--batch-time-ms", "4,1"] + SVC, "not both"),
    (S + ["--arrival-rate", "10", "--batch-size", "4", "--batch-time-ms", "4"], "two numbers A,B"),
    (["nonsense-command"], "invalid choice"),
]


def _fill(argv, files):
    out = []
    for a in argv:
        for name, path in files.items():
            a = a.replace("{" + name + "}", path)
        out.append(a)
    return out


@pytest.mark.parametrize("argv, expected", CASES, ids=[" ".join(c[0][1:4]) + f"#{i}" for i, c in enumerate(CASES)])
def test_cli_rejects_bad_input(argv, expected, files, capsys, tmp_path):
    argv = _fill(argv, files)
    before = set(tmp_path.iterdir())
    t0 = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert expected in err, err
    assert set(tmp_path.iterdir()) == before  # no output file created
    assert elapsed < 5.0  # rejected before any simulation work


def test_count_of_cases():
    assert len(CASES) >= 40


def test_subprocess_exit_status_and_no_traceback():
    """End to end through the console script entry point: exit 2, one line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "simulator", "simulate", "--arrival-rate", "nan",
                           "--service-time-ms", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "arrival_rate must be a finite number > 0, got nan" in proc.stderr
