"""`aisoc metrics`: each metric against a hand computation, edge cases, properties, and the outputs.

The fixtures under tests/fixtures/metrics are built so every number is known exactly:

alerts (event.created - aisoc.alert.first_event):
  al-001 flood       10:00 -> 10:05   300 s   (a re-written copy with a later event.created is ignored)
  al-002 flood       14:00 -> 14:15   900 s
  al-003 templated   09:00 -> 09:02   120 s
  al-004 artifact    08:00 -> 08:01    60 s
  al-005 unapproved  11:00 -> 11:30  1800 s
  al-006 signature   raised 1 min BEFORE its first event  -> data error
  al-007 jailbreak   no event.created                     -> data error
  MTTA: n=5, mean 3180/5 = 636 s, median 300 s

first applied containment after event.created:
  al-001 throttle 10:15 (600 s; the 10:06 snapshot is not containment), rotate 10:45 (revoke, 2400 s)
  al-002 throttle 14:20 (300 s; the 14:16 record is only 'planned')
  al-003 throttle finished 09:12:30 (630 s; the 09:10 attempt 'failed')
  al-004 rollback 08:31 (1800 s)
  al-005 quarantine next day 09:30 (79200 s)
  al-006, al-007: no containment
  MTTR: n=5, mean 82530/5 = 16506 s, median 630 s; throttle mean 510 median 600

integrity 2026-03-01..14: 03-09 (unapproved batch, quarantined next day) and 03-11 (hash mismatch at
  23:30, fixed after midnight) are out; 03-04 (re-check passed), 03-06 (rollback for al-004) and
  03-12 (batch re-landed) are remediated; 03-07/08 have no checks. 12/14 overall, 13/14 per dimension.

incidents: 4, one found by the business -> escape rate 25 %.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisoc.atlas.catalog import load_catalog
from aisoc.inventory import AISystem, Inventory, Owner, load_inventory
from aisoc.metrics import (
    Alert,
    DataIssue,
    MetricsInputError,
    ResponseRecord,
    RuleState,
    compute_metrics,
    load_alerts,
    load_events,
    load_incidents,
    load_responses,
    metrics_from_files,
    metrics_html,
    metrics_json,
    metrics_text,
    rule_states,
)
from aisoc.metrics.compute import asset_rows, escape_rate, integrity_sla, mtta, mttr, pct
from aisoc.metrics.inputs import Incident, containment_type, parse_time
from aisoc.metrics.render import fmt_duration, fmt_pct

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "metrics"
GENERATED = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
FLOOD = "0e5e2bd7-8aa9-489f-ad9d-b3cbbe2adacf"

RULES = [
    RuleState("r-sub", "Extraction", ("atlas.aml.t0024.002",), tests_passed=True),
    RuleState("r-sub-2", "Extraction again", ("atlas.aml.t0024.002", "atlas.exfiltration"), tests_passed=True),
    RuleState("r-deprecated", "Old injection rule", ("atlas.aml.t0051",), tests_passed=True, active=False),
    RuleState("r-failing", "Poisoning", ("atlas.aml.t0020",), tests_passed=False),
    RuleState("r-model", "Unsigned model", ("atlas.aml.t0010.003",), tests_passed=True),
]


def t(text: str) -> datetime:
    parsed = parse_time(text)
    assert parsed is not None
    return parsed


def alert(alert_id: str | None, first: str | None, created: str | None, rule: str = "r1",
          event_ids: tuple[str, ...] = ()) -> Alert:
    return Alert(alert_id, rule, f"Rule {rule}", None if first is None else t(first),
                 None if created is None else t(created), event_ids)


def response(alert_id: str, action: str, at: str, result: str = "applied", **extra: object) -> ResponseRecord:
    return ResponseRecord.model_validate({"alert_id": alert_id, "action": action, "at": at, "result": result, **extra})


@pytest.fixture(scope="module")
def full_report():
    return metrics_from_files(
        inventory=FIX / "inventory.yml", rules=[], alerts=FIX / "alerts.ndjson", responses=FIX / "responses.jsonl",
        incidents=FIX / "incidents.yml", events=FIX / "integrity.ndjson", generated_at=GENERATED,
    )


# ------------------------------------------------------------ visibility + coverage


def test_visibility_and_coverage_by_hand() -> None:
    inv = load_inventory(FIX / "inventory.yml")
    rows, vis, cov = asset_rows(inv, RULES, load_catalog())
    # sys-a: all documented. sys-b: owner lacks a person, model without lineage, no data source (n/a).
    # sys-c: no model (n/a), data source without provenance.
    assert [(r.system_id, r.owner, r.lineage, r.provenance, r.documented) for r in rows] == [
        ("sys-a", True, True, True, True),
        ("sys-b", False, False, None, False),
        ("sys-c", True, None, False, False),
    ]
    assert (vis.systems, vis.with_owner, vis.with_lineage, vis.lineage_applicable) == (3, 2, 1, 2)
    assert (vis.with_provenance, vis.provenance_applicable, vis.documented) == (1, 2, 1)
    assert (vis.percent, vis.owner_percent, vis.lineage_percent, vis.provenance_percent) == (33.3, 66.7, 50.0, 50.0)
    # sys-a: T0024 is not covered by rules tagging only T0024.002; T0051's rule is deprecated -> 1/3.
    # sys-b: T0020's rule fails its tests; T0010.003 (written in lower case) is covered -> 1/2.
    assert rows[0].applicable == ["AML.T0024", "AML.T0024.002", "AML.T0051"]
    assert rows[0].covered == ["AML.T0024.002"]
    assert rows[0].coverage_percent == 33.3
    assert rows[1].covered == ["AML.T0010.003"] and rows[1].coverage_percent == 50.0
    assert rows[2].applicable == [] and rows[2].coverage_percent is None
    assert (cov.covered_pairs, cov.pairs, cov.percent) == (2, 5, 40.0)
    assert cov.rules_counted == 3 and cov.rules_total == 5
    assert cov.rules_by_technique["AML.T0024.002"] == ["r-sub", "r-sub-2"]
    assert cov.unmapped_systems == ["sys-c"]


def test_a_parent_rule_does_not_cover_a_sub_technique() -> None:
    inv = Inventory(systems=[AISystem(id="s", name="S", criticality="low", atlas=["AML.T0024.002", "AML.T0024"])])
    rows, _, cov = asset_rows(inv, [RuleState("p", "Parent", ("atlas.aml.t0024",), True)], load_catalog())
    assert rows[0].covered == ["AML.T0024"] and cov.percent == 50.0


def test_coverage_counts_a_technique_once_per_asset_it_applies_to() -> None:
    systems = [AISystem(id=f"s{i}", name="S", criticality="low", atlas=atlas)
               for i, atlas in enumerate([["AML.T0051"], ["AML.T0051"], ["AML.T0051", "AML.T0020"]])]
    _, _, cov = asset_rows(Inventory(systems=systems), [RuleState("i", "I", ("atlas.aml.t0051",), True)],
                           load_catalog())
    assert (cov.covered_pairs, cov.pairs, cov.percent) == (3, 4, 75.0)
    assert (len(cov.covered_techniques), len(cov.techniques), cov.technique_percent) == (1, 2, 50.0)


def test_rule_states_runs_the_rule_tests_and_reads_status(tmp_path: Path) -> None:
    src = REPO / "tests" / "fixtures" / "rules" / "inference" / "logprobs_share_fixture.yml"
    (tmp_path / "a.yml").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    deprecated = src.read_text(encoding="utf-8").replace("status: test", "status: deprecated").replace(
        "0b7f3a52-2f1e-4b7a-9a57-3f1f4c0f9e01", "0b7f3a52-2f1e-4b7a-9a57-3f1f4c0f9e02")
    (tmp_path / "b.yml").write_text(deprecated, encoding="utf-8")
    states, findings = rule_states([tmp_path])
    assert findings == []
    assert [(s.tests_passed, s.active, s.counts) for s in states] == [(True, True, True), (True, False, False)]
    assert states[0].atlas_tags == ("atlas.aml.t0024.002", "atlas.exfiltration")


# ------------------------------------------------------------------------ MTTA


def test_mtta_by_hand_from_the_fixture(full_report) -> None:
    m = full_report.mtta
    assert (m.overall.count, m.overall.mean, m.overall.median) == (5, 636.0, 300.0)
    assert (m.overall.minimum, m.overall.maximum) == (60.0, 1800.0)
    assert m.alerts == 7 and m.errors == 2
    flood = next(r for r in m.per_rule if r.rule_id == FLOOD)
    assert (flood.stats.count, flood.stats.mean, flood.stats.median) == (2, 600.0, 600.0)
    assert [r.stats.mean for r in m.per_rule] == [1800.0, 600.0, 120.0, 60.0]  # slowest first
    kinds = {(i.kind, i.line) for i in full_report.issues if i.kind.startswith("mtta")}
    assert kinds == {("mtta-negative", 7), ("mtta", 8)}


def test_an_alert_raised_before_its_first_event_is_a_data_error_not_averaged() -> None:
    issues: list[DataIssue] = []
    m = mtta([alert("ok", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
              alert("bad", "2026-01-01T00:10:00Z", "2026-01-01T00:00:00Z")], issues)
    assert (m.overall.count, m.overall.mean, m.errors) == (1, 60.0, 1)
    assert "bad" in issues[0].message and "before its first event" in issues[0].message


def test_nested_and_flat_alerts_read_the_same() -> None:
    flat = {"event.kind": "alert", "event.id": "x", "event.created": "2026-01-01T00:05:00Z", "rule.id": "r",
            "aisoc.alert.first_event": "2026-01-01T00:00:00Z", "aisoc.alert.event_ids": ["e1"]}
    nested = {"event": {"kind": "alert", "id": "x", "created": "2026-01-01T00:05:00Z"}, "rule": {"id": "r"},
              "aisoc": {"alert": {"first_event": "2026-01-01T00:00:00Z", "event_ids": ["e1"]}}}
    assert Alert.from_doc(flat) == Alert.from_doc(nested)
    assert Alert.from_doc(flat).event_ids == ("e1",)


def test_duplicate_alert_ids_count_once_with_the_earliest_creation(full_report) -> None:
    issues: list[DataIssue] = []
    alerts = load_alerts(FIX / "alerts.ndjson", issues)
    assert [a.alert_id for a in alerts].count("al-001") == 1
    first = next(a for a in alerts if a.alert_id == "al-001")
    assert first.created == t("2026-03-02T10:05:00Z") and first.line == 1
    assert {(i.kind, i.line) for i in issues} == {("malformed", 9), ("not-alert", 10)}


# ------------------------------------------------------------------------ MTTR


def test_mttr_by_hand_from_the_fixture(full_report) -> None:
    r = full_report.mttr
    assert (r.overall.count, r.overall.mean, r.overall.median) == (5, 16506.0, 630.0)
    assert (r.alerts, r.contained, r.not_contained, r.errors) == (7, 5, ["al-006", "al-007"], 0)
    per = {k: (s.count, s.mean, s.median) for k, s in r.per_action.items()}
    assert per == {
        "throttle": (3, 510.0, 600.0),
        "revoke": (1, 2400.0, 2400.0),
        "rollback": (1, 1800.0, 1800.0),
        "quarantine": (1, 79200.0, 79200.0),
    }
    messages = [i.message for i in full_report.issues]
    assert any("al-999" in m and "not in the alerts file" in m for m in messages)
    assert any(i.line == 12 and "result" in i.message for i in full_report.issues)  # result: done


def test_mttr_uses_finished_and_skips_planned_failed_and_non_containment() -> None:
    alerts = [alert("a", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")]
    records = [
        response("a", "snapshot-evidence", "2026-01-01T00:01:00Z"),
        response("a", "throttle", "2026-01-01T00:02:00Z", result="planned"),
        response("a", "throttle", "2026-01-01T00:03:00Z", result="failed"),
        response("a", "throttle", "2026-01-01T00:03:00Z", result="rolled_back"),
        ResponseRecord.model_validate({"alert_id": "a", "action": "gateway.block_key", "result": "applied",
                                       "started": "2026-01-01T00:04:00Z", "finished": "2026-01-01T00:05:00Z"}),
    ]
    m = mttr(alerts, records, [])
    assert (m.overall.count, m.overall.mean) == (1, 300.0)
    assert list(m.per_action) == ["throttle"]


def test_containment_before_the_alert_is_a_data_error() -> None:
    issues: list[DataIssue] = []
    alerts = [alert("a", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")]
    m = mttr(alerts, [response("a", "rollback", "2026-01-01T00:30:00Z")], issues)
    assert m.overall.count == 0 and m.errors == 1 and m.contained == 0
    assert "before the alert was raised" in issues[0].message


@pytest.mark.parametrize(
    ("action", "playbook", "kind"),
    [
        ("throttle", None, "throttle"), ("gateway.rate_limit", None, "throttle"), ("block-key", None, "throttle"),
        ("mlflow.rollback_alias", None, "rollback"), ("set_alias", "rollback-model-alias", "rollback"),
        ("quarantine", None, "quarantine"), ("freeze-ingestion", None, "quarantine"),
        ("rotate", "rotate-api-key", "revoke"), ("revoke-tokens", None, "revoke"),
        ("snapshot", "snapshot-evidence", None), ("reattest", "reattest-model-artifacts", None),
    ],
)
def test_containment_types(action: str, playbook: str | None, kind: str | None) -> None:
    assert containment_type(action, playbook) == kind


def test_an_explicit_action_type_wins() -> None:
    rec = response("a", "custom-step", "2026-01-01T00:00:00Z", action_type="Isolate")
    assert rec.containment == "isolate"


# ------------------------------------------------------------------- integrity


def test_integrity_sla_by_hand_from_the_fixture(full_report) -> None:
    i = full_report.integrity
    assert (i.start, i.end, i.period_days) == (date(2026, 3, 1), date(2026, 3, 14), 14)
    assert (i.compliant_days(), i.percent()) == (12, 85.7)
    assert (i.compliant_days("model"), i.percent("model")) == (13, 92.9)
    assert (i.compliant_days("data"), i.percent("data")) == (13, 92.9)
    assert i.days_without_checks == 2
    out = [(d.day.day, d.model, d.data) for d in i.days if not d.compliant]
    assert out == [(9, "none", "out"), (11, "out", "ok")]
    status = {d.day.day: (d.model, d.data) for d in i.days}
    assert status[7] == status[8] == ("none", "none")
    assert status[4] == ("ok", "ok") and status[6] == ("ok", "ok") and status[12] == ("ok", "ok")
    remediated = {f.event_id: f.remediated_by for f in i.failures}
    assert set(remediated) == {"ev-sig-0304", "ev-art-0306", "ev-batch-0309", "ev-art-0311", "ev-batch-0312"}
    assert remediated["ev-sig-0304"].startswith("re-check passed")
    assert "al-004" in remediated["ev-art-0306"]
    assert remediated["ev-batch-0312"].startswith("re-check passed")
    assert remediated["ev-batch-0309"] is None and remediated["ev-art-0311"] is None
    assert any(i.line == 23 and "@timestamp" in i.message for i in full_report.issues)


def _ev(when: str, action: str = "data-batch-landed", **fields: object) -> tuple[int, dict[str, object]]:
    return 1, {"@timestamp": when, "event.action": action, **fields}


def test_integrity_failure_remediation_must_be_the_same_utc_day_and_the_same_subject() -> None:
    events = [
        _ev("2026-01-01T10:00:00Z", **{"aisoc.data.batch.id": "b1", "aisoc.data.hash_match": False}),
        _ev("2026-01-01T11:00:00Z", **{"aisoc.data.batch.id": "b2", "aisoc.data.hash_match": True}),  # other batch
        _ev("2026-01-02T10:00:00+02:00", **{"aisoc.data.batch.id": "b3", "aisoc.data.hash_match": False}),  # 08:00Z
        _ev("2026-01-02T09:00:00Z", **{"aisoc.data.batch.id": "b3", "aisoc.data.hash_match": True}),
        _ev("2026-01-03T10:00:00Z", **{"aisoc.data.batch.id": "b4", "aisoc.data.source_approved": "false"}),
    ]
    m = integrity_sla(events, [], [], [], start=date(2026, 1, 1), end=date(2026, 1, 4))
    assert [d.data for d in m.days] == ["out", "ok", "out", "none"]
    assert m.percent() == 50.0 and m.percent("model") == 100.0


def test_integrity_remediation_through_an_applied_containment_for_the_alert() -> None:
    fail = _ev("2026-01-01T10:00:00Z", "model-signature-verified", **{"event.id": "e1",
                                                                     "file.code_signature.exists": False})
    alerts = [alert("a1", "2026-01-01T10:00:00Z", "2026-01-01T10:01:00Z", event_ids=("e1",))]
    planned = [response("a1", "rollback", "2026-01-01T10:30:00Z", result="planned")]
    assert integrity_sla([fail], alerts, planned, []).days[0].model == "out"
    applied = [response("a1", "rollback", "2026-01-01T10:30:00Z")]
    assert integrity_sla([fail], alerts, applied, []).days[0].model == "ok"
    evidence_only = [response("a1", "snapshot", "2026-01-01T10:30:00Z")]
    assert integrity_sla([fail], alerts, evidence_only, []).days[0].model == "out"


@pytest.mark.parametrize(
    ("action", "fields", "failed"),
    [
        ("model-signature-verified", {"file.code_signature.exists": True, "file.code_signature.valid": True}, False),
        ("model-signature-verified", {"file.code_signature.trusted": False}, True),
        ("MODEL-SIGNATURE-VERIFIED", {"event.outcome": "failure"}, True),
        ("model-artifact-verified", {"aisoc.model.artifact.hash_match": True}, False),
        ("model-artifact-verified", {"aisoc.model.artifact.hash_match": [False]}, True),
        ("data-batch-landed", {"aisoc.data.hash_match": True, "aisoc.data.source_approved": True}, False),
        ("data-batch-landed", {"aisoc.data.source_approved": False}, True),
    ],
)
def test_what_counts_as_a_failed_check(action: str, fields: dict[str, object], failed: bool) -> None:
    m = integrity_sla([_ev("2026-01-01T10:00:00Z", action, **fields)], [], [], [])
    assert (len(m.failures) == 1) is failed
    assert m.days[0].compliant is not failed


def test_integrity_ignores_other_events_and_events_outside_the_period() -> None:
    events = [_ev("2026-01-01T10:00:00Z", "chat"),
              _ev("2025-12-31T23:59:59Z", **{"aisoc.data.hash_match": False})]
    m = integrity_sla(events, [], [], [], start=date(2026, 1, 1), end=date(2026, 1, 2))
    assert [d.data for d in m.days] == ["none", "none"] and m.percent() == 100.0
    assert integrity_sla([_ev("2026-01-01T10:00:00Z", "chat")], [], [], []).percent() is None


# ---------------------------------------------------------------------- escape


def test_escape_rate_by_hand(full_report) -> None:
    e = full_report.escape
    assert (e.incidents, e.by_business, e.percent, e.business_ids) == (4, 1, 25.0, ["INC-3"])


def test_incident_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "incidents.yml"
    path.write_text("incidents:\n  - id: I-1\n    opened: 2026-01-01T00:00:00Z\n    detected_by: customer\n"
                    "  - id: I-2\n    opened: 2026-01-02T00:00:00Z\n    detected_by: Business\n", encoding="utf-8")
    issues: list[DataIssue] = []
    incidents = load_incidents(path, issues)
    assert [i.id for i in incidents] == ["I-2"] and incidents[0].detected_by == "business"
    assert issues[0].line == 2 and "detected_by" in issues[0].message
    path.write_text("id: I-1\n", encoding="utf-8")
    with pytest.raises(MetricsInputError, match="expected a list of incidents"):
        load_incidents(path, [])
    path.write_text("- id: [\n", encoding="utf-8")
    with pytest.raises(MetricsInputError) as info:
        load_incidents(path, [])
    assert info.value.line == 2
    json_path = tmp_path / "incidents.json"
    json_path.write_text(json.dumps([{"id": 7, "opened": "2026-01-01T00:00:00Z", "detected_by": "soc"}]),
                         encoding="utf-8")
    assert load_incidents(json_path, [])[0].id == "7"


# ------------------------------------------------------------------ edge cases


def test_no_alerts_means_na_not_a_crash(tmp_path: Path) -> None:
    for name in ("alerts.ndjson", "responses.jsonl", "events.ndjson"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "incidents.yml").write_text("[]\n", encoding="utf-8")
    report = metrics_from_files(alerts=tmp_path / "alerts.ndjson", responses=tmp_path / "responses.jsonl",
                                incidents=tmp_path / "incidents.yml", events=tmp_path / "events.ndjson",
                                generated_at=GENERATED)
    assert report.mtta.overall.mean is None and report.mtta.overall.median is None
    assert report.mttr.overall.mean is None
    assert report.integrity.percent() is None and report.escape.percent is None
    data = metrics_json(report)
    for key in ("asset_visibility", "coverage", "mtta", "mttr", "integrity_sla", "escape_rate"):
        assert data["headline"][key]["value"] is None
        assert data["headline"][key]["display"] == "n/a"
    text = metrics_text(report)
    assert text.count("n/a") >= 6
    page = metrics_html(report)
    assert page.count('<div class="value">n/a</div>') == 6
    assert "No alert with usable times." in page and "No applied containment action." in page
    json.dumps(data)


def test_nothing_at_all_still_renders() -> None:
    report = compute_metrics(generated_at=GENERATED)
    assert all(getattr(report, k) is None for k in ("visibility", "coverage", "mtta", "mttr", "integrity", "escape"))
    assert "n/a" in metrics_text(report)
    assert metrics_html(report).count("n/a") >= 6
    assert metrics_json(report)["mtta"] is None


def test_empty_inventory_gives_na_not_zero() -> None:
    report = compute_metrics(inventory=Inventory(), rules=[], generated_at=GENERATED)
    assert report.visibility.percent is None and report.coverage.percent is None
    assert "The inventory lists no AI system." in metrics_html(report)


def test_missing_input_files_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MetricsInputError, match="cannot read file"):
        metrics_from_files(alerts=tmp_path / "missing.ndjson")


def test_json_array_files_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps([{"event": {"kind": "alert", "id": "a", "created": "2026-01-01T00:01:00Z"},
                                 "aisoc": {"alert": {"first_event": "2026-01-01T00:00:00Z"}}}, 3]), encoding="utf-8")
    issues: list[DataIssue] = []
    alerts = load_alerts(path, issues)
    assert len(alerts) == 1 and len(issues) == 1
    assert mtta(alerts, []).overall.mean == 60.0


def test_the_period_filters_alerts_incidents_and_integrity_days(full_report) -> None:
    report = metrics_from_files(alerts=FIX / "alerts.ndjson", responses=FIX / "responses.jsonl",
                                incidents=FIX / "incidents.yml", events=FIX / "integrity.ndjson",
                                period_start=date(2026, 3, 5), period_end=date(2026, 3, 9), generated_at=GENERATED)
    # al-002 (900 s), al-004 (60 s), al-005 (1800 s) were raised from 03-05 to 03-09
    assert (report.mtta.overall.count, report.mtta.overall.mean) == (3, 920.0)
    assert (report.escape.incidents, report.escape.by_business) == (3, 1)
    assert (report.integrity.period_days, report.integrity.compliant_days()) == (5, 4)
    assert (report.period_start, report.period_end) == (date(2026, 3, 5), date(2026, 3, 9))


def test_response_history_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join([
        json.dumps({"alert_id": "a", "action": "throttle", "at": "2026-01-01T00:00:00", "result": "Applied"}),
        json.dumps({"alert_id": "a", "action": "throttle", "result": "applied"}),
        json.dumps({"alert_id": "a", "action": "throttle", "at": "yesterday", "result": "applied"}),
        "[1, 2]",
    ]) + "\n", encoding="utf-8")
    issues: list[DataIssue] = []
    records = load_responses(path, issues)
    assert len(records) == 1 and records[0].when == t("2026-01-01T00:00:00Z")
    assert sorted((i.line, i.message) for i in issues)[0][1].startswith("no time")
    assert sorted(i.line for i in issues) == [2, 3, 4]


# ---------------------------------------------------------------------- outputs


def test_json_output(full_report) -> None:
    data = json.loads(json.dumps(metrics_json(full_report)))
    assert list(data["headline"]) == ["asset_visibility", "coverage", "mtta", "mttr", "integrity_sla", "escape_rate"]
    assert data["headline"]["mtta"]["value"] == 636.0 and data["headline"]["mtta"]["display"] == "10m 36s"
    assert data["mttr"]["per_action"]["throttle"]["median_seconds"] == 600.0
    assert data["integrity_sla"]["days"][8] == {"date": "2026-03-09", "compliant": False, "model": "none",
                                                "data": "out", "checks": 2, "failures": 1, "unremediated": 1}
    assert data["escape_rate"]["business_incidents"] == ["INC-3"]
    assert data["asset_visibility"]["owner"] == {"percent": 66.7, "count": 2, "of": 3}
    assert data["assets"][0]["coverage"]["uncovered_techniques"][0] == {"id": "AML.T0024",
                                                                        "name": "Exfiltration via AI Inference API"}
    assert data["period"] == {"start": "2026-03-01", "end": "2026-03-14"}
    assert data["generated_at"] == "2026-03-15T08:00:00Z"
    assert len(data["data_issues"]) == len(full_report.issues)


def test_text_output(full_report) -> None:
    text = metrics_text(full_report)
    assert "AI-SOC metrics (2026-03-01 to 2026-03-14)" in text
    assert re.search(r"MTTA \(signal to alert\)\s+10m 36s\s+median 5m over 5 alert", text)
    assert "throttle: mean 8m 30s, median 10m (3)" in text
    assert "[oooooo..#o#ooo]" in text
    assert "Found by the business: INC-3" in text
    assert "alerts.ndjson:7" in text


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_shows_every_part(full_report) -> None:
    page = metrics_html(full_report)
    parser = _Collect()
    parser.feed(page)
    tags = [tag for tag, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    for _, attrs in parser.tags:
        for name, value in attrs.items():
            assert not (name in {"src", "href"} and value), f"external reference {name}={value}"
            assert not name.startswith("on")
    assert "@import" not in page and "url(" not in page
    text = " ".join(parser.text)
    for label in ("Asset visibility", "ATLAS coverage", "MTTA (signal to alert)", "MTTR (alert to containment)",
                  "Integrity SLA", "Escape rate"):
        assert label in text
    for value in ("33.3%", "0%", "10m 36s", "4h 35m", "85.7%", "25%"):  # no rule pack given: coverage 0%
        assert f'<div class="value">{value}</div>' in page
    assert text.count("Fully documented LLM app") == 1 and "no person" in text
    assert page.count('class="d ok"') + page.count('class="d out"') + page.count('class="d none"') == 3 * 14
    assert page.count('class="d out"') == 4  # two overall, one model, one data
    assert "API key request rate at flood level" in text and "quarantine" in text
    assert "2026-03-09" in text and "ev-batch-0309" in text  # the open failure is listed


def test_html_escapes_every_input_text(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    inv = Inventory(systems=[AISystem(id="s", name=evil, criticality="low", owner=Owner(team=evil, person=evil),
                                      atlas=["AML.T0051", evil])])
    alerts = [Alert("a<b>", "r<i>", evil, t("2026-01-01T00:00:00Z"), t("2026-01-01T00:01:00Z"))]
    incidents = [Incident.model_validate({"id": evil, "opened": "2026-01-01T00:00:00Z", "detected_by": "business"})]
    report = compute_metrics(inventory=inv, rules=[], alerts=alerts, responses=[], incidents=incidents,
                             events=[(1, {"@timestamp": "2026-01-01T00:00:00Z", "event.action": "data-batch-landed",
                                          "aisoc.data.dataset": evil, "aisoc.data.hash_match": False})],
                             issues=[DataIssue(evil, evil, 1)], generated_at=GENERATED)
    page = metrics_html(report)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_formatting_helpers() -> None:
    assert [fmt_duration(s) for s in (None, 0, 59.6, 60, 270, 3600, 7500, 86400 + 3 * 3600)] == [
        "n/a", "0s", "1m", "1m", "4m 30s", "1h 00m", "2h 05m", "1d 3h"]
    assert [fmt_pct(v) for v in (None, 0.0, 25.0, 33.3)] == ["n/a", "0%", "25%", "33.3%"]
    assert pct(1, 0) is None and pct(0, 3) == 0.0 and pct(5, 3) == 100.0


def test_the_example_inventory_with_the_shipped_rule_pack() -> None:
    report = metrics_from_files(inventory=REPO / "examples" / "inventory.yml", generated_at=GENERATED)
    assert report.visibility.systems == 6 and report.visibility.documented == 2
    cov = report.coverage
    assert cov is not None and cov.rules_counted > 0 and cov.percent is not None and 0 < cov.percent <= 100
    from aisoc.atlas.catalog import load_catalog
    from aisoc.detect.ruletest import test_rule_sqlite
    from aisoc.inventory import load_inventory
    from aisoc.rules.loader import load_rules

    catalog = load_catalog()
    rules, _ = load_rules([REPO / "rules"])
    covered = {getattr(catalog.resolve_tag(t), "id", None) for r in rules if test_rule_sqlite(r).passed
               for t in r.atlas_tags}
    for system in load_inventory(REPO / "examples" / "inventory.yml").systems:
        row = next(r for r in report.assets if r.system_id == system.id)
        assert sorted(row.uncovered) == sorted(t for t in system.atlas if t not in covered), system.id
    assert report.sources["rules"].endswith("rules")  # the shipped pack by default


# ------------------------------------------------------------------ properties

BASE = datetime(2026, 1, 1, tzinfo=UTC)
offsets = st.integers(min_value=-3 * 86400, max_value=3 * 86400)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10 * 86400), offsets, st.sampled_from(["r1", "r2", "r3"])), max_size=30))
def test_mtta_is_never_negative_and_inverted_alerts_are_errors(items: list[tuple[int, int, str]]) -> None:
    alerts = [Alert(f"a{i}", rule, rule, BASE + timedelta(seconds=first), BASE + timedelta(seconds=first + delta))
              for i, (first, delta, rule) in enumerate(items)]
    issues: list[DataIssue] = []
    m = mtta(alerts, issues)
    inverted = sum(delta < 0 for _, delta, _ in items)
    assert m.errors == inverted == len(issues)
    assert m.overall.count == len(items) - inverted
    for stats in [m.overall, *(r.stats for r in m.per_rule)]:
        assert stats.mean is None or stats.mean >= 0
        assert stats.median is None or stats.median >= 0
        if stats.count:
            assert stats.minimum <= stats.median <= stats.maximum


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), offsets, st.sampled_from(["throttle", "rollback", "snapshot", "quarantine"]),
                       st.sampled_from(["applied", "failed", "planned", "rolled_back"])), max_size=20),
    st.integers(1, 5),
)
def test_mttr_is_never_negative(items: list[tuple[int, int, str, str]], n_alerts: int) -> None:
    alerts = [Alert(f"a{i}", "r", "r", BASE, BASE + timedelta(hours=i)) for i in range(n_alerts)]
    records = [ResponseRecord(alert_id=f"a{a}", action=action, result=result,
                              at=BASE + timedelta(days=1, seconds=off)) for a, off, action, result in items]
    m = mttr(alerts, records, [])
    for stats in [m.overall, *m.per_action.values()]:
        assert stats.mean is None or stats.mean >= 0
    assert m.contained + len(m.not_contained) <= n_alerts


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20 * 86400), st.sampled_from(
    ["model-signature-verified", "model-artifact-verified", "data-batch-landed", "other"]),
    st.booleans(), st.sampled_from(["b1", "b2"])), max_size=40))
def test_integrity_percentages_are_in_range(items: list[tuple[int, str, bool, str]]) -> None:
    events = [(i, {"@timestamp": (BASE + timedelta(seconds=s)).isoformat(), "event.action": action,
                   "aisoc.model.artifact.hash_match": ok, "file.code_signature.valid": ok,
                   "aisoc.data.hash_match": ok, "aisoc.data.batch.id": batch, "aisoc.model.name": batch})
              for i, (s, action, ok, batch) in enumerate(items)]
    m = integrity_sla(events, [], [], [])
    for dim in (None, "model", "data"):
        value = m.percent(dim)
        assert value is None or 0.0 <= value <= 100.0
        assert 0 <= m.compliant_days(dim) <= m.period_days
    assert m.compliant_days() <= min(m.compliant_days("model"), m.compliant_days("data"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["soc", "business"]), max_size=30), st.integers(0, 50), st.integers(0, 50))
def test_escape_and_pct_are_in_range(by: list[str], part: int, whole: int) -> None:
    incidents = [Incident(id=str(i), opened=BASE, detected_by=b) for i, b in enumerate(by)]
    value = escape_rate(incidents).percent
    assert (value is None) == (not by)
    assert value is None or 0.0 <= value <= 100.0
    p = pct(part, whole)
    assert p is None or 0.0 <= p <= 100.0


def test_load_events_reads_nested_events() -> None:
    events = load_events(FIX / "integrity.ndjson", [])
    nested = [e for _, e in events if e.get("event.id") == "ev-sig-0313"]
    assert nested and nested[0]["file.code_signature.valid"] is True
