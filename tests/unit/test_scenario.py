"""Scenario validation and the TOML file format (equivalent to the flags; unknown keys refused)."""

from __future__ import annotations

import pytest

from simulator.errors import InputError
from simulator.scenario import Arrivals, Batching, Cache, Run, Scenario, Service, load_scenario

SCENARIO = """
[arrivals]
process = "gamma"
rate = 150
cv = 1.5

[service]
service_time_ms = 4.0
dist = "lognormal"
cv = 1.2

[system]
replicas = 3
queue_limit = 50
request_timeout_ms = 500

[batching]
max_batch_size = 1

[cache]
policy = "lru"
capacity = 100
zipf_alpha = 0.9
keys = 5000
hit_latency_ms = 0.2

[[pre_stage]]
name = "decode"
time_ms = 0.5

[run]
requests = 20000
seed = 7
"""


def test_toml_round_trip(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO)
    sc = load_scenario(f)
    assert sc.arrivals == Arrivals(process="gamma", rate=150, cv=1.5)
    assert sc.service.mean_s == pytest.approx(0.004) and sc.service.dist == "lognormal"
    assert sc.replicas == 3 and sc.queue_limit == 50 and sc.request_timeout_s == pytest.approx(0.5)
    assert sc.cache == Cache(policy="lru", capacity=100, zipf_alpha=0.9, keys=5000, hit_latency_s=0.0002)
    assert sc.pre_stages[0].name == "decode" and sc.pre_stages[0].mean_s == pytest.approx(0.0005)
    assert sc.run.requests == 20000 and sc.run.seed == 7


@pytest.mark.parametrize("text, message", [
    ("[arrivals]\nrate = 1\nburst = 3\n[service]\nservice_time_ms = 1", "unknown key 'burst'"),
    ("[arrival]\nrate = 1", "unknown section [arrival]"),
    ("[arrivals\nrate = 1", "not valid TOML"),
    ("[arrivals]\nrate = 1\n[service]\nservice_time_ms = 'fast'", "must be a number of milliseconds"),
    ("[arrivals]\nrate = 1\n[service]\nservice_time_ms = 1\n[system]\nreplicas = 2.5",
     "replicas must be an integer >= 1"),
])
def test_bad_files(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        load_scenario(f)
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_scenario(tmp_path / "none.toml")


@pytest.mark.parametrize("build, message", [
    (lambda: Scenario(arrivals=Arrivals(rate=1), service=Service(mean_s=0.01), replicas=0),
     "replicas must be an integer >= 1 and <= 100000, got 0"),
    (lambda: Scenario(arrivals=Arrivals(rate=1), service=Service(mean_s=0.01), replicas=True),
     "replicas must be an integer"),
    (lambda: Scenario(arrivals=Arrivals(rate=1), service=Service(mean_s=0.01),
                      batching=Batching(max_batch_size=1, timeout_s=0.002)), "needs batch_size > 1"),
    (lambda: Cache(policy="lru", capacity=200, keys=100), "cache_capacity must be <= keys"),
    (lambda: Cache(policy="arc", capacity=1), "cache_policy must be one of lru, lfu, fifo"),
    (lambda: Service(mean_s=float("inf")), "service_time must be a finite number > 0"),
    (lambda: Service(), "needs a profile or a mean service time"),
    (lambda: Service(profile="p.json", mean_s=0.01), "either a profile or a parametric"),
    (lambda: Batching(max_batch_size=0), "batch_size must be an integer >= 1"),
    (lambda: Batching(max_batch_size=4, timeout_s=-1), "batch_timeout must be a finite number >= 0"),
    (lambda: Run(requests=10), "requests must be an integer >= 100"),
    (lambda: Run(target_rel_halfwidth=1.5), "target_rel_halfwidth must be in (0, 1)"),
    (lambda: Scenario(arrivals=Arrivals(rate=1), service=Service(mean_s=0.01), queue_limit=-1),
     "queue_limit must be an integer >= 0"),
])
def test_bad_values(build, message):
    with pytest.raises(InputError) as err:
        build()
    assert message in str(err.value)
