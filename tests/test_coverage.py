"""ATLAS coverage of rules: counting, the Navigator layer, the HTML matrix, JSON and text."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from aisoc.atlas.catalog import AtlasCatalog, Tactic, Technique, load_catalog
from aisoc.atlas.coverage import (
    LAYERS,
    CoverageReport,
    RuleCoverageInput,
    UnknownTag,
    build_coverage,
    coverage_html,
    coverage_json,
    coverage_text,
    navigator_layer,
)

EVIL_TITLE = 'Prompt injection <script>alert("x")</script> & co'


@pytest.fixture(scope="module")
def catalog() -> AtlasCatalog:
    return load_catalog()


@pytest.fixture(scope="module")
def rules() -> list[RuleCoverageInput]:
    return [
        RuleCoverageInput(
            "inf-001", EVIL_TITLE, "inference", ["atlas.aml.t0051", "atlas.execution", "attack.t1059"], True
        ),
        RuleCoverageInput("inf-002", "Jailbreak phrasing", "inference", ["ATLAS.AML.T0051"], True),
        RuleCoverageInput(
            "inf-003", "Extraction by query volume", "inference", ["atlas.aml.t0024.002"], True
        ),
        RuleCoverageInput("mdl-001", "Unsigned model promoted", "model", ["atlas.aml.t0010.003"], False),
        RuleCoverageInput(
            "sc-001",
            "Pickle with exec opcodes",
            "supply-chain",
            ["atlas.aml.t0010.003", "atlas.aml.t9999"],
            True,
        ),
        RuleCoverageInput("dat-001", "Training data drift", "data", ["atlas.aml.t0020"], False),
        RuleCoverageInput("dat-002", "No ATLAS tag", "data", ["cve.2024-1234", "atlas.bogus tag"], True),
    ]


@pytest.fixture(scope="module")
def report(rules: list[RuleCoverageInput], catalog: AtlasCatalog) -> CoverageReport:
    return build_coverage(rules, catalog)


# ------------------------------------------------------------------------ counting


def test_every_catalog_item_is_reported(report: CoverageReport, catalog: AtlasCatalog) -> None:
    assert list(report.techniques) == list(catalog.techniques)
    assert report.total == 170
    assert (report.techniques_total, report.subtechniques_total) == (101, 69)


def test_passing_rules_cover(report: CoverageReport) -> None:
    t0051 = report.techniques["AML.T0051"]
    assert t0051.rules == ["inf-001", "inf-002"] and t0051.score == 2 and t0051.covered
    assert report.covered_ids() == ["AML.T0010.003", "AML.T0024.002", "AML.T0051"]
    assert (report.covered, report.techniques_covered, report.subtechniques_covered) == (3, 1, 2)
    assert report.percent == round(100 * 3 / 170, 1)


def test_failing_rules_do_not_count(report: CoverageReport) -> None:
    t0020 = report.techniques["AML.T0020"]
    assert not t0020.covered and t0020.rules == [] and t0020.failing_rules == ["dat-001"]
    # a technique covered by a passing rule keeps the failing one listed apart
    sc = report.techniques["AML.T0010.003"]
    assert sc.rules == ["sc-001"] and sc.failing_rules == ["mdl-001"]
    assert report.failing_rules == ["mdl-001", "dat-001"]
    assert report.layers["model"].techniques == [] and report.layers["model"].failing_rules == ["mdl-001"]
    assert report.layers["data"].techniques == []


def test_only_failing_rules_means_nothing_covered(catalog: AtlasCatalog) -> None:
    rep = build_coverage([RuleCoverageInput("x", "x", "model", ["atlas.aml.t0051"], False)], catalog)
    assert rep.covered == 0 and rep.techniques["AML.T0051"].failing_rules == ["x"]
    assert navigator_layer(rep, catalog)["techniques"] == []


def test_subtechnique_coverage_does_not_cover_parent(report: CoverageReport, catalog: AtlasCatalog) -> None:
    assert report.techniques["AML.T0024.002"].covered
    assert not report.techniques["AML.T0024"].covered
    assert not report.techniques["AML.T0024.000"].covered
    exfil = next(t for t in report.tactics if t.short_name == "exfiltration")
    assert exfil.covered_techniques == ["AML.T0024.002"]
    members = [t for t in catalog.techniques.values() if "AML.TA0010" in t.tactics]
    assert exfil.total == len(members) and exfil.covered == 1


def test_per_tactic_counts(report: CoverageReport, catalog: AtlasCatalog) -> None:
    assert [t.tactic_id for t in report.tactics] == [t.id for t in catalog.tactics]
    for tac in report.tactics:
        members = [t for t in report.techniques.values() if tac.tactic_id in t.tactics]
        assert tac.total == len(members)
        assert tac.covered == sum(1 for t in members if t.covered)
    execution = next(t for t in report.tactics if t.tactic_id == "AML.TA0005")
    assert execution.tagged_rules == ["inf-001"]
    assert "AML.T0051" in execution.covered_techniques
    assert sum(t.total for t in report.tactics) == sum(len(t.tactics) for t in catalog.techniques.values())


def test_per_layer(report: CoverageReport) -> None:
    assert list(report.layers)[: len(LAYERS)] == list(LAYERS)
    assert report.layers["inference"].techniques == ["AML.T0024.002", "AML.T0051"]
    assert report.layers["inference"].rules == ["inf-001", "inf-002", "inf-003"]
    assert report.layers["supply_chain"].techniques == ["AML.T0010.003"]  # "supply-chain" normalised
    assert report.layers["data"].rules == ["dat-002"]


def test_unknown_tags_and_rules_without_atlas(report: CoverageReport) -> None:
    assert report.unknown_tags == [
        UnknownTag("sc-001", "atlas.aml.t9999"),
        UnknownTag("dat-002", "atlas.bogus tag"),
    ]
    assert report.rules_without_atlas == ["dat-002"]


def test_empty_rule_set(catalog: AtlasCatalog) -> None:
    rep = build_coverage([], catalog)
    assert rep.covered == 0 and rep.percent == 0.0
    assert all(t.covered == 0 for t in rep.tactics)
    assert "0 of 170" in coverage_text(rep)
    assert "aisoc detection coverage" in coverage_html(rep, catalog)


# ----------------------------------------------------------------------- Navigator

_LAYER_KEYS = {
    "versions", "name", "description", "domain", "filters", "sorting", "layout", "hideDisabled",
    "techniques", "gradient", "legendItems", "showTacticRowBackground", "tacticRowBackground",
    "selectTechniquesAcrossTactics", "selectSubtechniquesWithParent", "metadata",
}  # fmt: skip
_TECHNIQUE_KEYS = {
    "techniqueID", "tactic", "comment", "enabled", "score", "color", "metadata", "links", "showSubtechniques",
}  # fmt: skip
_LAYOUT_KEYS = {"layout", "showID", "showName", "showAggregateScores", "countUnscored", "aggregateFunction"}


def test_navigator_layer_format(report: CoverageReport, catalog: AtlasCatalog) -> None:
    layer = json.loads(json.dumps(navigator_layer(report, catalog)))
    assert set(layer) <= _LAYER_KEYS
    assert layer["domain"] == "atlas-atlas"
    assert layer["versions"] == {"layer": "4.3", "navigator": "4.6.4"}
    assert layer["name"] and isinstance(layer["description"], str)
    assert {"name": "atlas_data_version", "value": "5.6.0"} in layer["metadata"]
    assert all(set(m) == {"name", "value"} and isinstance(m["value"], str) for m in layer["metadata"])
    assert set(layer["layout"]) <= _LAYOUT_KEYS
    grad = layer["gradient"]
    assert len(grad["colors"]) >= 2 and grad["maxValue"] > grad["minValue"]
    assert all(set(li) == {"label", "color"} for li in layer["legendItems"])
    short_names = {t.short_name for t in catalog.tactics}
    for entry in layer["techniques"]:
        assert set(entry) <= _TECHNIQUE_KEYS
        tech = catalog.technique(entry["techniqueID"])
        assert tech is not None and tech.id == entry["techniqueID"]
        assert entry["tactic"] in short_names
        assert catalog.tactic(entry["tactic"]).id in tech.tactics


def test_navigator_layer_entries(report: CoverageReport, catalog: AtlasCatalog) -> None:
    entries = navigator_layer(report, catalog)["techniques"]
    scored = {(e["techniqueID"], e["tactic"]): e for e in entries if "score" in e}
    expected = {
        (tid, catalog.tactic(tac).short_name)
        for tid in report.covered_ids()
        for tac in catalog.technique(tid).tactics
    }
    assert set(scored) == expected
    pi = scored[("AML.T0051", "execution")]
    assert pi["score"] == 2 and pi["enabled"] is True
    assert EVIL_TITLE in pi["comment"] and "Jailbreak phrasing" in pi["comment"]
    assert pi["links"][0]["url"] == "https://atlas.mitre.org/techniques/AML.T0051/"
    assert [m["value"] for m in pi["metadata"]] == [f"inf-001: {EVIL_TITLE}", "inf-002: Jailbreak phrasing"]
    assert scored[("AML.T0024.002", "exfiltration")]["score"] == 1
    # the parent of a covered sub-technique is expanded, but not scored
    parent = [e for e in entries if e["techniqueID"] == "AML.T0024"]
    assert parent == [{"techniqueID": "AML.T0024", "tactic": "exfiltration", "showSubtechniques": True}]
    assert not any(e["techniqueID"] == "AML.T0020" for e in entries)  # failing only


# ---------------------------------------------------------------------------- HTML


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: set[str] = set()
        self.titles: list[str] = []
        self.text: list[str] = []

    _VOID = {"meta", "br", "hr", "img", "link", "input"}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.titles += [v or "" for k, v in attrs if k == "title"]
        if tag not in self._VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_matrix(report: CoverageReport, catalog: AtlasCatalog) -> None:
    page = coverage_html(report, catalog)
    parser = _Collector()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert "src=" not in page and "@import" not in page and "url(" not in page
    text = " ".join(parser.text)
    for tactic in catalog.tactics:
        assert tactic.name in text
    # tactic columns appear in matrix order
    positions = [page.index(f">{t.name}<small>") for t in catalog.tactics]
    assert positions == sorted(positions)
    assert "3 of 170" in text
    # every technique cell is present (sub-techniques once per parent tactic)
    for tech in catalog.techniques.values():
        assert tech.id in text


def test_html_escapes_rule_titles(report: CoverageReport, catalog: AtlasCatalog) -> None:
    page = coverage_html(report, catalog)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page
    parser = _Collector()
    parser.feed(page)
    tips = [t for t in parser.titles if "inf-001" in t]
    assert tips and all(EVIL_TITLE in t for t in tips)  # the tooltip shows the title as text


def test_html_tooltips_and_failing_marks(report: CoverageReport, catalog: AtlasCatalog) -> None:
    parser = _Collector()
    parser.feed(coverage_html(report, catalog))
    t0020 = [t for t in parser.titles if t.startswith("AML.T0020 ")]
    assert t0020 and "Failing tests (not counted):" in t0020[0] and "dat-001" in t0020[0]
    t0024 = [t for t in parser.titles if t.startswith("AML.T0024 ")]
    assert t0024 and "Sub-techniques covered: 1/3" in t0024[0]


# ---------------------------------------------------------------------- JSON, text


def test_coverage_json(report: CoverageReport) -> None:
    data = json.loads(json.dumps(coverage_json(report)))
    assert data["atlas_version"] == "5.6.0"
    assert data["totals"]["covered"] == 3 and data["totals"]["total"] == 170
    assert data["totals"]["rules"] == 7 and data["totals"]["rules_failing_tests"] == 2
    assert len(data["tactics"]) == 16 and len(data["techniques"]) == 170
    by_id = {t["id"]: t for t in data["techniques"]}
    assert by_id["AML.T0051"]["rules"] == ["inf-001", "inf-002"]
    assert by_id["AML.T0020"]["covered"] is False and by_id["AML.T0020"]["failing_rules"] == ["dat-001"]
    assert data["layers"]["inference"]["techniques_covered"] == 2
    assert {"rule_id": "sc-001", "tag": "atlas.aml.t9999"} in data["unknown_tags"]


def test_coverage_text(report: CoverageReport) -> None:
    text = coverage_text(report)
    assert "3 of 170" in text and "1/101 techniques" in text and "2/69 sub-techniques" in text
    assert "Exfiltration" in text and "supply_chain" in text
    assert "mdl-001" in text and "atlas.aml.t9999" in text


def test_html_escapes_catalog_names() -> None:
    """Names come from downloaded data too: they are escaped like rule titles."""
    cat = AtlasCatalog(
        "2026.05",
        "test",
        [Tactic("AML.TA0005", "Exec <i>ution</i>", "exec-ution")],
        [Technique("AML.T0051", 'Inject "<img src=x onerror=alert(1)>"', ("AML.TA0005",))],
    )
    rep = build_coverage([RuleCoverageInput("r", "t", "inference", ["atlas.aml.t0051"], True)], cat)
    page = coverage_html(rep, cat)
    assert "<img" not in page and "<i>" not in page
    assert "Inject &quot;&lt;img src=x onerror=alert(1)&gt;&quot;" in page
    assert "Exec &lt;i&gt;ution&lt;/i&gt;" in page
