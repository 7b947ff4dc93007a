"""Serial and Dask runs of the same plan are the same plan (seeds come from configurations, not order)."""

from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed")

from simulator.planner import plan  # noqa: E402
from simulator.planner.search import simulation_available  # noqa: E402


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("wall_seconds", "executor")}


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def _catalog(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[hardware.cpu-a]\nkind="cpu"\nprice_per_hour=0.1\n'
                 '[hardware.gpu-b]\nkind="gpu"\nprice_per_hour=0.9\n'
                 '[models.m.cpu-a]\nfp32={service_time_ms=8.0, cv=0.5, dist="gamma", batch_time_ms=[4.0, 4.0]}\n'
                 'int8={service_time_ms=5.0, cv=0.5, dist="gamma", batch_time_ms=[2.0, 3.0]}\n'
                 '[models.m.gpu-b]\nfp16={service_time_ms=2.0, cv=0.2, dist="gamma", batch_time_ms=[1.5, 0.3]}\n',
                 encoding="utf-8")
    return str(p)


def test_serial_and_dask_plans_are_identical(tmp_path, client):
    engine = "fast" if simulation_available() else "analytic"
    kw = dict(catalog=_catalog(tmp_path), batch_sizes=[1, 4], batch_timeouts_ms=[0, 2], caches="none,lru:100",
              keys=1000, engine=engine, requests=4000, replications=3, seed=99, max_replicas=32)
    serial = plan("m", 150.0, "p99=60ms", **kw)
    parallel = plan("m", 150.0, "p99=60ms", client=client, **kw)
    assert parallel.report["executor"]["executor"] == "dask"
    assert _strip(serial.to_dict()) == _strip(parallel.to_dict())
    assert serial.recommendation is not None


def test_scheduler_address_runs_the_same_plan(client):
    from simulator.planner import ServiceSpec

    spec = ServiceSpec(model="m", hardware="h", variant="v", source="parametric", mean_s=0.004, cv=0.5,
                       dist="gamma")
    kw = dict(service=spec, requests=4000, replications=3, seed=5, growth=False)
    serial = plan(arrival_rate=300.0, slo="p99=30ms", **kw)
    remote = plan(arrival_rate=300.0, slo="p99=30ms", scheduler=client.scheduler.address, **kw)
    assert remote.report["executor"]["executor"] == "dask"
    assert _strip(serial.to_dict()) == _strip(remote.to_dict())
