"""The harness's prediction side on a synthetic 'real' system whose truth is known.

A single-server FCFS queue with i.i.d. gamma service times and Poisson arrivals is run by the Lindley
recursion; its timestamps play the server's records and its latencies (plus a constant client overhead)
play LoadGen's summary. Calibrating on one such run and predicting another must recover the latencies:
any error beyond sampling noise would be the harness's (effective service, overhead, pairing), not the
host's. Tolerances: 20 000 requests per run give p99 a sampling error of a few percent; 10 % is the
goal of the live validation for mean/p50/p90 and 15 % for p99.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.profiles import Profile
from simulator.validate.harness import ValidationConfig, evaluate
from simulator.validate.loadgen import LiveRun, RunSettings
from simulator.validate.server import ServerRecords
from simulator.validate.summary import parse_summary
from tests.conftest import make_profile_dict
from tests.unit.test_validate_summary import SUMMARY

OVERHEAD_S = 0.0003


def _run(rate: float, n: int, seed: int, tmp: Path, label: str, level: float = 1.0) -> LiveRun:
    rng = np.random.default_rng(seed)
    enq = np.cumsum(rng.exponential(1 / rate, n))
    service = rng.gamma(4.0, 0.0005 * level, n)  # mean 2 ms × the host's level, cv 0.5
    done = np.empty(n)
    free = 0.0
    for i in range(n):
        free = max(free, enq[i]) + service[i]
        done[i] = free
    started = done - service
    rec = ServerRecords(enq, started, done, done, np.ones(n, np.int64), np.ones(n, np.int64), np.zeros(n, np.int64))
    lat_ns = (done - enq + OVERHEAD_S) * 1e9
    text = SUMMARY.replace("Scheduled samples per second : 296.86", f"Scheduled samples per second : {rate:.2f}")
    text = text.replace("Mean latency (ns)               : 1460667",
                        f"Mean latency (ns)               : {lat_ns.mean():.0f}")
    for pct, old in (("50.00", "1224099"), ("90.00", "2181488"), ("95.00", "2667716"), ("97.00", "2991921"),
                     ("99.00", "3530071"), ("99.90", "4561556")):
        text = text.replace(f"{pct} percentile latency (ns)   : {old}",
                            f"{pct} percentile latency (ns)   : {np.quantile(lat_ns, float(pct) / 100):.0f}")
    path = tmp / label / "mlperf_log_summary.txt"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return LiveRun(RunSettings(rate, n / rate), parse_summary(text), path, rec, n / rate, {"end": [0.1, 0.1, 0.1]})


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_calibration_recovers_a_known_queue(tmp_path, rho):
    rate = rho / 0.002
    rng = np.random.default_rng(1)
    profile = Profile.from_dict(make_profile_dict({1: rng.gamma(4.0, 0.0004, 2000)}))  # isolated: 20 % faster
    runs = []
    for r in range(2):
        for kind, seed in (("calibration", 10 + r), ("measurement", 20 + r)):
            label = f"repeat{r + 1}" + ("-calibration" if kind == "calibration" else "")
            runs.append({"kind": kind, "replicas": 1, "utilization": rho, "repeat": r, "label": label,
                         "run": _run(rate, 20_000, seed, tmp_path, label)})
    config = ValidationConfig("zoo:synthetic", replicas=(1,), utilizations=(rho,), repeats=2,
                              sim_requests=50_000, sim_replications=4)
    cases, ctx = evaluate(config, {"profile": profile.to_dict(), "runs": runs}, tmp_path, progress=None)
    rows = {row["metric"]: row for row in cases[0].rows()}
    for metric, limit in (("mean", 10), ("p50", 10), ("p90", 10), ("p99", 15)):
        assert abs(rows[metric]["calibrated_error_pct"]) < limit, (metric, rows[metric])
        # the prediction states its own simulation uncertainty: 2 × 4 replications of 50,000 requests
        assert 0 < rows[metric]["calibrated_sim_ci_pct"] < 5, (metric, rows[metric])
        assert abs(rows[metric]["replay_error_pct"]) < limit, (metric, rows[metric])
        # the other measured run, in its measured order: another realisation of the same queue
        assert abs(rows[metric]["neighbour_error_pct"]) < limit, (metric, rows[metric])
        assert abs(rows[metric]["ordered_error_pct"]) < limit, (metric, rows[metric])
    # the isolated profile is 20 % too fast: it must predict too low
    assert rows["mean"]["isolated_error_pct"] < -15
    point = ctx["calibration_points"][1][0]
    assert point["overhead_ms"] == pytest.approx(OVERHEAD_S * 1e3, rel=0.02)
    assert point["mean_ms"] == pytest.approx(2.0, rel=0.05)


def test_target_rate_solves_a_power_law_and_falls_back_to_proportional():
    from simulator.validate.harness import target_rate

    def busy(r):  # effective service shrinking with load: busy = k * rate^0.7
        return 0.01 * r ** 0.7

    r1 = 300.0
    r2 = r1 * 0.85 / busy(r1)
    got = target_rate([(r1, busy(r1)), (r2, busy(r2))], 0.85)
    assert busy(got) == pytest.approx(0.85, rel=1e-9)
    assert target_rate([(r1, 0.5)], 0.85) == pytest.approx(r1 * 0.85 / 0.5)           # one run
    assert target_rate([(r1, 0.5), (r1, 0.6)], 0.85) == pytest.approx(r1 * 0.85 / 0.6)  # no rate change
    # two noisy runs that suggest a near-flat response cannot push the rate beyond 1.2x the proportional one
    far = target_rate([(300.0, 0.60), (400.0, 0.61)], 0.85)
    assert far == pytest.approx(400.0 * 0.85 / 0.61 * 1.2)


def test_kept_campaign_predicts_the_same_again(tmp_path):
    """--keep-records / --reevaluate: a campaign saved and loaded back (server records, LoadGen summaries,
    settings, the run index) gives the very same predictions, bit for bit (same seeds)."""
    from simulator.validate.harness import load_live, save_index, save_run

    rng = np.random.default_rng(2)
    profile = Profile.from_dict(make_profile_dict({1: rng.gamma(4.0, 0.0004, 500)}))
    profile.save(tmp_path / "profile.json")
    runs = []
    for kind, seed, label in (("calibration", 3, "repeat1-calibration"), ("measurement", 4, "repeat1")):
        run = _run(300.0, 4000, seed, tmp_path / "raw" / "C1_b1" / "rho0.6", label)
        save_run(run, run.summary_path.parent)
        runs.append({"kind": kind, "replicas": 1, "utilization": 0.6, "repeat": 0, "label": label, "run": run})
    config = ValidationConfig("zoo:synthetic", replicas=(1,), utilizations=(0.6,), repeats=1, ordered=False,
                              sim_requests=5000, sim_replications=2, keep_records=True)
    save_index(tmp_path, config, runs)
    loaded_config, live = load_live(tmp_path)
    assert loaded_config == config
    assert [r["label"] for r in live["runs"]] == ["repeat1-calibration", "repeat1"]
    np.testing.assert_array_equal(live["runs"][1]["run"].records.done, runs[1]["run"].records.done)
    a, _ = evaluate(config, {"profile": profile.to_dict(), "runs": runs}, tmp_path / "a", progress=None)
    b, _ = evaluate(loaded_config, live, tmp_path / "b", progress=None)
    assert a[0].rows() == b[0].rows()


def test_a_kept_campaign_says_where_and_when_it_was_measured(tmp_path):
    """raw/campaign.json keeps the live run's command, times, machine and software; a report predicted
    again from the campaign states them beside its own (re-evaluation) header."""
    from simulator.validate.harness import Case, load_campaign, save_campaign
    from simulator.validate.report import write_report

    assert load_campaign(tmp_path) == {}  # kept before the file existed
    context = {"command": "simulator validate zoo:tiny_cnn --keep-records", "started_at": "2026-11-28T03:07:12Z",
               "finished_at": "2026-11-28T03:45:00Z", "machine": "AMD EPYC, 2 cores", "loadavg_before": [0.2, 0.7, 0.9],
               "method": "not kept", "calibration_points": {}}
    save_campaign(tmp_path, context)
    measured = load_campaign(tmp_path)
    assert measured == {k: v for k, v in context.items() if k not in ("method", "calibration_points")}
    case = Case(replicas=1, batch_size=1, utilization=0.5, measured=[{"mean": 1.0, "p50": 1.0, "p90": 2.0,
                                                                        "p99": 3.0}], arrival_rates=[10.0])
    (tmp_path / "report").mkdir()
    paths = write_report([case], {"mode": "re-evaluated", "measured": measured}, tmp_path / "report")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert ("- Runs measured with: `simulator validate zoo:tiny_cnn --keep-records`\n"
            "- Started (UTC): 2026-11-28T03:07:12Z\n") in md
    (tmp_path / "raw" / "campaign.json").write_text("[1, 2]")  # not an object: ignored, not a traceback
    assert load_campaign(tmp_path) == {}


def test_reevaluate_refuses_a_folder_without_kept_records(tmp_path):
    from simulator.errors import InputError
    from simulator.validate.harness import load_live

    with pytest.raises(InputError, match="keep-records"):
        load_live(tmp_path)


def test_a_replication_is_as_long_as_the_measured_run_by_default():
    """sim_requests 0 (the default): each replication has the measured run's requests (rate × duration),
    so that the mean of the replications' percentiles estimates the mean of the real runs' percentiles;
    a summary measured elsewhere says its duration (LoadGen's min_duration)."""
    from simulator.validate.harness import _run_length

    config = ValidationConfig("zoo:synthetic")
    assert config.sim_requests == 0 and config.sim_requests_for(345.2) == round(345.2 * 20.0)
    assert config.sim_requests_for(10.0) == 1000  # never fewer than 1,000
    assert ValidationConfig("zoo:synthetic", sim_requests=5000).sim_requests_for(345.2) == 5000
    summary = parse_summary(SUMMARY)
    assert summary.duration_s == 2.0 and _run_length(summary) == 1000  # 297 req/s × 2 s, raised to the floor
    longer = parse_summary(SUMMARY.replace("min_duration (ms): 2000", "min_duration (ms): 20000"))
    assert _run_length(longer) == round(296.86 * 20.0)
    with pytest.raises(InputError, match="sim_requests must be 0"):
        ValidationConfig("zoo:synthetic", sim_requests=999)


def test_the_second_targeting_run_goes_where_the_first_points():
    """On a system whose busy fraction is 0.004·rate^0.85 (effective service shrinking with the load), the
    first run at the nominal rate overshoots; the second must run at the rate the first points to (it
    used to run at the nominal rate again, so two runs a noise apart fitted a power law to noise: loads
    aimed at 0.5 ran at 0.63 busy), and the two then solve the law exactly. A run that measured nothing
    (busy NaN) leaves the rate as it was."""
    from simulator.validate.harness import aim_rate

    def busy(rate: float) -> float:
        return 0.004 * rate**0.85

    calls = []

    def run_at(rate: float, step: int) -> tuple[float, float]:
        calls.append(rate)
        return rate, busy(rate)

    got = aim_rate(run_at, 400.0, 0.5)
    assert calls[0] == 400.0 and calls[1] == pytest.approx(400.0 * 0.5 / busy(400.0))
    assert busy(got) == pytest.approx(0.5, rel=1e-9)
    assert aim_rate(lambda rate, step: (rate, float("nan")), 300.0, 0.5) == 300.0


def test_predicted_run_sd_is_the_replications_sd():
    """A prediction's replications are runs as long as the real ones: their sd (recovered from the
    t-interval the engines report) is the model's run-to-run sd, and with k real runs an exact prediction
    meets the limit with the normal probability at sd / √k."""
    import math

    from simulator.montecarlo import t_interval
    from simulator.result import Result
    from simulator.validate.compare import chance_within_limit
    from simulator.validate.harness import Case

    def result(values_ms):
        lat, ci = {}, {}
        for metric, scale in (("mean", 1.0), ("p50", 0.8), ("p90", 2.0), ("p99", 4.0)):
            m, lo, hi = t_interval(np.asarray(values_ms) * scale)
            lat[metric], ci[metric] = m, [lo, hi]
        return Result(engine="x", arrival_rate=1.0, requests_simulated=0, replications=len(values_ms),
                      wall_seconds=0.0, latency_ms=lat, latency_ms_ci95=ci, throughput_rps=None, utilization=None,
                      cache_hit_ratio=None, drop_rate=None, mean_batch_size=None, stable=True)

    rng = np.random.default_rng(1)
    a, b = rng.normal(10.0, 1.0, 200), rng.normal(10.0, 2.0, 200)
    case = Case(replicas=1, batch_size=1, utilization=0.5,
                measured=[{"mean": 10.0, "p50": 8.0, "p90": 20.0, "p99": 40.0}] * 4, arrival_rates=[1.0] * 4,
                predictions={"m": [result(a), result(b)]})
    sd_a, sd_b = (x.std(ddof=1) / x.mean() * 100 for x in (a, b))
    assert case.predicted_run_sd_pct("m", "mean") == pytest.approx(math.sqrt((sd_a**2 + sd_b**2) / 2), rel=1e-9)
    assert case.predicted_run_sd_pct("m", "p99") == pytest.approx(case.predicted_run_sd_pct("m", "mean"))
    rows = {r["metric"]: r for r in case.rows()}
    assert rows["p90"]["m_exact_chance"] == pytest.approx(
        chance_within_limit("p90", rows["p90"]["m_run_sd_pct"] / 2))  # 4 runs: sd / 2
    assert rows["mean"]["measured_run_sd_pct"] == 0.0
    # one replication has no interval: no run-to-run sd, no chance
    single = Case(replicas=1, batch_size=1, utilization=0.5, measured=[{"mean": 1.0}] * 2, arrival_rates=[1.0] * 2,
                  predictions={"m": [result([10.0])]})
    assert single.predicted_run_sd_pct("m", "mean") is None
    assert {r["metric"]: r for r in single.rows()}["mean"]["m_exact_chance"] is None



def test_the_printed_under_load_profile_follows_the_calibration_runs_length():
    """The measured-order profile is the one to use only when the calibration runs were as long as the
    measured ones (slow stretches last seconds; a 5-s run cannot hold them)."""
    from simulator.commands.validate_cmd import _profile_lines
    from simulator.validate.harness import recommended_variant

    paths = {"under_load_profiles": {1: "windows_C1.json"}, "under_load_ordered_profiles": {1: "ordered_C1.json"}}
    long_cal, short_cal = (_profile_lines({"recommended_variant": recommended_variant(
        ValidationConfig("zoo:tiny_cnn", calibration_s=cal, duration_s=20.0)), **paths}) for cal in (60.0, 5.0))
    assert long_cal[0].endswith("ordered_C1.json") and "measured order" in long_cal[0]
    assert short_cal[0].endswith("windows_C1.json") and "drift windows" in short_cal[0]
    assert long_cal[1].endswith("windows_C1.json") and short_cal[1].endswith("ordered_C1.json")
    assert _profile_lines({}) == []  # a comparison of LoadGen summaries has no under-load profiles


def test_the_host_level_band_and_the_level_the_runs_had(tmp_path):
    """Calibration runs whose host level varies (sd 4 %), then measured runs on a host 10 % slower than all
    of them: the recommended profile predicts too low (ρ 0.75 → 0.83 by the level alone), the band from
    the calibration runs' sd (2 sd ≈ 8 %) says how far it can move, and the same profile at each measured
    run's own level (a diagnostic, known only afterwards) is within the goal's limits again."""
    from simulator.validate.report import write_report

    rate, rng = 375.0, np.random.default_rng(8)
    runs, levels = [], {}
    for u, r in ((0.6, 300.0), (0.75, rate)):
        for k in range(3):
            label = f"rho{u}/repeat{k + 1}"
            levels.setdefault(u, []).append(float(np.exp(rng.normal(0.0, 0.04))))
            runs.append({"kind": "calibration", "replicas": 1, "utilization": u, "repeat": k,
                         "label": label + "-calibration",
                         "run": _run(r, 15_000, 40 + 10 * k + int(u * 10), tmp_path, label + "-calibration",
                                     level=levels[u][-1])})
            runs.append({"kind": "measurement", "replicas": 1, "utilization": u, "repeat": k, "label": label,
                         "run": _run(r, 15_000, 70 + 10 * k + int(u * 10), tmp_path, label, level=1.10)})
    config = ValidationConfig("zoo:synthetic", replicas=(1,), utilizations=(0.6, 0.75), repeats=3,
                              calibration_s=5.0, sim_requests=15_000, sim_replications=6)
    profile = Profile.from_dict(make_profile_dict({1: np.random.default_rng(1).gamma(4.0, 0.0005, 2000)}))
    cases, ctx = evaluate(config, {"profile": profile.to_dict(), "runs": runs}, tmp_path / "out", progress=None)
    assert ctx["recommended_variant"] == "under_load"
    # the client overhead by load and statistic: LoadGen's figures are the sojourns' plus 0.3 ms exactly
    under = Profile.load(ctx["under_load_profiles"][1]).under_load
    assert len(under.overhead_rates) == 2 and under.overhead_rates[0] < under.overhead_rates[1]
    np.testing.assert_allclose(np.asarray(under.overhead_rows), OVERHEAD_S, atol=1e-8)
    rows = {r["metric"]: r for r in cases[1].rows()}  # ρ 0.75
    # the line through two loads passes through each load's calibration mean; sampling noise ~1 % per run
    assert rows["mean"]["measured_level_pct"] == pytest.approx((1.10 / np.mean(levels[0.75]) - 1) * 100, abs=2.0)
    assert rows["mean"]["under_load_error_pct"] < -15
    for metric, limit in (("mean", 10), ("p50", 10), ("p90", 10), ("p99", 15)):
        assert abs(rows[metric]["at_level_error_pct"]) < limit, rows[metric]
        r = rows[metric]
        assert r["host_band_low_ms"] < r["under_load_ms"] < r["host_band_high_ms"]
        assert 1.0 < r["host_band_sd_pct"] < 10.0
    assert rows["mean"]["host_band_covers"] is False  # 10 % is beyond 2 sd of these calibration runs
    paths = write_report(cases, ctx, tmp_path / "out")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "## How sure: the host-level band" in md and "Measured mean inside the band:" in md
    assert "host_band_low_ms" in paths["csv"].read_text(encoding="utf-8").splitlines()[0]


def test_calibration_runs_are_as_long_as_the_measured_ones_by_default():
    """The default that predicted best (M, N): --calibration-s follows --duration-s unless given."""
    import argparse

    from simulator.commands.validate_cmd import _calibration_s
    from simulator.validate.harness import recommended_variant

    assert ValidationConfig("zoo:tiny_cnn", duration_s=7.0).calibration_s == 7.0
    assert ValidationConfig("zoo:tiny_cnn", duration_s=7.0, calibration_s=0.0).calibration_s == 0.0
    assert recommended_variant(ValidationConfig("zoo:tiny_cnn")) == "under_load_ordered"
    assert _calibration_s(argparse.Namespace(calibration_s=None, duration_s=30.0)) == 30.0
    assert _calibration_s(argparse.Namespace(calibration_s=5.0, duration_s=30.0)) == 5.0
