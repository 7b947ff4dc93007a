"""The HTML report in a real browser: headless Chromium opens it offline, every figure decodes, the
console stays clean, nothing is fetched, and a screenshot is kept for inspection.

Chromium is driven from the command line: a test copy of the page gets a small probe script at the top
of <head> (listeners for errors, CSP violations and console.error; after ``load``, each image's
``naturalWidth`` and the resource-timing entries) that writes its findings into ``<pre id=probe>``,
which ``--dump-dom`` returns. The page under test itself carries no script at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from simulator.report import build_report, load_plan
from simulator.report.resimulate import Resimulation

from ..conftest import DATA

PROBE = """<script>
(function () {
  var found = {errors: [], console: [], csp: []};
  window.addEventListener('error', function (e) {
    found.errors.push(String(e.message || (e.target && (e.target.src || e.target.href)) || e.type));
  }, true);
  document.addEventListener('securitypolicyviolation', function (e) {
    found.csp.push(e.violatedDirective + ' ' + e.blockedURI);
  });
  var original = console.error;
  console.error = function () {
    found.console.push(Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images);
    found.images = imgs.map(function (i) {
      return {alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
              data: i.src.indexOf('data:image/png;base64,') === 0};
    });
    found.resources = performance.getEntriesByType('resource').map(function (r) { return r.name; });
    found.title = document.title;
    found.scripts = document.scripts.length;
    var pre = document.createElement('pre');
    pre.id = 'probe';
    pre.textContent = JSON.stringify(found);
    document.body.appendChild(pre);
  });
})();
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("headless Chromium is required in CI (apt-get install chromium) and was not found")
    pytest.skip("Chromium not installed (apt-get install chromium); CI runs this test")


def _run(browser: str, profile_dir, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _report(tmp_path):
    """A report with all five figures: the fixture plan plus stand-in simulation data."""
    plan = load_plan(DATA / "plan_fixture.json")
    rng = np.random.default_rng(3)
    hw = [r["hardware"] for r in plan["per_hardware"]]
    curves = {h: [{"arrival_rate": r, "latency_ms": 5 + 20 * r / 400, "latency_ms_ci95": [4 + 20 * r / 400,
                                                                                           6 + 20 * r / 400]}
                  for r in (50.0, 100.0, 150.0, 200.0)] for h in hw}
    sens = {"batch_size": [{"value": 1, "p99_ms": 11.0, "ci": [10.0, 12.0], "recommended": True, "note": None},
                           {"value": 4, "p99_ms": 18.0, "ci": [16.0, 20.0], "recommended": False, "note": None}]}
    resim = Resimulation(latencies_ms=rng.gamma(4.0, 1.5, 3000), quantiles_ms=None, load_curves=curves,
                         sensitivity=sens, description="stand-in data of the browser test")
    out = tmp_path / "report"
    build_report(plan, out, resimulation=resim, notes=["Browser test: figures from stand-in data"])
    return out


def test_report_opens_offline_in_chromium(tmp_path):
    browser = _chromium()
    out = _report(tmp_path)
    html = (out / "index.html").read_text()
    assert "<script" not in html

    # A test copy with the probe; its CSP lets only the inline probe run and still refuses any network.
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html)
    assert csp and "default-src 'none'" in csp.group(1)
    probe_page = html.replace(csp.group(0), csp.group(0).replace(
        "default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';"))
    probe_page = probe_page.replace("<head>", "<head>\n" + PROBE, 1)
    probe = out / "probe.html"
    probe.write_text(probe_page)

    res = _run(browser, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert m, f"no probe output; chromium exit {res.returncode}: {res.stderr[-2000:]}"
    found = json.loads(m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                       .replace("&amp;", "&"))
    assert found["errors"] == [] and found["console"] == [] and found["csp"] == [], found
    assert len(found["images"]) == 5
    for img in found["images"]:
        assert img["complete"] and img["data"] and img["width"] > 0 and img["height"] > 0, img
    assert all(not r.startswith(("http:", "https:", "ws:")) for r in found["resources"]), found["resources"]
    assert found["title"] == "Capacity plan: resnet50"
    assert found["scripts"] == 1  # the probe, nothing from the report

    # The page itself, as a reader sees it: screenshot for inspection (kept under tmp_path).
    shot = tmp_path / "report.png"
    res = _run(browser, tmp_path / "profile2", "--window-size=1200,6000", f"--screenshot={shot}",
               (out / "index.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 50_000, res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")
