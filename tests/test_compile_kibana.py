"""Kibana detection rules: every exported rule is valid for Kibana's own API schema and carries ATLAS.

Kibana's schema (`shared/elastic/kibana_detections_api_2023_10_31.yaml`, beside the checkout) is the
judge: each rule object is validated with jsonschema's Draft4Validator against
`#/components/schemas/<Type>RuleCreateProps` through a `referencing` registry holding the whole
spec. The schema accepts unknown keys, so the tests also check that we emit only keys it knows.
"""

from __future__ import annotations

import copy
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from aisoc.atlas.catalog import AtlasCatalog, load_catalog
from aisoc.compile.kibana import (
    ATLAS_TAG_PREFIX,
    KIBANA_RULE_KEYS,
    KIBANA_TYPE_KEYS,
    KibanaUnsupported,
    atlas_tags,
    kibana_ndjson,
    kibana_rule,
    required_fields,
)
from aisoc.compile.targets import BUILTIN_TARGETS, compile_with
from aisoc.rules.loader import RuleFile, load_rule_file, load_rules
from aisoc.schema import load_registry

ROOT = Path(__file__).resolve().parents[1]
ELASTIC = ROOT.parent / "shared" / "elastic"
SPEC_PATH = ELASTIC / "kibana_detections_api_2023_10_31.yaml"
ECS_PATH = ELASTIC / "ecs_flat.yml"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kibana"
SPEC_URI = "urn:kibana:detections-api-2023-10-31"
TYPE_SCHEMAS = {"query": "Query", "threshold": "Threshold", "eql": "Eql", "esql": "Esql"}
TECHNIQUE_ID = re.compile(r"^AML\.T\d{4}$")
SUBTECHNIQUE_ID = re.compile(r"^AML\.T\d{4}\.\d{3}$")
TACTIC_ID = re.compile(r"^AML\.TA\d{4}$")

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FIXTURE_RULES, _ = load_rules([FIXTURES])
PACK_RULES, _ = load_rules([ROOT / "rules"])


def _fixture(name: str) -> RuleFile:
    rule, findings = load_rule_file(FIXTURES / name)
    assert rule is not None, findings
    return rule


# ------------------------------------------------------------------------------- schema


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        pytest.fail(f"Kibana API schema not found at {SPEC_PATH} (CI keeps shared/ beside the checkout)")
    with SPEC_PATH.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_LOADER)  # noqa: S506 - a safe loader


@pytest.fixture(scope="module")
def registry(spec: dict[str, Any]) -> Registry:
    return Registry().with_resource(SPEC_URI, Resource(contents=spec, specification=DRAFT4))


