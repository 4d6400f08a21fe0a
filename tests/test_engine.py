"""The embedded engine keeps Sigma's meaning: case-insensitive strings, numbers, nulls, correlations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aisoc.atlas.catalog import load_catalog
from aisoc.detect.alerts import suppress
from aisoc.detect.engine import run_rule
from aisoc.detect.ruletest import test_rule_sqlite as run_rule_tests
from aisoc.detect.runner import DetectResult, detect, load_events
from aisoc.detect.store import EventStore, StoreError
from aisoc.rules.loader import load_rule_file
from tests.conftest import CORRELATION_RULE, SINGLE_RULE

RULE_HEAD = """title: Engine semantics probe
id: 6a0d1c9e-1111-4c3e-9a1b-000000000001
status: test
description: probe
author: aisoc
date: 2026-11-26
falsepositives: [none]
level: medium
tags: [atlas.aml.t0010.003]
logsource: {product: aisoc, category: model}
"""


def _rule(tmp_path: Path, detection: str):
    path = tmp_path / "probe_rule.yml"
    path.write_text(RULE_HEAD + detection)
    rule, findings = load_rule_file(path)
    assert rule is not None, findings
    return rule


def _ids(rule, events) -> set[str]:
    store = EventStore()
    store.insert([{"@timestamp": "2026-02-01T00:00:00Z", **e} for e in events])
    return {eid for m in run_rule(store, rule) for eid in m.event_ids}


def test_string_match_is_case_insensitive_unless_cased(tmp_path: Path) -> None:
    rule = _rule(tmp_path, "detection:\n  s: {event.action: model-artifact-registered}\n  condition: s\n")
    events = [
        {"event.id": "a", "event.action": "MODEL-ARTIFACT-Registered"},
        {"event.id": "b", "event.action": "model-artifact-registered"},
        {"event.id": "c", "event.action": "model-artifact-registered-v2"},
    ]
    assert _ids(rule, events) == {"a", "b"}
    cased = _rule(tmp_path, "detection:\n  s: {event.action|cased: model-artifact-registered}\n  condition: s\n")
    assert _ids(cased, events) == {"b"}


def test_wildcards_and_contains(tmp_path: Path) -> None:
    rule = _rule(tmp_path, "detection:\n  s: {aisoc.model.source: 's3://*/tmp/*'}\n  condition: s\n")
    events = [
        {"event.id": "a", "aisoc.model.source": "S3://bucket/TMP/model.pkl"},
        {"event.id": "b", "aisoc.model.source": "s3://bucket/models/model.pkl"},
        {"event.id": "c", "aisoc.model.source": "s3:/x/tmp/"},
    ]
    assert _ids(rule, events) == {"a"}


def test_numeric_comparisons_compare_numbers(tmp_path: Path) -> None:
    rule = _rule(tmp_path, "detection:\n  s: {aisoc.signal.value|gt: 9}\n  condition: s\n")
    events = [
        {"event.id": "a", "aisoc.signal.value": 10},
        {"event.id": "b", "aisoc.signal.value": 9},
        {"event.id": "c", "aisoc.signal.value": 100.5},
        {"event.id": "d", "aisoc.signal.value": "10"},  # a numeric string is still a number (NUMERIC affinity)
    ]
    assert _ids(rule, events) == {"a", "c", "d"}


def test_null_means_missing_and_booleans_match(tmp_path: Path) -> None:
    rule = _rule(tmp_path, "detection:\n  s: {aisoc.model.lineage.run_id: null}\n"
                           "  t: {aisoc.model.lineage.present: false}\n  condition: s or t\n")
    events = [
        {"event.id": "a", "aisoc.model.name": "fraud"},
        {"event.id": "b", "aisoc.model.lineage.run_id": "r1", "aisoc.model.lineage.present": True},
        {"event.id": "c", "aisoc.model.lineage.run_id": "r2", "aisoc.model.lineage.present": False},
    ]
    assert _ids(rule, events) == {"a", "c"}


def test_not_on_a_missing_field_does_not_match_everything_wrongly(tmp_path: Path) -> None:
    rule = _rule(tmp_path, "detection:\n  s: {event.action: x}\n  f: {user.name: svc-pipeline}\n"
                           "  condition: s and not f\n")
    events = [
        {"event.id": "a", "event.action": "x"},
        {"event.id": "b", "event.action": "x", "user.name": "SVC-PIPELINE"},
        {"event.id": "c", "event.action": "x", "user.name": "alice"},
    ]
    assert _ids(rule, events) == {"a", "c"}


def test_correlation_groups_and_windows() -> None:
    rule, _ = load_rule_file(CORRELATION_RULE)
    store = EventStore()
    base = {"aisoc.llm.guardrail.outcome": "blocked", "aisoc.llm.guardrail.name": "prompt-injection"}
    events = [{**base, "event.id": f"k1-{i}", "@timestamp": f"2026-02-01T00:0{i}:00Z", "aisoc.api_key.hash": "K1"}
              for i in range(5)]
    events += [{**base, "event.id": f"k2-{i}", "@timestamp": f"2026-02-01T00:0{i}:00Z", "aisoc.api_key.hash": "k2"}
               for i in range(4)]
    store.insert(events)
    matches = run_rule(store, rule)
    assert matches, "five blocked injections in four minutes must fire"
    assert {m.entity["aisoc.api_key.hash"] for m in matches} == {"k1"}  # grouping is case-insensitive
    assert {eid for m in matches for eid in m.event_ids} == {f"k1-{i}" for i in range(5)}


def test_insert_is_idempotent_on_event_id_and_rejects_bad_events() -> None:
    store = EventStore()
    event = {"event.id": "same", "@timestamp": "2026-02-01T00:00:00Z", "event.action": "x"}
    assert store.insert([event]) == 1
    assert store.insert([event]) == 0
    assert store.count() == 1
    with pytest.raises(StoreError, match="event.id"):
        store.insert([{"@timestamp": "2026-02-01T00:00:00Z"}])
    with pytest.raises(StoreError, match="@timestamp"):
        store.insert([{"event.id": "no-time"}])


def test_a_rule_edited_to_match_nothing_fails_its_tests(tmp_path: Path) -> None:
    rule, _ = load_rule_file(SINGLE_RULE)
    assert run_rule_tests(rule).passed
    broken = tmp_path / "broken_rule.yml"
    broken.write_text(SINGLE_RULE.read_text().replace("api_key_logprobs_share\n", "no_such_signal\n", 1))
    rule, _ = load_rule_file(broken)
    result = run_rule_tests(rule)
    assert not result.passed
    failed = [c for c in result.cases if not c.passed]
    assert {c.expect for c in failed} == {"match"} and len(failed) == 3
    assert failed[0].offending_event is not None


def test_a_rule_that_fires_on_a_look_alike_fails_with_the_offending_event(tmp_path: Path) -> None:
    loose = tmp_path / "loose_rule.yml"
    loose.write_text(SINGLE_RULE.read_text().replace("    aisoc.signal.sample_size|gte: 50\n", ""))
    rule, _ = load_rule_file(loose)
    result = run_rule_tests(rule)
    failed = [c for c in result.cases if not c.passed]
    assert [c.name for c in failed] == ["too small a sample"]
    assert failed[0].offending_event["aisoc.signal.sample_size"] == 12


def test_detect_rejects_malformed_lines_with_their_line_numbers(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    good = {"event.id": "e1", "@timestamp": "2026-02-01T00:00:00Z", "event.kind": "metric",
            "aisoc.signal.name": "api_key_logprobs_share", "aisoc.signal.value": 0.95,
            "aisoc.signal.sample_size": 80, "aisoc.signal.entity": "key-1"}
    events.write_text("\n".join([json.dumps(good), "{not json", "[1, 2]",
                                 json.dumps({"event.id": "e2"}), json.dumps({**good, "event.id": "e3"})]) + "\n")
    rule, _ = load_rule_file(SINGLE_RULE)
    store = EventStore()
    result = DetectResult()
    load_events(store, events, result)
    assert result.events_loaded == 2
    assert [(r.line, r.reason.split(":")[0]) for r in result.rejected] == [
        (2, "not JSON"), (3, "a JSON object per line is expected"), (4, "event has no '@timestamp'")]
    detect(store, [rule], load_catalog(), result=result)
    assert len(result.alerts) == 1  # two hits on one entity within the window: one alert
    alert = result.alerts[0]
    assert alert["aisoc.alert.count"] == 2
    assert alert["aisoc.alert.event_ids"] == ["e1", "e3"]
    assert alert["threat.technique.subtechnique.id"] == ["AML.T0024.002"]
    assert alert["threat.technique.id"] == ["AML.T0024"]
    assert alert["threat.tactic.reference"] == ["https://atlas.mitre.org/tactics/AML.TA0010/"]
    assert alert["event.kind"] == "alert" and alert["aisoc.signal.entity"] == "key-1"


def test_suppression_opens_a_new_alert_after_the_window() -> None:
    rule, _ = load_rule_file(SINGLE_RULE)
    store = EventStore()
    base = {"event.kind": "metric", "aisoc.signal.name": "api_key_logprobs_share", "aisoc.signal.value": 0.9,
            "aisoc.signal.sample_size": 80, "aisoc.signal.entity": "key-1"}
    store.insert([{**base, "event.id": "t0", "@timestamp": "2026-02-01T00:00:00Z"},
                  {**base, "event.id": "t1", "@timestamp": "2026-02-01T00:30:00Z"},
                  {**base, "event.id": "t2", "@timestamp": "2026-02-01T05:00:00Z"},
                  {**base, "event.id": "o1", "@timestamp": "2026-02-01T00:10:00Z", "aisoc.signal.entity": "key-2"}])
    alerts = suppress(run_rule(store, rule))
    assert sorted((a.match.entity["aisoc.signal.entity"], a.count) for a in alerts) == [
        ("key-1", 1), ("key-1", 2), ("key-2", 1)]


def test_multi_valued_fields_match_on_any_value(tmp_path: Path) -> None:
    rule = _rule(tmp_path, "detection:\n  s: {aisoc.supply_chain.scan.operator: exec}\n  condition: s\n")
    events = [
        {"event.id": "a", "aisoc.supply_chain.scan.operator": ["eval", "EXEC"], "event.category": ["file", "malware"]},
        {"event.id": "b", "aisoc.supply_chain.scan.operator": ["exec"]},
        {"event.id": "c", "aisoc.supply_chain.scan.operator": ["eval", "system"]},
    ]
    store = EventStore()
    store.insert([{"@timestamp": "2026-02-01T00:00:00Z", **e} for e in events])
    matches = run_rule(store, rule)
    assert sorted(m.event_ids[0] for m in matches) == ["a", "b"]  # one match per event, not per stored row
    assert store.count() == 3
    assert store.insert([{"@timestamp": "2026-02-01T00:00:00Z", **events[0]}]) == 0
