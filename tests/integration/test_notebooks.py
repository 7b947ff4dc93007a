"""The notebooks run top to bottom (nbclient) and their key results hold.

Each notebook's last cell prints ``NOTEBOOK_RESULT {json}``; the assertions here are on those numbers,
not on the notebook having run. The kernel is this interpreter (a kernel spec written to a temporary
Jupyter path, with this checkout on PYTHONPATH), so the notebooks import the simulator under test
whatever kernels the machine has.
"""

from __future__ import annotations

import json
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from ..conftest import ROOT  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
KERNEL = "serving-simulator-test"
pytestmark = pytest.mark.slow


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "serving-simulator (tests)", "language": "python",
        # The checkout under test comes first, whatever an (editable) install points at.
        "env": {"PYTHONPATH": str(ROOT)}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return KERNEL


def execute(name: str, kernel: str) -> dict:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=240,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            for line in text.splitlines():
                if line.startswith("NOTEBOOK_RESULT "):
                    return json.loads(line.removeprefix("NOTEBOOK_RESULT "))
    raise AssertionError(f"{name} printed no NOTEBOOK_RESULT line")


def test_committed_without_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


def test_capacity_planning(kernel):
    r = execute("capacity_planning.ipynb", kernel)
    # Simulated M/M/c mean sojourn vs the exact closed form, within the tolerance the notebook states
    # and p99 (one CI width or 3%: the notebook says why); recomputed here from the printed figures
    # rather than trusting its flags.
    m = r["mmc"]
    lo, hi = m["simulated_ci95"]
    assert lo <= m["simulated_mean_ms"] <= hi
    assert abs(m["simulated_mean_ms"] - m["analytic_mean_ms"]) <= max(hi - lo, 0.03 * m["analytic_mean_ms"])
    lo, hi = m["simulated_p99_ci95"]
    assert abs(m["simulated_p99_ms"] - m["analytic_p99_ms"]) <= max(hi - lo, 0.03 * m["analytic_p99_ms"])
    # Latency grows with load.
    p99 = r["load_p99_ms"]
    assert p99[-1] > p99[0]
    # Cache: simulated LRU hit ratio vs Che's approximation within 0.02; a bigger cache hits more and
    # lowers p99 at the same load.
    cache = sorted(r["cache"], key=lambda row: row["capacity"])
    for row in cache:
        assert abs(row["hit_ratio_simulated"] - row["hit_ratio_che"]) <= 0.02, row
    assert cache[0]["hit_ratio_simulated"] == 0 < cache[1]["hit_ratio_simulated"] < cache[2]["hit_ratio_simulated"]
    assert cache[2]["p99_ms"] < cache[0]["p99_ms"]
    # Batching at 1.3x the one-at-a-time capacity: batch size 1 is unstable; a larger batch size is
    # stable exactly when full batches could carry the load (clear cases only: 5% either side).
    batching = r["batching"]
    assert batching[0]["max_batch_size"] == 1 and batching[0]["stable"] is False
    for b in batching[1:]:
        ratio = b["max_throughput_rps"] / b["arrival_rate"]
        if ratio > 1.05:
            assert b["stable"] and b["mean_batch_size"] > 1, b
        elif ratio < 0.95:
            assert not b["stable"], b
    # The host-level band holds the nominal p99 and widens (relative to it) as the load grows.
    band = sorted(r["host_band"], key=lambda row: row["arrival_rate"])
    for row in band:
        assert row["p99_fast_host_ms"] < row["p99_ms"] < row["p99_slow_host_ms"], row
    assert band[-1]["band_width_pct"] > band[0]["band_width_pct"]
    # The plan's recommendation meets the SLO on the upper end of its 95% CI.
    plan = r["plan"]
    assert plan["p99_ms_ci95"][1] <= plan["slo_ms"]
    assert plan["replicas"] >= 1 and plan["cost_per_hour"] > 0


def test_hardware_selection(kernel):
    r = execute("hardware_selection.ipynb", kernel)
    assert r["hardware_compared"]
    choice = r["choice"]
    assert choice is not None, "no hardware within the notebook's budget"
    assert choice["hardware"] in r["hardware_compared"]
    assert choice["monthly_cost"] <= r["budget"]
    assert choice["p99_ms_ci95"][1] <= r["slo_ms"]
    assert choice["headroom"] >= 0
    rec = r["recommendation"]
    assert rec["monthly_cost"] <= choice["monthly_cost"]  # the plan's pick is the cheapest passing one
    assert rec["p99_ms_ci95"][1] <= r["slo_ms"]