def _validator(registry: Registry, schema_name: str) -> Draft4Validator:
    return Draft4Validator({"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}, registry=registry)


def _errors(registry: Registry, rule: dict[str, Any]) -> list[str]:
    validator = _validator(registry, f"{TYPE_SCHEMAS[rule['type']]}RuleCreateProps")
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(rule)]


def _properties(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """Every property name a schema knows, following $ref and allOf/anyOf/oneOf."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _properties(spec, spec["components"]["schemas"][name])
    names = set(schema.get("properties", {}))
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            names |= _properties(spec, part)
    return names


@pytest.fixture(scope="module")
def catalog() -> AtlasCatalog:
    return load_catalog()


# ------------------------------------------------------------------------------- keys


@pytest.mark.parametrize("rule_type", sorted(KIBANA_TYPE_KEYS))
def test_emitted_keys_are_known_to_kibana(spec: dict[str, Any], rule_type: str) -> None:
    known = _properties(spec, {"$ref": f"#/components/schemas/{TYPE_SCHEMAS[rule_type]}RuleCreateProps"})
    assert KIBANA_TYPE_KEYS[rule_type] <= known, KIBANA_TYPE_KEYS[rule_type] - known


def test_rule_keys_are_the_union_of_the_type_keys(spec: dict[str, Any]) -> None:
    assert frozenset().union(*KIBANA_TYPE_KEYS.values()) == KIBANA_RULE_KEYS
    known = set().union(*(
        _properties(spec, {"$ref": f"#/components/schemas/{name}RuleCreateProps"})
        for name in TYPE_SCHEMAS.values()
    ))
    assert KIBANA_RULE_KEYS <= known
    assert {"rule_id", "version"} <= KIBANA_RULE_KEYS  # what _import needs on top of create props


def test_esql_rules_have_no_index(spec: dict[str, Any]) -> None:
    """Kibana's ES|QL rules take their indices from FROM; the schema has no `index` for them."""
    assert "index" not in _properties(spec, {"$ref": "#/components/schemas/EsqlRuleCreateProps"})
    assert "index" not in KIBANA_TYPE_KEYS["esql"]


# ------------------------------------------------------------------------------- every rule


def _check_exported(rule: RuleFile, body: dict[str, Any], registry: Registry, catalog: AtlasCatalog) -> None:
    assert _errors(registry, body) == []
    assert set(body) <= KIBANA_TYPE_KEYS[body["type"]]
    assert body["rule_id"] == rule.rule_id and body["version"] >= 1
    required = _validator(registry, "RequiredField")
    for item in body["required_fields"]:
        assert list(required.iter_errors(item)) == [], item
    _check_threat(body, catalog)


def _check_threat(body: dict[str, Any], catalog: AtlasCatalog) -> None:
    tags = set(body["tags"])
    assert body["threat"] or not any(t.startswith(ATLAS_TAG_PREFIX) for t in tags)
    for entry in body["threat"]:
        assert entry["framework"] == "MITRE ATLAS"
        tactic = entry["tactic"]
        assert TACTIC_ID.match(tactic["id"])
        assert tactic["name"] == catalog.tactic(tactic["id"]).name
        assert tactic["reference"] == f"https://atlas.mitre.org/tactics/{tactic['id']}/"
        assert f"{ATLAS_TAG_PREFIX}{tactic['id'].removeprefix('AML.')}" in tags
        for tech in entry["technique"]:
            known = catalog.technique(tech["id"])
            assert TECHNIQUE_ID.match(tech["id"]) and known is not None and known.parent is None
            assert tech["name"] == known.name
            assert tactic["id"] in known.tactics
            assert tech["reference"] == f"https://atlas.mitre.org/techniques/{tech['id']}/"
            assert f"{ATLAS_TAG_PREFIX}{tech['id'].removeprefix('AML.')}" in tags
            for sub in tech.get("subtechnique", []):
                known_sub = catalog.technique(sub["id"])
                assert SUBTECHNIQUE_ID.match(sub["id"]) and known_sub is not None
                assert known_sub.parent == tech["id"] and sub["name"] == known_sub.name
                assert sub["reference"] == f"https://atlas.mitre.org/techniques/{sub['id']}/"
                assert f"{ATLAS_TAG_PREFIX}{sub['id'].removeprefix('AML.')}" in tags


@pytest.mark.parametrize("rule", FIXTURE_RULES, ids=lambda r: r.path.name)
def test_fixture_rules_export_valid_kibana_rules(
    rule: RuleFile, registry: Registry, catalog: AtlasCatalog
) -> None:
    if rule.path.name.startswith("unsupported_"):
        with pytest.raises(KibanaUnsupported):
            kibana_rule(rule, catalog)
        return
    _check_exported(rule, kibana_rule(rule, catalog, version=3), registry, catalog)


@pytest.mark.parametrize("rule", PACK_RULES, ids=lambda r: str(r.path.relative_to(ROOT)))
def test_pack_rules_export_valid_kibana_rules(
    rule: RuleFile, registry: Registry, catalog: AtlasCatalog
) -> None:
    try:
        body = kibana_rule(rule, catalog)
    except KibanaUnsupported as exc:  # allowed only with a reason a SOC engineer can act on
        assert rule.is_correlation and len(str(exc)) > 20, exc
        return
    _check_exported(rule, body, registry, catalog)
    assert any(t.startswith(ATLAS_TAG_PREFIX) for t in body["tags"]), "pack rules must be mapped to ATLAS"


def test_ecs_flagged_required_fields_are_ecs_fields() -> None:
    """`ecs: true` only for fields ECS itself defines with the same type."""
    with ECS_PATH.open(encoding="utf-8") as fh:
        ecs = yaml.load(fh, Loader=_LOADER)  # noqa: S506 - a safe loader
    catalog = load_catalog()
    for rule in [*FIXTURE_RULES, *PACK_RULES]:
        try:
            body = kibana_rule(rule, catalog)
        except KibanaUnsupported:
            continue
        for item in body["required_fields"]:
            if item["ecs"]:
                assert item["name"] in ecs, item
                assert ecs[item["name"]]["type"] == item["type"], item
            else:
                assert item["name"].startswith("aisoc.") or item["name"] not in ecs or (
                    load_registry().get(item["name"]).ecs_deviation
                ), item


# ------------------------------------------------------------------------------- validation can fail


@pytest.fixture(scope="module")
def valid_rule(catalog: AtlasCatalog) -> dict[str, Any]:
    return kibana_rule(_fixture("threshold_event_count.yml"), catalog)


@pytest.mark.parametrize("breakage", [
    "tactic-reference", "technique-name", "framework", "threshold", "risk-score", "severity", "language",
])
def test_broken_rules_are_rejected(valid_rule: dict[str, Any], registry: Registry, breakage: str) -> None:
    assert _errors(registry, valid_rule) == []
    broken = copy.deepcopy(valid_rule)
    match breakage:
        case "tactic-reference":
            del broken["threat"][0]["tactic"]["reference"]
        case "technique-name":
            del broken["threat"][0]["technique"][0]["name"]
        case "framework":
            del broken["threat"][0]["framework"]
        case "threshold":
            del broken["threshold"]
        case "risk-score":
            broken["risk_score"] = 150
        case "severity":
            broken["severity"] = "informational"
        case "language":
            broken["language"] = "sigma"
    assert _errors(registry, broken), f"{breakage}: the schema accepted a broken rule"


# ------------------------------------------------------------------------------- rule types


def test_single_event_rule_is_a_lucene_query_rule(catalog: AtlasCatalog) -> None:
    rule = _fixture("single_prompt_injection.yml")
    body = kibana_rule(rule, catalog)
    assert (body["type"], body["language"]) == ("query", "lucene")
    assert body["query"] == compile_with(rule, BUILTIN_TARGETS["lucene"]).query
    assert body["index"] == ["logs-aisoc.inference-*"]
    assert (body["interval"], body["from"], body["enabled"]) == ("5m", "now-6m", False)
    assert (body["severity"], body["risk_score"]) == ("high", 73)
    assert body["author"] == ["aisoc fixtures"] and body["license"] == "Apache-2.0"
    assert body["false_positives"] == ["Security researchers probing the gateway from an unregistered key"]
    assert body["references"] == ["https://atlas.mitre.org/techniques/AML.T0051/"]
    assert body["tags"] == [
        "aisoc", "Layer: Inference", "Owner: SOC", "Mitre Atlas: TA0005", "Mitre Atlas: T0051"]
    entity = ["aisoc.api_key.hash", "user.name", "gen_ai.request.model"]
    assert body["investigation_fields"] == {"field_names": entity}
    names = [f["name"] for f in body["required_fields"]]
    assert names == sorted(names) and "event.action" in names and "aisoc.llm.guardrail.outcome" in names
    assert "user.name" not in names  # entity fields are highlighted, not required
    for needle in ("**Owner team:** SOC", "`throttle-api-key`", "`snapshot-evidence`", "`aisoc.api_key.hash`",
                   "[AML.T0051](https://atlas.mitre.org/techniques/AML.T0051/) LLM Prompt Injection"):
        assert needle in body["note"]


def test_informational_level_is_low(catalog: AtlasCatalog) -> None:
    rule = _fixture("esql_event_count_lt.yml")
    assert (kibana_rule(rule, catalog)["severity"], kibana_rule(rule, catalog)["risk_score"]) == ("low", 21)


def test_event_count_gt_is_a_threshold_rule(catalog: AtlasCatalog) -> None:
    rule = _fixture("threshold_event_count.yml")
    body = kibana_rule(rule, catalog)
    assert (body["type"], body["language"]) == ("threshold", "lucene")
    assert body["threshold"] == {"field": ["aisoc.api_key.hash"], "value": 101}  # gt 100
    assert body["query"] == "event.action:llm\\-request AND aisoc.llm.logprobs_requested:true"
    assert (body["interval"], body["from"]) == ("5m", "now-10m")  # the window is the Sigma timespan


def test_value_count_is_a_threshold_rule_with_cardinality(catalog: AtlasCatalog) -> None:
    body = kibana_rule(_fixture("threshold_value_count.yml"), catalog)
    assert body["type"] == "threshold"
    assert body["threshold"] == {
        "field": ["aisoc.inference.client_id", "aisoc.inference.service"],
        "value": 1,
        "cardinality": [{"field": "aisoc.inference.input.skeleton_hash", "value": 50}],
    }
    assert (body["severity"], body["risk_score"], body["from"]) == ("critical", 99, "now-1h")


def test_temporal_correlation_is_an_esql_rule(catalog: AtlasCatalog) -> None:
    rule = _fixture("esql_temporal.yml")
    body = kibana_rule(rule, catalog)
    assert (body["type"], body["language"]) == ("esql", "esql")
    assert "index" not in body
    assert body["query"] == compile_with(rule, BUILTIN_TARGETS["esql"]).query
    assert body["query"].lower().startswith("from logs-aisoc.model-* metadata _id, _index, _version")
    assert "| stats " in body["query"]
    assert (body["interval"], body["from"]) == ("5m", "now-61m")


def test_lt_condition_is_an_esql_rule(catalog: AtlasCatalog) -> None:
    body = kibana_rule(_fixture("esql_event_count_lt.yml"), catalog)
    assert body["type"] == "esql" and body["query"].rstrip().endswith("where event_count < 3")


def test_temporal_ordered_is_an_eql_sequence(catalog: AtlasCatalog) -> None:
    body = kibana_rule(_fixture("eql_temporal_ordered.yml"), catalog)
    assert (body["type"], body["language"]) == ("eql", "eql")
    assert body["index"] == ["logs-aisoc.supply_chain-*"]
    assert body["query"] == (
        "sequence by aisoc.model.name with maxspan=2h\n"
        '  [any where event.action:"model-artifact-uploaded" and file.code_signature.valid:false]\n'
        '  [any where event.action:"model-stage-changed" and aisoc.model.stage:"Production"]'
    )
    assert "runs=" not in body["query"]


def test_value_sum_has_no_kibana_rule_type(catalog: AtlasCatalog) -> None:
    with pytest.raises(KibanaUnsupported, match="value_sum"):
        kibana_rule(_fixture("unsupported_value_sum.yml"), catalog)


def test_version_must_be_positive(catalog: AtlasCatalog) -> None:
    with pytest.raises(KibanaUnsupported, match="version"):
        kibana_rule(_fixture("single_two_tactics.yml"), catalog, version=0)


# ------------------------------------------------------------------------------- ATLAS


def _tactics(body: dict[str, Any]) -> list[str]:
    return [entry["tactic"]["id"] for entry in body["threat"]]


def test_technique_without_tactic_tag_goes_under_all_its_tactics(catalog: AtlasCatalog) -> None:
    body = kibana_rule(_fixture("single_two_tactics.yml"), catalog)
    assert catalog.technique("AML.T0020").tactics == ("AML.TA0003", "AML.TA0006")
    assert _tactics(body) == ["AML.TA0003", "AML.TA0006"]  # matrix order
    assert all([t["id"] for t in e["technique"]] == ["AML.T0020"] for e in body["threat"])
    assert body["tags"][-3:] == ["Mitre Atlas: TA0003", "Mitre Atlas: TA0006", "Mitre Atlas: T0020"]


def test_technique_goes_under_the_tactic_the_rule_names(catalog: AtlasCatalog) -> None:
    body = kibana_rule(_fixture("esql_temporal.yml"), catalog)
    assert len(catalog.technique("AML.T0018").tactics) == 2
    assert _tactics(body) == ["AML.TA0006"]
    assert body["threat"][0]["technique"][0]["id"] == "AML.T0018"


def test_subtechnique_sits_under_its_parent(catalog: AtlasCatalog) -> None:
    for name in ("threshold_event_count.yml", "threshold_value_count.yml"):  # sub alone; sub and parent
        body = kibana_rule(_fixture(name), catalog)
        assert _tactics(body) == ["AML.TA0010"]
        (technique,) = body["threat"][0]["technique"]
        assert technique["id"] == "AML.T0024" and technique["name"] == "Exfiltration via AI Inference API"
        assert technique["subtechnique"] == [{
            "id": "AML.T0024.002", "name": "Extract AI Model",
            "reference": "https://atlas.mitre.org/techniques/AML.T0024.002/",
        }]
        assert {"Mitre Atlas: T0024", "Mitre Atlas: T0024.002", "Mitre Atlas: TA0010"} <= set(body["tags"])


def test_unknown_atlas_tag_is_refused(tmp_path: Path, catalog: AtlasCatalog) -> None:
    text = (FIXTURES / "single_two_tactics.yml").read_text().replace("atlas.aml.t0020", "atlas.aml.t9999")
    (tmp_path / "rule.yml").write_text(text)
    rule, _ = load_rule_file(tmp_path / "rule.yml")
    assert rule is not None
    with pytest.raises(KibanaUnsupported, match="atlas.aml.t9999"):
        kibana_rule(rule, catalog)


def test_atlas_tags_strip_the_aml_prefix() -> None:
    threat = [{"tactic": {"id": "AML.TA0010"}, "technique": [
        {"id": "AML.T0024", "subtechnique": [{"id": "AML.T0024.002"}]}]}]
    assert atlas_tags(threat) == ["Mitre Atlas: TA0010", "Mitre Atlas: T0024", "Mitre Atlas: T0024.002"]


def test_required_fields_types_and_ecs_flag() -> None:
    registry = load_registry()
    fields = required_fields(
        ["event.action", "gen_ai.request.model", "gen_ai.response.finish_reasons", "aisoc.llm.cost",
         "labels.env", "no.such.field"], registry)
    assert fields == [
        {"name": "event.action", "type": "keyword", "ecs": True},
        {"name": "gen_ai.request.model", "type": "keyword", "ecs": True},
        {"name": "gen_ai.response.finish_reasons", "type": "keyword", "ecs": False},  # mapped unlike ECS
        {"name": "aisoc.llm.cost", "type": "double", "ecs": False},
        {"name": "labels.env", "type": "keyword", "ecs": False},
    ]


# ------------------------------------------------------------------------------- NDJSON


def test_ndjson_export(catalog: AtlasCatalog, registry: Registry) -> None:
    versions = {"0b6f3c1e-7a52-4c1e-9f0a-5d2b8e4a1c01": 4}
    text, results = kibana_ndjson(FIXTURE_RULES, catalog, versions)
    assert text.endswith("\n")
    lines = text.splitlines()
    bodies = [json.loads(line) for line in lines]
    assert [json.dumps(b, sort_keys=True) for b in bodies] == lines  # one compact object per line, sorted
    assert len(results) == len(FIXTURE_RULES)
    exported = [r for r in results if r.ok]
    assert [b["rule_id"] for b in bodies] == [r.rule_id for r in exported]
    for body, result in zip(bodies, exported, strict=True):
        assert body == result.query and result.target == "kibana"
        assert body["version"] == versions.get(body["rule_id"], 1)
        assert _errors(registry, body) == []
    failed = [r for r in results if not r.ok]
    assert [Path(r.path).name for r in failed] == ["unsupported_value_sum.yml"]
    assert failed[0].query is None and "value_sum" in (failed[0].error or "")
    assert {b["type"] for b in bodies} == {"query", "threshold", "esql", "eql"}
    assert kibana_ndjson(FIXTURE_RULES, catalog, versions)[0] == text  # deterministic


def test_ndjson_reports_duplicate_rule_ids(catalog: AtlasCatalog) -> None:
    rule = _fixture("single_prompt_injection.yml")
    text, results = kibana_ndjson([rule, rule], catalog, {})
    assert len(text.splitlines()) == 1
    assert results[0].ok and not results[1].ok and "duplicate" in (results[1].error or "")


def test_ndjson_of_nothing_is_empty(catalog: AtlasCatalog) -> None:
    assert kibana_ndjson([], catalog, {}) == ("", [])


def test_export_needs_no_network(monkeypatch: pytest.MonkeyPatch, catalog: AtlasCatalog) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Kibana export tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    text, results = kibana_ndjson(FIXTURE_RULES, catalog, {})
    assert text and sum(r.ok for r in results) == len(FIXTURE_RULES) - 1
