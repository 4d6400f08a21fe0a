"""`aisoc test --es URL`: every rule's test events on a real Elasticsearch, judged like on SQLite.

All cases go into one throw-away namespace (`logs-aisoc.<layer>-aisoctest<random>`) laid out on one
timeline, each rule is evaluated over each case's own time range, and the namespace's data
streams are deleted afterwards.
"""

from __future__ import annotations

import uuid

from elasticsearch import ApiError, Elasticsearch

from aisoc.deploy import deploy_elasticsearch
from aisoc.detect.es_engine import ElasticsearchEngine, UnsupportedOnElasticsearch
from aisoc.detect.ruletest import RuleTestResult, lay_out_scenarios, record_case
from aisoc.rules.loader import RuleFile
from aisoc.sinks.deadletter import DeadLetterStore
from aisoc.sinks.elasticsearch import ElasticsearchSink


def test_rules_elasticsearch(client: Elasticsearch, rules: list[RuleFile], keep: bool = False) -> list[RuleTestResult]:
    deploy_elasticsearch(client)
    namespace = f"aisoctest{uuid.uuid4().hex[:10]}"
    scenarios = lay_out_scenarios(rules)
    dead = DeadLetterStore()
    sink = ElasticsearchSink(client, dead, namespace=namespace)
    events = []
    for rule, _, case_events in scenarios:
        for event in case_events:
            event.setdefault("event.dataset", f"aisoc.{rule.layer}")
        events += case_events
    try:
        sink.send(events)
        client.indices.refresh(index=f"logs-aisoc.*-{namespace}", ignore_unavailable=True)
        engine = ElasticsearchEngine(client, namespace)
        results: dict[str, RuleTestResult] = {}
        for rule, index, case_events in scenarios:
            result = results.setdefault(
                rule.rule_id, RuleTestResult(rule.rule_id, rule.title, str(rule.path), "elasticsearch"))
            if result.error:
                continue
            case = rule.meta.tests[index]
            ids = {e["event.id"] for e in case_events}
            rejected = [r for r in dead.list(10_000) if any(i in r.raw.decode() for i in ids)]
            if rejected:
                result.error = f"case {case.name!r}: Elasticsearch rejected a test event: {rejected[0].reason}"
                continue
            start = min(e["@timestamp"] for e in case_events)
            end = max(e["@timestamp"] for e in case_events)
            try:
                matches = engine.run_rule(rule, start, end)
            except UnsupportedOnElasticsearch as exc:
                result.error = str(exc)
                continue
            matched = sorted({eid for m in matches for eid in m.event_ids if eid in ids})
            record_case(result, case.name, case.expect, case_events, matched)
        return list(results.values())
    finally:
        if not keep:
            _drop_namespace(client, namespace)


def _drop_namespace(client: Elasticsearch, namespace: str) -> None:
    """Delete the test data streams (best effort: a minimal cluster without the data-stream module
    has no delete API for them; their unique namespace keeps them out of everything else)."""
    pattern = f"logs-aisoc.*-{namespace}"
    for stream in client.indices.resolve_index(name=pattern).get("data_streams", []):
        try:
            client.indices.delete_data_stream(name=stream["name"])
        except ApiError:
            return
