"""The host's level: ``Service.host_level`` scales service times, a profile's ``under_load.host_level`` says
how much its host moved between runs, ``simulate`` prints the band it spans and ``plan --host-margin``
judges an SLO on a slow host.

Scaling is exact (same seed, same variates), so its tolerances are floating-point ones (1e-9 relative).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.cli import main
from simulator.errors import InputError
from simulator.profiles import Profile
from simulator.scenario import Arrivals, Run, Scenario, Service, load_scenario
from simulator.simulate import host_level_band, make_service_model, simulate
from tests.conftest import make_profile_dict

LEVEL = {"sd": 0.03, "run_s": 20.0, "runs": 9}


def _profile(tmp_path, name: str = "p.json", scale: float = 1.0, level: dict | None = None) -> str:
    rng = np.random.default_rng(11)
    doc = make_profile_dict({1: rng.gamma(4.0, 0.0005, 800) * scale})
    if level is not None:
        doc["schema_version"] = "1.1"
        doc["under_load"] = {"host_level": level}
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def _scenario(profile: str, rate: float = 400.0, level: float = 1.0, engine_requests: int = 5000) -> Scenario:
    return Scenario(arrivals=Arrivals(rate=rate), service=Service(profile=profile, host_level=level),
                    run=Run(requests=engine_requests, replications=3, seed=4))


@pytest.mark.parametrize("engine", ["fast", "simpy"])
def test_a_host_level_is_the_profile_with_every_sample_scaled(tmp_path, engine):
    """Service times × 1.1 through host_level give the very latencies of a profile whose samples are × 1.1."""
    scaled = simulate(_scenario(_profile(tmp_path, "scaled.json", scale=1.1)), engine=engine)
    levelled = simulate(_scenario(_profile(tmp_path), level=1.1), engine=engine)
    for key in ("mean", "p50", "p99"):
        assert levelled.latency_ms[key] == pytest.approx(scaled.latency_ms[key], rel=1e-9)
    assert any("host level 1.1" in n for n in levelled.notes)


def test_a_parametric_service_scales_too():
    """M/M/1 at host level 1.2 is M/M/1 with a 20 % longer mean service: the analytic engine's exact figure."""
    a = simulate(Scenario(arrivals=Arrivals(rate=300.0), service=Service(mean_s=0.002, host_level=1.2)),
                 engine="analytic")
    b = simulate(Scenario(arrivals=Arrivals(rate=300.0), service=Service(mean_s=0.0024)), engine="analytic")
    assert a.latency_ms["mean"] == pytest.approx(b.latency_ms["mean"], rel=1e-12)
    assert a.latency_ms["mean"] == pytest.approx(1 / (1 / 0.0024 - 300.0) * 1e3, rel=1e-12)


@pytest.mark.parametrize("value", [0.0, -1.0, 20.0, float("nan"), "1.1", True])
def test_a_bad_host_level_is_refused_naming_the_field(value):
    with pytest.raises(InputError, match=r"host_level must be a number from 0\.1 to 10"):
        Service(mean_s=0.002, host_level=value)


