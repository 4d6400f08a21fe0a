"""Compile targets: every built-in target converts single-event rules; limits are reported, not raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisoc.compile.targets import (
    BUILTIN_TARGETS,
    KIBANA,
    Compiled,
    UnknownTargetError,
    available_targets,
    compile_with,
    resolve_target,
)
from aisoc.detect.store import EventStore
from aisoc.rules.fields import rule_fields
from aisoc.rules.loader import RuleFile, load_rule_file, load_rules

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kibana"
RULES, _ = load_rules([FIXTURES])
SINGLE = [r for r in RULES if not r.is_correlation]
CORRELATIONS = [r for r in RULES if r.is_correlation]


def _fixture(name: str) -> RuleFile:
    rule, findings = load_rule_file(FIXTURES / name)
    assert rule is not None, findings
    return rule


def test_fixtures_cover_both_kinds() -> None:
    assert len(SINGLE) >= 2 and len(CORRELATIONS) >= 4


@pytest.mark.parametrize("target", sorted(BUILTIN_TARGETS))
@pytest.mark.parametrize("rule", SINGLE, ids=lambda r: r.path.name)
def test_every_target_converts_single_event_rules(rule: RuleFile, target: str) -> None:
    compiled = compile_with(rule, BUILTIN_TARGETS[target])
    assert compiled.ok, compiled.error
    assert compiled.query
    assert (compiled.rule_id, compiled.title, compiled.target) == (rule.rule_id, rule.title, target)


def test_dsl_is_a_query_dsl_object() -> None:
    compiled = compile_with(_fixture("single_prompt_injection.yml"), BUILTIN_TARGETS["dsl"])
    assert isinstance(compiled.query, dict) and "query" in compiled.query


def test_esql_and_eql_name_the_layer_data_stream() -> None:
    rule = _fixture("single_two_tactics.yml")
    assert str(compile_with(rule, BUILTIN_TARGETS["esql"]).query).startswith("from logs-aisoc.data-* ")
    assert str(compile_with(rule, BUILTIN_TARGETS["eql"]).query).startswith("any where ")


@pytest.mark.parametrize("target", ["lucene", "dsl"])
@pytest.mark.parametrize("rule", CORRELATIONS, ids=lambda r: r.path.name)
def test_lucene_and_dsl_report_correlations_as_errors(rule: RuleFile, target: str) -> None:
    compiled = compile_with(rule, BUILTIN_TARGETS[target])  # must not raise
    assert isinstance(compiled, Compiled)
    assert not compiled.ok and compiled.query is None
    assert compiled.error and compiled.error.startswith(f"{target} cannot express this rule")


def test_unknown_target_lists_the_choices() -> None:
    with pytest.raises(UnknownTargetError) as info:
        resolve_target("no-such-target")
    message = str(info.value)
    assert "no-such-target" in message
    for name in [*BUILTIN_TARGETS, KIBANA]:
        assert name in message
    assert set(BUILTIN_TARGETS) | {KIBANA} <= set(available_targets())
    assert isinstance(info.value, ValueError)


def test_builtin_targets_resolve_to_themselves() -> None:
    for name, target in BUILTIN_TARGETS.items():
        assert resolve_target(name) is target


# ------------------------------------------------------------------------------- SQLite


def _run(store: EventStore, rule: RuleFile) -> list[dict]:
    compiled = compile_with(rule, BUILTIN_TARGETS["sqlite"])
    assert compiled.ok, compiled.error
    store.ensure_columns(rule_fields(rule))
    return store.query(str(compiled.query))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.path.name)
def test_sqlite_output_runs_in_sqlite(rule: RuleFile) -> None:
    compiled = compile_with(rule, BUILTIN_TARGETS["sqlite"])
    if rule.path.name.startswith("unsupported_") and not compiled.ok:
        assert "cannot express" in str(compiled.error)
        return
    store = EventStore()
    try:
        assert _run(store, rule) == []  # an empty store matches nothing
    finally:
        store.close()


def test_sqlite_single_event_rule_matches_the_attack_only() -> None:
    store = EventStore()
    base = {"@timestamp": "2026-01-01T00:00:00Z", "event.action": "llm-request",
            "aisoc.llm.guardrail.outcome": "blocked", "aisoc.api_key.hash": "k1"}
    store.insert([
        {**base, "event.id": "hit", "aisoc.llm.guardrail.name": "Prompt-Injection-Detector"},
        {**base, "event.id": "red-team", "aisoc.llm.guardrail.name": "injection",
         "aisoc.api_key.team": "red-team"},
        {**base, "event.id": "other-guardrail", "aisoc.llm.guardrail.name": "pii"},
        {**base, "event.id": "passed", "aisoc.llm.guardrail.name": "injection",
         "aisoc.llm.guardrail.outcome": "passed"},
    ])
    rows = _run(store, _fixture("single_prompt_injection.yml"))
    assert [row["event.id"] for row in rows] == ["hit"]
    store.close()


def test_sqlite_event_count_gt_needs_more_than_the_count() -> None:
    store = EventStore()
    events = []
    for key, count in (("attacker", 101), ("heavy-but-legit", 100)):
        for i in range(count):
            events.append({
                "event.id": f"{key}-{i}", "@timestamp": f"2026-01-01T00:{i // 20:02d}:{i % 20:02d}Z",
                "event.action": "llm-request", "aisoc.llm.logprobs_requested": True,
                "aisoc.api_key.hash": key,
            })
    store.insert(events)
    rows = _run(store, _fixture("threshold_event_count.yml"))
    assert rows, "101 requests within 10 minutes must match"
    assert all("heavy-but-legit" not in str(row.get("group_keys")) for row in rows)
    assert any("attacker" in str(row.get("group_keys")) for row in rows)
    store.close()
