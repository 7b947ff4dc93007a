"""``simulator report``: files written, numbers equal to the plan's, escaping, bad inputs, no escape.

``tests/data/plan_fixture.json`` is a real ``simulator plan`` document (planner output for ResNet-50
on a two-hardware test catalog: parametric CPU services and the bundled PUBLISHED T4 profile, paths
made relative), so these tests read the shape the planner writes.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from simulator.cli import main
from simulator.report import build_report, load_plan
from simulator.report.render import FIGURES
from simulator.report.view import fmt_number

from ..conftest import DATA

FIXTURE = DATA / "plan_fixture.json"
EVIL = "<script>alert(1)</script>"


def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def resolve(doc, pointer: str):
    """Value at a JSON pointer (RFC 6901)."""
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


class Section(HTMLParser):
    """Collects, inside the first element with a given class, the num spans and the other text."""

    def __init__(self, cls: str):
        super().__init__()
        self.cls, self.depth, self.in_num = cls, 0, False
        self.nums: list[dict] = []
        self.text: list[str] = []
        self.scripts = 0
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.images.append(a.get("src", ""))
        if self.depth:
            self.depth += 1
            if tag == "span" and "num" in (a.get("class") or "").split():
                self.nums.append({**a, "text": ""})
                self.in_num = True
        elif self.cls in (a.get("class") or "").split():
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1
            if tag == "span":
                self.in_num = False

    def handle_data(self, data):
        if self.depth:
            if self.in_num:
                self.nums[-1]["text"] += data
            else:
                self.text.append(data)


def parse(html: str, cls: str = "rec") -> Section:
    p = Section(cls)
    p.feed(html)
    return p


def run_report(plan_path, out, *extra) -> int:
    return main(["report", "--plan", str(plan_path), "--output", str(out), "--quiet", *extra])


def test_report_from_fixture_writes_html_markdown_and_figures(tmp_path, capsys):
    out = tmp_path / "reports" / "demo"
    assert run_report(FIXTURE, out, "--no-simulate") == 0
    assert "index.html" in capsys.readouterr().out
    html = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    # Without simulations, the figures the plan has data for are drawn and the others say so.
    for name in ("pareto", "cost_per_million"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.svg").exists()
        assert f"]({name}.png)" in md
    assert not (out / "latency_cdf.png").exists()
    assert "not available: no per-request latencies" in html and "not available: no per-request latencies" in md
    # Self-contained: every image is a data: URI, nothing is fetched from anywhere.
    page = parse(html)
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.scripts == 0
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "@media print" in html
    # Provenance: the published T4 profile is flagged with its source.
    assert "PUBLISHED" in html and "NVIDIA DeepLearningExamples" in html
    assert "**PUBLISHED**" in md and "NVIDIA DeepLearningExamples" in md
    # Reproducibility: command, seed, versions.
    plan = fixture()
    assert "simulator plan --model resnet50" in html and "simulator plan --model resnet50" in md
    assert f"Seed: {plan['seed']}" in md
    assert f"numpy {plan['versions']['numpy']}" in html
    assert json.loads((out / "plan.json").read_text()) == plan


def test_every_number_in_the_recommendation_equals_the_plans(tmp_path):
    plan = fixture()
    build_report(plan, tmp_path)
    html = (tmp_path / "index.html").read_text()
    section = parse(html)
    srcs = {n["data-src"] for n in section.nums}
    assert {"/recommendation/replicas", "/recommendation/cost_per_hour", "/recommendation/monthly_cost",
            "/recommendation/cost_per_million_requests", "/recommendation/p99_ms",
            "/recommendation/p99_ms_ci95/0", "/recommendation/p99_ms_ci95/1"} <= srcs
    assert any(s.startswith("/per_hardware/") and s.endswith("/headroom") for s in srcs)
    for n in section.nums:
        value = resolve(plan, n["data-src"])
        assert float(n["data-value"]) == value, n
        assert n["text"] == fmt_number(value, n["data-kind"]), n
    # No other figure in the box: what is left once the plan's own strings and the labels are removed
    # holds no digit.
    rec = plan["recommendation"]
    rest = " ".join(section.text)
    for s in (rec["hardware"], rec["variant"], rec["citation"], str(rec["cache"]), plan["slo"]["judged_on"],
              "p99", "95% CI", "fp32"):
        rest = rest.replace(s, "")
    assert not re.search(r"\d", rest), rest
    # The Markdown shows the same texts.
    md = (tmp_path / "report.md").read_text()
    md_rec = md.split("## Recommendation")[1].split("## Per hardware")[0]
    for n in section.nums:
        assert n["text"].replace("$", r"\$") in md_rec


def test_headroom_and_costs_of_the_recommended_hardware_come_from_its_row(tmp_path):
    plan = fixture()
    rec = plan["recommendation"]
    row = next(r for r in plan["per_hardware"] if r["hardware"] == rec["hardware"])
    build_report(plan, tmp_path)
    section = parse((tmp_path / "index.html").read_text())
    by_src = {n["data-src"]: n for n in section.nums}
    i = plan["per_hardware"].index(row)
    assert float(by_src[f"/per_hardware/{i}/headroom"]["data-value"]) == row["headroom"]
    assert float(by_src[f"/per_hardware/{i}/capacity_rps"]["data-value"]) == row["capacity_rps"]


def test_names_are_escaped_in_html_markdown_and_figures(tmp_path):
    plan = fixture()
    old_hw = plan["recommendation"]["hardware"]
    text = json.dumps(plan).replace(json.dumps(old_hw)[1:-1], EVIL.replace("/", "\\/"))
    plan = json.loads(text)
    plan["provenance"][0]["model"] = EVIL
    plan["provenance"][0]["device"] = "</td><img src=x onerror=alert(2)>"
    assert plan["recommendation"]["hardware"] == EVIL
    build_report(plan, tmp_path)
    html = (tmp_path / "index.html").read_text()
    md = (tmp_path / "report.md").read_text()
    assert EVIL not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = parse(html)
    assert page.scripts == 0
    assert all(src.startswith("data:") for src in page.images)  # no <img src=x> slipped in
    assert "<script" not in md and "<img" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    # The figures carry the name as text (SVG escapes it).
    svg = (tmp_path / "cost_per_million.svg").read_text()
    assert "<script>" not in svg


def test_missing_optional_sections_say_not_available_and_invent_nothing(tmp_path):
    plan = {"recommendation": {"hardware": "cpu-x", "replicas": 3, "p99_ms": 12.5, "p99_ms_ci95": [11.0, 14.0]},
            "arrival_rate": 100.0}
    build_report(plan, tmp_path)
    html = (tmp_path / "index.html").read_text()
    section = parse(html)
    assert {n["data-src"] for n in section.nums} == {"/recommendation/replicas", "/recommendation/p99_ms",
                                                     "/recommendation/p99_ms_ci95/0",
                                                     "/recommendation/p99_ms_ci95/1"}
    assert html.count("not available") >= 8
    md = (tmp_path / "report.md").read_text()
    for section_name in ("Per-hardware comparison", "Growth scenarios", "Profile provenance", "Prices"):
        assert f"{section_name} not available" in html and f"{section_name} not available" in md
    assert not (tmp_path / "pareto.png").exists()


def test_simulations_that_cannot_run_here_leave_notes_not_failures(tmp_path, monkeypatch, capsys):
    # The fixture's profile path is relative to the repository root; from elsewhere it is missing.
    monkeypatch.chdir(tmp_path)
    assert run_report(FIXTURE, tmp_path / "r", "--requests", "500", "--replications", "2") == 0
    html = (tmp_path / "r" / "index.html").read_text()
    assert "Notes of the report's own simulations" in html
    assert "not simulated: profile" in html and "does not exist" in html
    assert "not available: no per-request latencies" in html


def test_no_configuration_meets_the_slo(tmp_path):
    plan = fixture()
    plan["recommendation"] = None
    build_report(plan, tmp_path)
    assert "No evaluated configuration meets the SLO" in (tmp_path / "index.html").read_text()
    assert "No evaluated configuration meets the SLO" in (tmp_path / "report.md").read_text()


def test_accuracy_delta_from_the_profile_is_shown(tmp_path, synthetic_profile):
    doc = json.loads(synthetic_profile.read_text())
    doc["model"]["output_difference"] = {"reference": "fp32", "examples": 64, "max_abs_diff": 0.0213,
                                         "mean_abs_diff": 0.00041, "top1_agreement": 0.984}
    synthetic_profile.write_text(json.dumps(doc))
    plan = fixture()
    plan["provenance"][0]["profile"] = str(synthetic_profile)
    build_report(plan, tmp_path / "r")
    html = (tmp_path / "r" / "index.html").read_text()
    assert "max |diff| 0.0213" in html and "top-1 agreement 0.984" in html


def test_accuracy_delta_copied_into_the_plan_is_shown_without_the_profile(tmp_path):
    plan = fixture()
    plan["provenance"][0].update(profile=None, accuracy={"max_rel_diff": 0.0231, "top1_agreement": 0.977,
                                                         "examples": 64})
    build_report(plan, tmp_path)
    html = (tmp_path / "index.html").read_text()
    assert "max |diff| / max |fp32 output| 0.0231" in html and "top-1 agreement 0.977" in html


def test_variants_left_out_for_accuracy_are_listed(tmp_path):
    plan = fixture()
    plan["search"].update(min_top1_agreement=0.99, excluded_variants=["cpu-8core/int8 (top-1 agreement 0.594)"])
    build_report(plan, tmp_path)
    for name in ("index.html", "report.md"):
        text = (tmp_path / name).read_text()
        assert "fewer than 0.99 of the profiler's test inputs" in text.replace("&#39;", "'")
        assert "cpu-8core/int8 (top-1 agreement 0.594)" in text


@pytest.mark.parametrize(("content", "expected"), [
    (None, "does not exist"),
    ("", "is empty"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "top level must be a JSON object"),
    ('{"candidates": []}', "missing required field 'recommendation'"),
    ('{"recommendation": {"hardware": 3, "replicas": 1}}', "recommendation.hardware must be a str"),
    ('{"recommendation": {"hardware": "a", "replicas": 1, "p99_ms": NaN}}', "is not valid JSON"),
    ('{"recommendation": {"hardware": "a", "replicas": 1, "p99_ms": "fast"}}', "recommendation.p99_ms must be"),
    ('{"recommendation": null, "per_hardware": {"a": 1}}', "per_hardware must be a list of objects"),
])
def test_bad_plan_file_exits_2_naming_the_file_and_creates_nothing(tmp_path, capsys, content, expected):
    plan_path = tmp_path / "plan.json"
    if content is not None:
        plan_path.write_text(content)
    out = tmp_path / "out" / "report"
    assert run_report(plan_path, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(plan_path) in err and expected in err
    assert not (tmp_path / "out").exists()


def test_plan_that_is_a_directory_is_refused(tmp_path, capsys):
    assert run_report(tmp_path, tmp_path / "out") == 2
    assert "is a directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep")
    assert run_report(FIXTURE, target, "--no-simulate") == 2
    assert "not a directory" in capsys.readouterr().err
    assert target.read_text() == "keep"


def test_a_link_in_the_output_folder_cannot_redirect_a_write_outside(tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    victim = tmp_path / "victim.html"
    victim.write_text("untouched")
    (out / "index.html").symlink_to(victim)
    assert run_report(FIXTURE, out, "--no-simulate") == 2
    assert "escapes the output directory" in capsys.readouterr().err
    assert victim.read_text() == "untouched"
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]  # nothing written before the check


def test_rerun_replaces_the_report_atomically(tmp_path):
    build_report(fixture(), tmp_path)
    first = (tmp_path / "report.md").read_text()
    build_report(fixture(), tmp_path)
    assert (tmp_path / "report.md").read_text() == first
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_figure_list_is_the_issue_list():
    assert [f.name for f in FIGURES] == ["latency_vs_load", "pareto", "cost_per_million", "latency_cdf",
                                         "sensitivity"]


def test_fixture_is_a_planner_document():
    plan = load_plan(FIXTURE)
    assert plan["recommendation"]["source"] == "published"
    assert {"per_hardware", "pareto", "growth", "minimality", "provenance", "candidates"} <= set(plan)


def test_markdown_escaping_renders_text_verbatim():
    from simulator.report.escape import md_code_block, md_escape

    assert md_escape("a|b *c* _d_ [e](f) `g` $h$ <i> & ~j~ \\k") == (
        r"a\|b \*c\* \_d\_ \[e\](f) \`g\` \$h\$ &lt;i&gt; &amp; \~j\~ \\k")
    assert md_escape("two\nlines") == "two lines"  # a newline would end a table row
    assert md_code_block("x ``` y") == "````\nx ``` y\n````"
