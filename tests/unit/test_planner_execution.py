"""Executors: serial by default, Dask on request; TLS settings read from a file or Dask's config."""

from __future__ import annotations

import pytest

from simulator.errors import InputError
from simulator.planner.execution import SerialExecutor, executor_for, load_security


def test_default_is_serial_and_keeps_order():
    with executor_for() as ex:
        assert isinstance(ex, SerialExecutor)
        assert ex.map(lambda x: x * x, [3, 1, 2]) == [9, 1, 4]


def test_security_file(tmp_path):
    pytest.importorskip("distributed")
    good = tmp_path / "sec.toml"
    good.write_text("require_encryption = true\n", encoding="utf-8")
    assert load_security(good).require_encryption is True
    with pytest.raises(InputError, match="does not exist"):
        load_security(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('tls_key = "x"\n', encoding="utf-8")
    with pytest.raises(InputError, match="unknown key"):
        load_security(bad)
    missing_cert = tmp_path / "cert.toml"
    missing_cert.write_text(f'tls_ca_file = "{tmp_path / "ca.pem"}"\n', encoding="utf-8")
    with pytest.raises(InputError, match="tls_ca_file"):
        load_security(missing_cert)


def test_bad_scheduler_arguments():
    with pytest.raises(InputError, match="scheduler must be an address"), executor_for(scheduler="host:8786"):
        pass
    with pytest.raises(InputError, match="either --scheduler or --workers"), \
            executor_for(scheduler="tls://h:1", workers=2):
        pass
    with pytest.raises(InputError, match="workers"), executor_for(workers=0):
        pass


@pytest.mark.slow
def test_local_process_cluster_runs_a_plan():
    pytest.importorskip("distributed")
    from simulator.planner import ServiceSpec, plan

    spec = ServiceSpec(model="m", hardware="h", variant="v", source="parametric", mean_s=0.01, cv=1.0,
                       dist="exponential")
    serial = plan(arrival_rate=250, slo="p99=50ms", service=spec)
    parallel = plan(arrival_rate=250, slo="p99=50ms", service=spec, workers=1)
    assert parallel.report["executor"]["executor"] == "dask"
    strip = lambda d: {k: v for k, v in d.items() if k not in ("wall_seconds", "executor")}  # noqa: E731
    assert strip(serial.to_dict()) == strip(parallel.to_dict())
