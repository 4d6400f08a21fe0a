"""aisoc against a real Elasticsearch node: deploy, sink, parity with the embedded engine, runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from elasticsearch import Elasticsearch

from aisoc.atlas.catalog import load_catalog
from aisoc.compile.kibana import kibana_ndjson
from aisoc.deploy import deploy_elasticsearch, kibana_import_request
from aisoc.detect.engine import run_rule
from aisoc.detect.es_engine import ElasticsearchEngine
from aisoc.detect.es_ruletest import test_rules_elasticsearch as run_on_es
from aisoc.detect.es_runner import Checkpoint, ElasticsearchRunner
from aisoc.detect.store import EventStore
from aisoc.rules.loader import load_rule_file, load_rules
from aisoc.rules.model import normalize_timestamp
from aisoc.schema.templates import COMPONENT_TEMPLATE
from aisoc.sinks.deadletter import DeadLetterStore
from aisoc.sinks.elasticsearch import ElasticsearchSink, SinkUnavailable, field_value
from aisoc.testing.es_node import ElasticsearchNode
from tests.conftest import CORRELATION_RULE, FIXTURE_RULES, REPO, SHARED, SINGLE_RULE


@pytest.fixture(scope="module")
def es(es_url: str) -> Elasticsearch:
    client = Elasticsearch(es_url, request_timeout=60)
    deploy_elasticsearch(client)
    return client


def _ns() -> str:
    return "t" + uuid.uuid4().hex[:10]


def _count(es: Elasticsearch, pattern: str) -> int:
    es.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    return int(es.count(index=pattern, ignore_unavailable=True, allow_no_indices=True)["count"])


# ------------------------------------------------------------------------------------------ deploy


def test_deploy_is_idempotent_and_dry_run_changes_nothing(es: Elasticsearch) -> None:
    assert not deploy_elasticsearch(es).changed  # the module fixture already deployed
    stale = es.cluster.get_component_template(name=COMPONENT_TEMPLATE)["component_templates"][0]
    body = stale["component_template"]
    body["_meta"]["aisoc_hash"] = "stale"
    es.cluster.put_component_template(name=COMPONENT_TEMPLATE, template=body["template"], meta=body["_meta"])
    plan = deploy_elasticsearch(es, dry_run=True)
    assert [s.action for s in plan.steps if s.kind == "component_template"] == ["update"]
    current = es.cluster.get_component_template(name=COMPONENT_TEMPLATE)["component_templates"][0]
    assert current["component_template"]["_meta"]["aisoc_hash"] == "stale"  # dry run wrote nothing
    assert deploy_elasticsearch(es).changed
    again = deploy_elasticsearch(es)
    assert not again.changed and all(s.action in ("unchanged", "skipped") for s in again.steps)


def test_deployed_templates_make_keyword_matching_case_insensitive(es: Elasticsearch) -> None:
    ns = _ns()
    sink = ElasticsearchSink(es, DeadLetterStore(), namespace=ns, refresh=True)
    sink.send([{"event.id": "cv1", "@timestamp": "2026-03-01T00:00:00Z", "event.dataset": "aisoc.model",
                "event.action": "MODEL-ARTIFACT-Registered"}])
    hits = es.search(index=f"logs-aisoc.model-{ns}", q="event.action:model\\-artifact\\-registered")["hits"]["hits"]
    assert [h["_source"]["event"]["action"] for h in hits] == ["MODEL-ARTIFACT-Registered"]  # _source untouched


def test_kibana_import_request_follows_the_documented_api() -> None:
    spec = yaml.safe_load((SHARED / "elastic" / "kibana_detections_api_2023_10_31.yaml").read_text())
    rules, _ = load_rules([FIXTURE_RULES])
    ndjson, compiled = kibana_ndjson(rules, load_catalog(), {})
    request = kibana_import_request("https://kibana.example:5601/", ndjson)
    path = request["url"].removeprefix("https://kibana.example:5601")
    operation = spec["paths"][path][request["method"].lower()]
    documented = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    assert set(request["params"]) <= documented
    body = operation["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert set(request["files"]) <= set(body["multipart/form-data"]["schema"]["properties"])
    name, content, _ = request["files"]["file"]
    assert name.endswith(".ndjson")
    lines = [json.loads(line) for line in content.decode().splitlines()]
    assert {line["rule_id"] for line in lines} == {c.rule_id for c in compiled if c.ok}
    assert request["headers"]["kbn-xsrf"]


# ------------------------------------------------------------------------------------------ sink


def test_sink_stores_each_event_once_and_dead_letters_what_it_cannot_store(es: Elasticsearch) -> None:
    ns = _ns()
    dead = DeadLetterStore()
    sink = ElasticsearchSink(es, dead, namespace=ns, batch_size=7, max_event_bytes=64 * 1024)
    good = [{"event.id": f"g{i}", "@timestamp": "2026-03-01T00:00:00Z", "event.dataset": "aisoc.inference",
             "aisoc.signal.value": i} for i in range(20)]
    conflict = {"event.id": "bad-type", "@timestamp": "2026-03-01T00:00:00Z", "event.dataset": "aisoc.inference",
                "aisoc.signal.value": "not a number"}
    oversized = {"event.id": "too-big", "@timestamp": "2026-03-01T00:00:00Z", "event.dataset": "aisoc.inference",
                 "message": "x" * 100_000}
    no_id = {"@timestamp": "2026-03-01T00:00:00Z", "event.dataset": "aisoc.inference"}
    first = sink.send([*good[:10], conflict, oversized, no_id, *good[10:]])
    assert (first.created, first.duplicates, first.dead_lettered) == (20, 0, 3)
    again = sink.send(good)  # a redelivery, as after a crash before the acknowledgement
    assert (again.created, again.duplicates) == (0, 20)
    assert _count(es, f"logs-aisoc.*-{ns}") == 20
    reasons = {field_value(json.loads(d.raw), "event.id"): d.reason for d in dead.list()}
    assert "aisoc.signal.value" in reasons["bad-type"] and "parse" in reasons["bad-type"]
    assert "over the 65536 cap" in reasons["too-big"]
    assert "no event.id" in reasons[None]


def test_sink_keeps_every_event_while_elasticsearch_is_down(tmp_path: Path) -> None:
    node = ElasticsearchNode().start()
    try:
        client = Elasticsearch(node.url, request_timeout=10, max_retries=0)
        deploy_elasticsearch(client)
        sink = ElasticsearchSink(client, DeadLetterStore(), namespace="fault", batch_size=500,
                                 max_retries=2, backoff_initial=0.05)
        events = [{"event.id": f"f{i}", "@timestamp": "2026-03-01T00:00:00Z", "event.dataset": "aisoc.data",
                   "aisoc.data.batch.rows": i} for i in range(5000)]
        assert sink.send(events[:2000]).created == 2000
        node.kill()
        with pytest.raises(SinkUnavailable) as down:
            sink.send(events[2000:])
        assert len(down.value.pending) >= 500  # the caller still holds what was not delivered
        pending_ids = {e["event.id"] for e in down.value.pending}
        node.restart()
        patient = ElasticsearchSink(client, DeadLetterStore(), namespace="fault", max_retries=10,
                                    backoff_initial=0.2)
        # deliver the rest, including whatever the failed attempt may have half-written: no duplicates
        result = patient.send([e for e in events[2000:]])
        assert result.created + result.duplicates == 3000
        assert pending_ids <= {e["event.id"] for e in events[2000:]}
        assert _count(client, "logs-aisoc.data-fault") == 5000
    finally:
        node.stop()


def test_sink_retries_until_elasticsearch_comes_back() -> None:
    node = ElasticsearchNode().start()
    try:
        client = Elasticsearch(node.url, request_timeout=10, max_retries=0)
        deploy_elasticsearch(client)
        node.kill()
        restarter = threading.Timer(2.0, node.restart)
        restarter.start()
        sink = ElasticsearchSink(client, DeadLetterStore(), namespace="comeback", max_retries=30,
                                 backoff_initial=0.5, backoff_max=4.0)
        events = [{"event.id": f"c{i}", "@timestamp": "2026-03-01T00:00:00Z", "event.dataset": "aisoc.model"}
                  for i in range(1000)]
        result = sink.send(events)
        restarter.join()
        assert result.created == 1000 and result.retries > 0
        assert _count(client, "logs-aisoc.model-comeback") == 1000
    finally:
        node.stop()


# ------------------------------------------------------------------------------------------ parity


def test_every_rule_passes_its_tests_on_elasticsearch_with_the_same_matches(es: Elasticsearch) -> None:
    rules, _ = load_rules([REPO / "rules", FIXTURE_RULES])
    assert len(rules) >= 15
    results = run_on_es(es, rules)
    failing = {r.path: r.failures() for r in results if not r.passed}
    assert not failing
    es_matches = {(r.rule_id, c.name): set(c.matched_event_ids) for r in results for c in r.cases}
    for rule in rules:
        for index, case in enumerate(rule.meta.tests):
            store = EventStore()
            store.insert(case.expanded_events(rule.rule_id, index))
            sqlite_ids = {eid for m in run_rule(store, rule) for eid in m.event_ids}
            assert es_matches[(rule.rule_id, case.name)] == sqlite_ids, (rule.path, case.name)


def test_case_variant_value_matches_on_both_engines(es: Elasticsearch, tmp_path: Path) -> None:
    rule_path = tmp_path / "case_variant_probe.yml"
    rule_path.write_text(SINGLE_RULE.read_text().replace(
        "    event.kind: metric\n    aisoc.signal.name: api_key_logprobs_share\n",
        "    event.action: model-artifact-registered\n    aisoc.signal.name: api_key_logprobs_share\n"))
    rule, findings = load_rule_file(rule_path)
    assert rule is not None, findings
    base = {"aisoc.signal.name": "API_KEY_logprobs_SHARE", "aisoc.signal.value": 0.9, "aisoc.signal.sample_size": 99,
            "event.dataset": "aisoc.inference", "@timestamp": "2026-04-01T00:00:00Z"}
    events = [{**base, "event.id": "upper", "event.action": "MODEL-ARTIFACT-Registered"},
              {**base, "event.id": "lower", "event.action": "model-artifact-registered"},
              {**base, "event.id": "other", "event.action": "model-artifact-registered-again"}]
    store = EventStore()
    store.insert(events)
    sqlite_ids = {eid for m in run_rule(store, rule) for eid in m.event_ids}
    ns = _ns()
    ElasticsearchSink(es, DeadLetterStore(), namespace=ns, refresh=True).send(events)
    es_ids = {eid for m in ElasticsearchEngine(es, ns).run_rule(rule) for eid in m.event_ids}
    assert sqlite_ids == es_ids == {"upper", "lower"}


# ------------------------------------------------------------------------------------------ runner


def _bucket_base() -> datetime:
    """The start of an hour (the suppression bucket) at least six minutes in the past, so that
    events a few seconds after it are in the past and in one bucket."""
    return (datetime.now(UTC) - timedelta(minutes=6)).replace(minute=0, second=0, microsecond=0)


def _now_events(offsets_seconds: list[int], key: str, prefix: str, base: datetime) -> list[dict]:
    return [{"event.id": f"{prefix}{i}", "@timestamp": normalize_timestamp(base + timedelta(seconds=m)),
             "event.dataset": "aisoc.inference", "event.kind": "metric",
             "aisoc.signal.name": "api_key_logprobs_share", "aisoc.signal.value": 0.95,
             "aisoc.signal.sample_size": 300, "aisoc.signal.entity": key} for i, m in enumerate(offsets_seconds)]


def _alerts(es: Elasticsearch, ns: str) -> list[dict]:
    stream = f"logs-aisoc.alerts-{ns}"
    es.indices.refresh(index=stream, ignore_unavailable=True, allow_no_indices=True)
    hits = es.search(index=stream, size=1000, ignore_unavailable=True, allow_no_indices=True)["hits"]["hits"]
    return [h["_source"] for h in hits]


class _CrashAfterAlerts(Checkpoint):
    """A checkpoint whose save dies, as if the process were killed after writing alerts."""

    def save(self, end: str) -> None:
        raise KeyboardInterrupt("killed before the checkpoint was saved")


def test_runner_killed_before_its_checkpoint_repeats_no_alert(es: Elasticsearch, tmp_path: Path) -> None:
    ns = _ns()
    rules = [load_rule_file(SINGLE_RULE)[0], load_rule_file(CORRELATION_RULE)[0]]
    sink = ElasticsearchSink(es, DeadLetterStore(), namespace=ns, refresh=True)
    sink.send(_now_events([10, 20], "key-a", "a", _bucket_base()))
    crashing = ElasticsearchRunner(es, rules, load_catalog(), _CrashAfterAlerts(tmp_path / "cp.json"),
                                   namespace=ns, source_namespace=ns, lookback=timedelta(hours=2))
    with pytest.raises(KeyboardInterrupt):
        crashing.run_once()
    assert len(_alerts(es, ns)) == 1
    restarted = ElasticsearchRunner(es, rules, load_catalog(), Checkpoint(tmp_path / "cp.json"),
                                    namespace=ns, source_namespace=ns, lookback=timedelta(hours=2))
    report = restarted.run_once()
    assert (report.alerts_created, report.alerts_updated, report.alerts_unchanged) == (0, 0, 1)
    alerts = _alerts(es, ns)
    assert len(alerts) == 1 and alerts[0]["aisoc"]["alert"]["count"] == 2


def test_runner_processes_restarted_with_kill_9_neither_miss_nor_repeat(es_url: str, es: Elasticsearch,
                                                                         tmp_path: Path) -> None:
    ns = _ns()
    sink = ElasticsearchSink(es, DeadLetterStore(), namespace=ns, refresh=True)
    state = tmp_path / "state"
    base = [sys.executable, "-m", "aisoc.cli", "run", "--es", es_url, "--rules", str(FIXTURE_RULES),
            "--state", str(state), "--lookback", "7200", "--source-namespace", ns, "--alerts-namespace", ns]
    env = {**os.environ, "AISOC_DEBUG": "1"}

    base_time = _bucket_base()
    sink.send(_now_events([10, 20], "key-a", "a", base_time))
    first = subprocess.run([*base, "--once"], capture_output=True, text=True, timeout=180, env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1])["created"] == 1

    # new events for the same key and a late one dated before the first run, plus a new key
    sink.send(_now_events([5, 30], "key-a", "late-a", base_time) + _now_events([40], "key-b", "b", base_time))
    looping = subprocess.Popen([*base, "--interval", "3600"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = looping.stdout.readline() if looping.stdout else ""
        assert json.loads(line)["created"] + json.loads(line)["updated"] >= 1
    finally:
        looping.send_signal(signal.SIGKILL)
        looping.wait(timeout=30)
    third = subprocess.run([*base, "--once"], capture_output=True, text=True, timeout=180, env=env)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout.splitlines()[-1])["created"] == 0

    alerts = _alerts(es, ns)
    alert_ids = [a["event"]["id"] for a in alerts]
    assert len(alert_ids) == len(set(alert_ids)) == 2  # one alert per key, none repeated
    by_entity = {a["aisoc"]["alert"]["entity"]: a["aisoc"]["alert"] for a in alerts}
    assert by_entity["aisoc.signal.entity=key-a"]["count"] == 4  # the late event was not missed
    assert sorted(by_entity["aisoc.signal.entity=key-a"]["event_ids"]) == ["a0", "a1", "late-a0", "late-a1"]
    assert by_entity["aisoc.signal.entity=key-b"]["event_ids"] == ["b0"]