def test_a_scenario_file_sets_the_host_level(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[arrivals]\nrate = 100\n[service]\nservice_time_ms = 2\nhost_level = 1.05\n')
    assert load_scenario(path).service.host_level == 1.05


def test_the_profile_says_how_much_its_host_moved(tmp_path):
    prof = Profile.load(_profile(tmp_path, level=LEVEL))
    under = prof.under_load
    assert (under.host_level_sd, under.host_level_run_s, under.host_level_runs) == (0.03, 20.0, 9)
    assert Profile.from_dict(prof.to_dict()).under_load == under  # round trip
    # it is a statement, not a law: the service model is the profile's own
    plain = make_service_model(_scenario(_profile(tmp_path, "plain.json")))
    np.testing.assert_array_equal(make_service_model(_scenario(str(prof.origin))).means, plain.means)


def test_the_band_spans_the_slow_and_the_fast_host(tmp_path):
    """At ρ ≈ 0.8 a host 6 % slower is ρ ≈ 0.85: the band is wide and ordered fast < nominal < slow."""
    path = _profile(tmp_path, level=LEVEL)
    sc = _scenario(path)
    band = host_level_band(sc)
    nominal = simulate(sc)
    assert band.levels == pytest.approx((0.94, 1.06))
    for key in ("mean", "p99"):
        assert band.fast.latency_ms[key] < nominal.latency_ms[key] < band.slow.latency_ms[key]
    # the same variates at a level: the slow end is exactly the scenario at host level 1.06
    assert band.slow.latency_ms["p99"] == pytest.approx(simulate(_scenario(path, level=1.06)).latency_ms["p99"],
                                                        rel=1e-9)
    assert host_level_band(_scenario(_profile(tmp_path, "plain.json"))) is None  # no level measured: no band


def test_simulate_prints_the_band_and_its_json(tmp_path, capsys):
    path = _profile(tmp_path, level=LEVEL)
    args = ["simulate", "--profile", path, "--arrival-rate", "400", "--requests", "5000", "--replications", "3",
            "--slo", "p99=500ms"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "host level: the profile's host moved by sd 3.0% between 20-s runs (9 runs)" in text
    assert "x 0.940 .. x 1.060" in text and "on the slow host: MEETS" in text
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["host_band"]["levels"] == pytest.approx([0.94, 1.06])
    assert doc["host_band"]["slow"]["latency_ms"]["p99"] > doc["latency_ms"]["p99"]
    assert main([*args, "--json", "--no-host-band"]) == 0
    assert "host_band" not in json.loads(capsys.readouterr().out)


def test_simulate_says_when_the_slow_host_cannot_carry_the_load(tmp_path, capsys):
    """ρ = 0.96 at the nominal level: 6 % slower is past capacity."""
    path = _profile(tmp_path, level=LEVEL)
    assert main(["simulate", "--profile", path, "--arrival-rate", "480", "--requests", "5000",
                 "--replications", "3"]) == 0
    assert "UNSTABLE at x 1.060" in capsys.readouterr().out


def test_simulate_refuses_a_bad_host_level_flag(tmp_path, capsys):
    assert main(["simulate", "--arrival-rate", "100", "--service-time-ms", "2", "--host-level", "0"]) == 2
    assert "host_level must be a number from 0.1 to 10" in capsys.readouterr().err


def _plan(path: str, capsys, *extra: str) -> dict:
    rc = main(["plan", "--profile", path, "--arrival-rate", "1500", "--slo", "p99=8ms", "--json",
               "--price-per-hour", "0.1", "--hardware-name", "cpu", "--max-replicas", "8", "--requests", "8000",
               "--replications", "4", *extra])
    assert rc == 0
    return json.loads(capsys.readouterr().out)


def test_plan_judges_the_slo_on_a_slow_host(tmp_path, capsys):
    """With sd 10 % and a margin of 2 sd every service takes 1.2× as long: more replicas (each one's load
    is capped by its capacity 1/E[S]·1/1.2), and the recommendation's simulate command says the level."""
    path = _profile(tmp_path, level={"sd": 0.10, "run_s": 20.0, "runs": 9})
    plain = _plan(path, capsys)
    margin = _plan(path, capsys, "--host-margin", "2")
    assert plain["search"]["host_margin"] is None
    hm = margin["search"]["host_margin"]
    assert hm["levels"]["cpu/fp32"]["level"] == pytest.approx(1.2) and hm["not_measured"] == []
    assert margin["recommendation"]["replicas"] > plain["recommendation"]["replicas"]
    args = margin["recommendation"]["simulate_args"]
    assert args[args.index("--host-level") + 1] == "1.2"
    assert "--host-level" not in plain["recommendation"]["simulate_args"]


def test_plan_lists_profiles_that_measured_no_host_level(tmp_path, capsys):
    doc = _plan(_profile(tmp_path), capsys, "--host-margin", "2")
    assert doc["search"]["host_margin"] == {"z": 2.0, "levels": {}, "not_measured": ["cpu/fp32"]}


@pytest.mark.parametrize(("flag", "message"), [(["--host-margin", "-1"], "host_margin must be a number"),
                                               (["--host-level", "1.1"], "plan takes --host-margin")])
def test_plan_refuses_a_bad_margin(tmp_path, capsys, flag, message):
    assert main(["plan", "--profile", _profile(tmp_path), "--arrival-rate", "100", "--slo", "p99=8ms",
                 "--price-per-hour", "0.1", *flag]) == 2
    assert message in capsys.readouterr().err


def test_the_budget_report_resimulates_a_spec_at_the_level_the_plan_judged_it(tmp_path):
    """A plan made with --host-margin: the report's own simulations of its rows carry --host-level."""
    from simulator.planner import load_catalog
    from simulator.profiles import profiles_root
    from simulator.report.resimulate import _Services

    path = profiles_root() / "catalog.toml"
    spec = load_catalog(path).specs("resnet50")[0]
    plan = {"catalog": {"path": str(path)}, "provenance": [{"model": "resnet50"}],
            "search": {"host_margin": {"z": 2.0, "levels": {f"{spec.hardware}/{spec.variant}": {"level": 1.08}},
                                       "not_measured": []}}}
    flags = _Services(plan).flags(spec.hardware, spec.variant)
    assert flags[-2:] == ["--host-level", "1.08"]
    assert "--host-level" not in _Services(plan | {"search": {}}).flags(spec.hardware, spec.variant)


# -- the client-side overhead by load and statistic -----------------------------------------------------
ROWS = [{"per_replica_rate": 100.0, "mean": 0.0002, "p50": 0.0001, "p90": 0.0003, "p95": 0.0004, "p99": 0.0006,
         "p999": 0.0008},
        {"per_replica_rate": 300.0, "mean": 0.0004, "p50": 0.0005, "p90": 0.0003, "p95": 0.0002, "p99": 0.0002,
         "p999": 0.0002}]


def _overhead_profile(tmp_path, under: dict | None) -> str:
    rng = np.random.default_rng(11)
    doc = make_profile_dict({1: rng.gamma(4.0, 0.0005, 800)})
    if under is not None:
        doc["schema_version"] = "1.1"
        doc["under_load"] = under
    path = tmp_path / f"o{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize("engine", ["fast", "simpy"])
def test_the_overhead_of_each_statistic_is_added_to_that_statistic(tmp_path, engine):
    """Same variates with and without the table: each statistic moves by exactly its own overhead,
    interpolated at the per-replica rate (200 req/s: halfway between the rows), p999 included."""
    bare = simulate(_scenario(_overhead_profile(tmp_path, None), rate=200.0), engine=engine)
    res = simulate(_scenario(_overhead_profile(tmp_path, {"client_overhead_s": 0.0003,
                                                          "client_overhead_by_load": ROWS}), rate=200.0),
                   engine=engine)
    for key in ("mean", "p50", "p90", "p95", "p99", "p999"):
        want = (ROWS[0][key] + ROWS[1][key]) / 2 * 1e3
        assert res.latency_ms[key] - bare.latency_ms[key] == pytest.approx(want, abs=1e-9), key
    assert any("client_overhead_by_load" in n for n in res.notes)
    # beyond the table the last row holds; the round trip keeps it
    far = simulate(_scenario(_overhead_profile(tmp_path, {"client_overhead_by_load": ROWS}), rate=450.0),
                   engine=engine)
    near = simulate(_scenario(_overhead_profile(tmp_path, None), rate=450.0), engine=engine)
    assert far.latency_ms["p50"] - near.latency_ms["p50"] == pytest.approx(0.5, abs=1e-9)
    prof = Profile.load(_overhead_profile(tmp_path, {"client_overhead_by_load": ROWS}))
    assert Profile.from_dict(prof.to_dict()).under_load == prof.under_load


def test_the_plan_screen_reads_the_overhead_at_its_slo_percentile(tmp_path):
    from simulator.planner.screening import Screen

    prof = Profile.load(_overhead_profile(tmp_path, {"client_overhead_by_load": ROWS}))
    model = make_service_model(_scenario(str(prof.origin)))
    screen = Screen(model, rate=400.0, quantile=0.99, under=prof.under_load)
    assert screen.overhead_s(2) == pytest.approx(0.0004)          # 200 req/s per replica: halfway
    assert screen.overhead_s(4) == pytest.approx(0.0006)          # 100 req/s per replica: the first row
    with pytest.raises(InputError, match="client overhead by statistic"):
        simulate(_scenario(str(prof.origin)), engine="analytic")
