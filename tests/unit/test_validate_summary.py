"""LoadGen summary parsing (``mlperf_log_summary.txt``, LoadGen 6.0.17 layout)."""

from __future__ import annotations

import pytest

from simulator.errors import InputError
from simulator.validate.summary import parse_summary, read_summary

# A real summary written by mlcommons-loadgen 6.0.17 (Server scenario, 300 req/s target).
SUMMARY = """\
================================================
MLPerf Results Summary
================================================
SUT name : PySUT
Scenario : Server
Mode     : PerformanceOnly
Completed samples per second    : 296.69
Result is : VALID
  Performance constraints satisfied : Yes
  Min duration satisfied : Yes
  Min queries satisfied : Yes
  Early stopping satisfied: Yes
Early Stopping Result:
 * Run successful.

================================================
Additional Stats
================================================
Scheduled samples per second : 296.86
Min latency (ns)                : 1109784
Max latency (ns)                : 4561556
Mean latency (ns)               : 1460667
50.00 percentile latency (ns)   : 1224099
90.00 percentile latency (ns)   : 2181488
95.00 percentile latency (ns)   : 2667716
97.00 percentile latency (ns)   : 2991921
99.00 percentile latency (ns)   : 3530071
99.90 percentile latency (ns)   : 4561556

================================================
Test Parameters Used
================================================
samples_per_query : 1
target_qps : 300
target_latency (ns): 100000000
max_async_queries : 0
min_duration (ms): 2000
max_duration (ms): 4000
min_query_count : 100

No warnings encountered during test.

No errors encountered during test.
"""


def test_parses_every_latency_figure():
    s = parse_summary(SUMMARY)
    assert s.scenario == "Server" and s.mode == "PerformanceOnly" and s.validity == "VALID"
    assert s.completed_qps == pytest.approx(296.69)
    assert s.scheduled_qps == pytest.approx(296.86)
    assert s.arrival_rate == pytest.approx(296.86)
    assert s.target_qps == 300
    assert (s.min_ns, s.max_ns, s.mean_ns) == (1109784, 4561556, 1460667)
    assert s.percentiles_ns == {0.5: 1224099, 0.9: 2181488, 0.95: 2667716, 0.97: 2991921, 0.99: 3530071,
                                0.999: 4561556}


def test_latency_ms_uses_result_keys():
    lat = parse_summary(SUMMARY).latency_ms()
    assert list(lat) == ["mean", "p50", "p90", "p95", "p97", "p99", "p999"]
    assert lat["mean"] == pytest.approx(1.460667)
    assert lat["p99"] == pytest.approx(3.530071)
    assert lat["p999"] == pytest.approx(4.561556)


def test_arrival_rate_falls_back_to_completed():
    text = SUMMARY.replace("Scheduled samples per second : 296.86\n", "")
    s = parse_summary(text)
    assert s.scheduled_qps is None
    assert s.arrival_rate == pytest.approx(296.69)


def test_refuses_other_scenarios():
    with pytest.raises(InputError, match=r"scenario 'SingleStream'.*only Server"):
        parse_summary(SUMMARY.replace("Scenario : Server", "Scenario : SingleStream"), origin="x.txt")


@pytest.mark.parametrize("text, message", [
    ("hello world\n", "not an mlperf_log_summary"),
    (SUMMARY.replace("Mean latency (ns)               : 1460667\n", ""), "no 'Mean latency \\(ns\\)' line"),
    (SUMMARY.replace(": 1460667", ": fast"), "must be a number, got 'fast'"),
    (SUMMARY.replace(": 1460667", ": nan"), "finite number >= 0, got 'nan'"),
    (SUMMARY.replace(": 1460667", ": 0"), "mean latency must be > 0"),
    ("\n".join(line for line in SUMMARY.splitlines() if "percentile" not in line), "no 'NN.NN percentile"),
    ("\n".join(line for line in SUMMARY.splitlines() if "samples per second" not in line), "arrival rate is unknown"),
])
def test_malformed_summaries_name_the_problem(text, message):
    with pytest.raises(InputError, match=message):
        parse_summary(text, origin="run/mlperf_log_summary.txt")


def test_read_summary_names_the_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_summary(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="is a directory"):
        read_summary(tmp_path)
    path = tmp_path / "mlperf_log_summary.txt"
    path.write_text(SUMMARY)
    assert read_summary(path).mean_ns == 1460667
