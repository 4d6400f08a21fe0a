"""The whole loop on real parts: an unauthorized model version is registered and aliased on a real MLflow
server -> the MLflow collector sees it -> the rule pack fires -> the rollback playbook, approved, moves the
alias back to the last known-good version on that server -> the audit log and evidence bundle record it."""

from __future__ import annotations

import json
from pathlib import Path

from aisoc.atlas.catalog import load_catalog
from aisoc.collectors.base import CursorStore
from aisoc.collectors.mlflow import MlflowCollector, MlflowConfig
from aisoc.detect.alerts import unflatten
from aisoc.detect.runner import detect
from aisoc.detect.store import EventStore
from aisoc.records import Rejected
from aisoc.respond import MlflowSettings, ResponseContext, load_playbooks, respond, verify_audit_log, verify_bundle
from aisoc.rules.loader import load_rules
from tests.conftest import REPO
from tests.test_respond_mlflow import Registry, mlflow_url  # noqa: F401 - the real server fixture

PIPELINE = "svc-training-pipeline"
ALIAS_RULE = next(line.split(":", 1)[1].strip() for line in
                  (REPO / "rules/model/production_alias_moved_by_non_pipeline.yml").read_text().splitlines()
                  if line.startswith("id:"))
NO_LINEAGE_RULE = next(line.split(":", 1)[1].strip() for line in
                       (REPO / "rules/model/model_version_without_lineage.yml").read_text().splitlines()
                       if line.startswith("id:"))


def test_unauthorized_promotion_is_detected_and_rolled_back(mlflow_url: str, tmp_path: Path) -> None:  # noqa: F811
    registry = Registry(mlflow_url)
    name = "fraud-loop"
    registry.call("POST", "/registered-models/create", json={"name": name})
    for version in ("1", "2"):  # the pipeline's versions: tagged with their author, approved, known good
        registry.call("POST", "/model-versions/create", json={"name": name, "source": f"s3://models/{name}/{version}",
                                                              "tags": [{"key": "mlflow.user", "value": PIPELINE}]})
        registry.call("POST", "/model-versions/set-tag", json={"name": name, "version": version,
                                                              "key": "aisoc.known_good", "value": "true"})
        registry.call("POST", "/model-versions/set-tag", json={"name": name, "version": version,
                                                              "key": "aisoc.change.ticket", "value": f"CHG-{version}"})
    registry.set_alias(name, "champion", "2")

    collector = MlflowCollector(MlflowConfig(tracking_uri=mlflow_url, pipeline_identities=[PIPELINE]))
    cursor = CursorStore(tmp_path / "cursors.db")
    baseline = collector.poll(cursor)
    assert not [r for r in baseline if isinstance(r, Rejected)]

    # the attack: someone registers a version without lineage and points champion at it
    registry.call("POST", "/model-versions/create", json={"name": name, "source": "s3://scratch/jdoe/model.pkl",
                                                          "tags": [{"key": "mlflow.user", "value": "jdoe"}]})
    registry.set_alias(name, "champion", "3")
    changes = [e for e in collector.poll(cursor) if isinstance(e, dict)]
    assert {e["event.action"] for e in changes} >= {"model-version-registered", "model-alias-changed"}

    store = EventStore(tmp_path / "events.db")
    store.insert([e for e in baseline if isinstance(e, dict)] + changes)
    rules, _ = load_rules([REPO / "rules"])
    alerts = detect(store, rules, load_catalog()).alerts
    fired = {a["rule.id"] for a in alerts}
    assert {ALIAS_RULE, NO_LINEAGE_RULE} <= fired, [a["rule.name"] for a in alerts]
    alert = next(a for a in alerts if a["rule.id"] == ALIAS_RULE)
    event = store.source_of(alert["aisoc.alert.event_ids"])[0]
    assert (event["aisoc.model.name"], event["aisoc.model.alias"], event["aisoc.model.version"]) == (
        name, "champion", "3")
    alert = {**alert, "aisoc.model.name": name, "aisoc.model.version": "3", "aisoc.model.alias": "champion"}
    # nothing fired for the pipeline's own, approved versions
    assert not [a for a in alerts if a.get("aisoc.model.version") in ("1", "2")]

    playbook = load_playbooks(REPO / "playbooks")["rollback-model-alias"]
    context = ResponseContext(mlflow=MlflowSettings(url=mlflow_url), evidence_dir=tmp_path / "evidence",
                              event_store=store, actor="aisoc-loop-test")
    audit = tmp_path / "audit.jsonl"
    planned = respond(alert, playbook, audit_log=audit, context=context)  # dry run: the default
    assert planned.status == "planned"
    assert registry.alias(name, "champion") == "3"  # unchanged on the real server
    refused = respond(alert, playbook, execute=True, audit_log=audit, context=context)
    assert refused.status == "approval_required" and registry.alias(name, "champion") == "3"

    done = respond(alert, playbook, execute=True, approved_by="maria.ops@example.com", audit_log=audit,
                   context=context)
    assert done.status == "completed", done.summary()
    assert registry.alias(name, "champion") == "2"  # back to the last known-good version

    check = verify_audit_log(audit)
    assert not check.problems
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    executed = [r for r in records if r.get("mode") == "execute" and r.get("approved_by") == "maria.ops@example.com"]
    assert any(r.get("type") == "run_finished" and r.get("status") == "completed" for r in executed)
    bundles = [p for p in (tmp_path / "evidence").iterdir() if p.is_dir()]
    assert bundles and any(not verify_bundle(b) for b in bundles)
    bundle = bundles[-1]
    stored_alert = json.loads((bundle / "alert.json").read_text())
    assert unflatten(stored_alert).get("aisoc", {}).get("model", {}).get("name", name) == name
    assert (bundle / "events.ndjson").exists() and (bundle / "events.ndjson").read_text().strip()
