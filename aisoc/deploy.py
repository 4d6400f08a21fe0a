"""`aisoc deploy`: install aisoc's index templates and ingest pipeline into Elasticsearch, and import
the compiled rules into Kibana.

Idempotent: each object is compared with what the cluster already has and only written when it
differs, so a second run changes nothing. `dry_run` reports the same plan without writing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError

from aisoc.schema.registry import load_registry
from aisoc.schema.templates import COMPONENT_TEMPLATE, SUBSTITUTES, component_template, index_templates

PIPELINE = "logs-aisoc@pipeline"
_MISSING_TYPE = re.compile(r"mapper type \[(\w+)\]")


@dataclass
class DeployStep:
    kind: str
    name: str
    action: str  # create | update | unchanged | skipped
    detail: str = ""


@dataclass
class DeployPlan:
    steps: list[DeployStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(s.action in ("create", "update") for s in self.steps)


def ingest_pipeline() -> dict[str, Any]:
    return {
        "description": "aisoc: stamp event.ingested and ecs.version",
        "processors": [
            {"set": {"field": "event.ingested", "value": "{{{_ingest.timestamp}}}"}},
            {"set": {"field": "ecs.version", "value": load_registry().ecs_version, "override": False}},
        ],
        "_meta": {"managed_by": "aisoc"},
    }


def _stamped(body: dict[str, Any]) -> dict[str, Any]:
    """The body with `_meta.aisoc_hash`: Elasticsearch rewrites stored objects (defaults, value types),
    so comparing our own hash is the reliable way to tell whether an object is already current."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {**body, "_meta": {**body.get("_meta", {}), "aisoc_hash": digest}}


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return (current.get("_meta") or {}).get("aisoc_hash") == wanted["_meta"]["aisoc_hash"]


def _component_body(client: Elasticsearch, plan: DeployPlan, dry_run: bool) -> dict[str, Any]:
    """The component template, with stand-in types for mapper types this cluster lacks."""
    substitute: set[str] = set()
    while True:
        body = component_template(substitute=frozenset(substitute))
        try:
            client.indices.simulate_template(index_patterns=["aisoc-simulate-*"], template=body["template"])
            return body
        except BadRequestError as exc:
            found = _MISSING_TYPE.search(json.dumps(exc.body))
            if not found or found.group(1) not in SUBSTITUTES or found.group(1) in substitute:
                raise
            missing = found.group(1)
            substitute.add(missing)
            plan.notes.append(f"cluster has no '{missing}' field type (module not installed): "
                              f"mapping those fields as '{SUBSTITUTES[missing]}'")


def deploy_elasticsearch(client: Elasticsearch, dry_run: bool = False) -> DeployPlan:
    plan = DeployPlan()
    body = _stamped(_component_body(client, plan, dry_run))
    try:
        current = client.cluster.get_component_template(name=COMPONENT_TEMPLATE)["component_templates"][0]
        existing = current["component_template"]
        action = "unchanged" if _same(existing, body) else "update"
    except NotFoundError:
        action = "create"
    plan.steps.append(DeployStep("component_template", COMPONENT_TEMPLATE, action))
    if action != "unchanged" and not dry_run:
        client.cluster.put_component_template(name=COMPONENT_TEMPLATE, **body)

    pipeline = _stamped(ingest_pipeline())
    pipeline_ok = True
    try:  # simulate first: a cluster without the ingest processors cannot run the pipeline at all
        client.ingest.simulate(pipeline={"processors": pipeline["processors"]}, docs=[{"_source": {}}])
    except BadRequestError as exc:
        pipeline_ok = False
        action = "skipped"
        plan.notes.append(f"ingest pipeline not installed ({exc.message}): the cluster lacks the ingest "
                          "processors; aisoc's sink stamps event.ingested itself")
    if pipeline_ok:
        try:
            existing_pipeline = client.ingest.get_pipeline(id=PIPELINE)[PIPELINE]
            action = "unchanged" if _same(existing_pipeline, pipeline) else "update"
        except NotFoundError:
            action = "create"
        if action != "unchanged" and not dry_run:
            client.ingest.put_pipeline(id=PIPELINE, **pipeline)
    plan.steps.append(DeployStep("ingest_pipeline", PIPELINE, action))

    for name, template in index_templates().items():
        wanted = json.loads(json.dumps(template))
        if pipeline_ok:
            wanted["template"] = {"settings": {"index.default_pipeline": PIPELINE}}
        wanted = _stamped(wanted)
        try:
            existing_template = client.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
            action = "unchanged" if _same(existing_template, wanted) else "update"
        except NotFoundError:
            action = "create"
        plan.steps.append(DeployStep("index_template", name, action))
        if action != "unchanged" and not dry_run:
            client.indices.put_index_template(name=name, **wanted)
    plan.notes.append("data streams logs-aisoc.<dataset>-<namespace> are created by these templates on first write")
    return plan


def kibana_import_request(kibana_url: str, ndjson: str, overwrite: bool = True) -> dict[str, Any]:
    """The request `aisoc deploy --kibana` sends: multipart upload of the rules NDJSON to the import API."""
    return {
        "method": "POST",
        "url": f"{kibana_url.rstrip('/')}/api/detection_engine/rules/_import",
        "params": {"overwrite": str(overwrite).lower()},
        "headers": {"kbn-xsrf": "aisoc", "elastic-api-version": "2023-10-31"},
        "files": {"file": ("aisoc-rules.ndjson", ndjson.encode("utf-8"), "application/ndjson")},
    }


__all__ = ["ApiError", "DeployPlan", "DeployStep", "deploy_elasticsearch", "kibana_import_request"]
