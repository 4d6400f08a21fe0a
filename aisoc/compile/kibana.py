"""Kibana detection rules (`POST /api/detection_engine/rules/_import` NDJSON) with ATLAS in `threat`.

pySigma's own `siem_rule_ndjson` output knows only ATT&CK (and downloads it), so the rule object is
built here from our converted queries, the shipped ATLAS catalog and the field registry. Nothing
here touches the network.

Rule type by Sigma rule:

- single-event rule -> `query` (language lucene, `lucene` target);
- `event_count` / `value_count` with `gte`/`gt`, at most 5 group-by fields, no field aliases ->
  `threshold` (the base rules alone through `lucene`, OR-ed when several);
- any other correlation the ES|QL backend converts -> `esql` (`esql` target);
- `temporal_ordered` over all of its rules (ES|QL cannot) -> `eql` (`sequence` built from `eql`);
- anything else (value_sum/avg/percentile/median, field aliases, ...) -> KibanaUnsupported.

Threshold: `gt N` is `value N+1`; `value_count` becomes `value: 1` plus `cardinality: [{field,
value: N}]` (Kibana alerts when the distinct count of `field` is >= value). EQL: the backend's
`temporal_ordered` output is not valid EQL (`... by  with runs=2`), so the sequence is assembled
from each base rule's own EQL condition.

Schedule: single-event rules run every 5m over the last 6m (5m + 1m look-back). Correlations run
every min(5m, timespan); a threshold rule looks back exactly the timespan (Kibana counts over the
whole window, so a longer window would loosen the rule); ES|QL and EQL rules bound the timespan
themselves (`date_trunc` buckets, `maxspan`) and look back timespan + 1m.

Tags: `aisoc`, `Layer: <Layer>`, `Owner: <team>`, and one `Mitre Atlas: <ID without "AML.">` per
tactic, technique and sub-technique in `threat` (`Mitre Atlas: TA0010`, `Mitre Atlas: T0024`,
`Mitre Atlas: T0024.002`): Kibana before 9.6 shows ATLAS only through tags. A sub-technique's
parent technique is tagged too, as it appears in `threat`.

Threat: one entry per tactic (matrix order); a technique goes under the tactics the rule's tactic
tags name, or under all of its tactics when the rule names none of them; a sub-technique sits
under its parent technique. References use dotted IDs (atlas.mitre.org/techniques/AML.T0024.002/).

`required_fields` carries `ecs` (the response schema's RequiredField): some Kibana releases reject
an import whose required fields lack it, later ones ignore it. The rule's `aisoc.entity` fields
become `investigation_fields` (highlighted in the alert flyout). Alert suppression is not set: it
is a Platinum feature, and an import should work on any licence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.rule import SigmaRule

from aisoc.atlas.catalog import AtlasCatalog, Tactic, Technique
from aisoc.compile.pipeline import index_pattern
from aisoc.compile.targets import BUILTIN_TARGETS, KIBANA, Compiled, base_rule_file, compile_with
from aisoc.rules.fields import correlation_fields, sigma_rule_fields
from aisoc.rules.loader import RuleFile
from aisoc.schema import FieldRegistry, load_registry

FRAMEWORK = "MITRE ATLAS"
ATLAS_TAG_PREFIX = "Mitre Atlas: "
SEVERITY = {"informational": "low", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}
RISK_SCORE = {"low": 21, "medium": 47, "high": 73, "critical": 99}
DEFAULT_LEVEL = "medium"
DEFAULT_INTERVAL_SECONDS = 300
LOOKBACK_SECONDS = 60
MAX_SIGNALS = 100
MAX_THRESHOLD_FIELDS = 5  # Kibana's ThresholdField maxItems
ECS_SOURCES = frozenset({"ecs", "gen_ai"})

_COMMON_KEYS = frozenset({
    "rule_id", "version", "name", "description", "risk_score", "severity", "type", "query", "language",
    "from", "interval", "enabled", "author", "false_positives", "references", "tags", "threat",
    "required_fields", "max_signals", "note", "investigation_fields", "meta", "license",
})
KIBANA_TYPE_KEYS: dict[str, frozenset[str]] = {
    "query": _COMMON_KEYS | {"index"},
    "threshold": _COMMON_KEYS | {"index", "threshold"},
    "eql": _COMMON_KEYS | {"index"},
    "esql": _COMMON_KEYS,  # ES|QL rules name their indices in FROM; Kibana has no `index` for them
}
KIBANA_RULE_KEYS: frozenset[str] = frozenset().union(*KIBANA_TYPE_KEYS.values())


class KibanaUnsupported(ValueError):
    """The rule cannot be expressed as a Kibana detection rule (the message says why)."""


@dataclass(frozen=True)
class _Logic:
    type: str
    language: str
    query: str
    interval: int
    window: int
    extra: dict[str, Any]


# ----------------------------------------------------------------------------- rule logic


def _converted(rule: RuleFile, target: str) -> str:
    compiled = compile_with(rule, BUILTIN_TARGETS[target])
    if compiled.error:
        raise KibanaUnsupported(compiled.error)
    return str(compiled.query)


def _standalone(rule: RuleFile, base: SigmaRule) -> RuleFile:
    try:
        return base_rule_file(rule, base)
    except ValueError as exc:
        raise KibanaUnsupported(str(exc)) from None


def _base_rules(rule: RuleFile, correlation: SigmaCorrelationRule) -> list[SigmaRule]:
    bases = [ref.rule for ref in correlation.referenced_rules]
    if not all(isinstance(b, SigmaRule) for b in bases):
        raise KibanaUnsupported("correlations of correlations have no Kibana rule type")
    return bases  # type: ignore[return-value]


def _threshold(rule: RuleFile, correlation: SigmaCorrelationRule) -> _Logic | None:
    """Kibana threshold rule for event_count/value_count with gte/gt, or None if it does not fit."""
    cond = correlation.condition
    kinds = (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT)
    ops = (SigmaCorrelationConditionOperator.GTE, SigmaCorrelationConditionOperator.GT)
    group_by = list(correlation.group_by or [])
    if (correlation.type not in kinds or not isinstance(cond, SigmaCorrelationCondition)
            or cond.op not in ops or len(group_by) > MAX_THRESHOLD_FIELDS or len(correlation.aliases)):
        return None
    minimum = cond.count + 1 if cond.op == SigmaCorrelationConditionOperator.GT else cond.count
    queries = [_converted(_standalone(rule, base), "lucene") for base in _base_rules(rule, correlation)]
    query = queries[0] if len(queries) == 1 else " OR ".join(f"({q})" for q in queries)
    threshold: dict[str, Any] = {"field": group_by, "value": max(minimum, 1)}
    if correlation.type == SigmaCorrelationType.VALUE_COUNT:
        if not isinstance(cond.fieldref, str):
            return None
        cardinality = [{"field": cond.fieldref, "value": minimum}]
        threshold = {"field": group_by, "value": 1, "cardinality": cardinality}
    seconds = correlation.timespan.seconds
    return _Logic("threshold", "lucene", query, min(DEFAULT_INTERVAL_SECONDS, seconds), seconds,
                  {"threshold": threshold})


def _eql_sequence(rule: RuleFile, correlation: SigmaCorrelationRule) -> str:
    """`sequence by <group-by> with maxspan=<timespan> [any where q1] [any where q2] ...`."""
    bases = _base_rules(rule, correlation)
    cond = correlation.condition
    full = cond is None or (isinstance(cond, SigmaCorrelationCondition)
                            and cond.op == SigmaCorrelationConditionOperator.GTE and cond.count == len(bases))
    if correlation.type != SigmaCorrelationType.TEMPORAL_ORDERED or not full or len(correlation.aliases):
        raise KibanaUnsupported(
            f"{correlation.type.name.lower()} correlation: ES|QL cannot express it and an EQL sequence "
            "only expresses temporal_ordered over all of its rules without field aliases"
        )
    steps = [_converted(_standalone(rule, base), "eql") for base in bases]
    by = f" by {', '.join(correlation.group_by)}" if correlation.group_by else ""
    span = _duration(correlation.timespan.seconds)
    return f"sequence{by} with maxspan={span}\n" + "\n".join(f"  [{step}]" for step in steps)


def _logic(rule: RuleFile) -> _Logic:
    primary = rule.primary
    if not isinstance(primary, SigmaCorrelationRule):
        query = _converted(rule, "lucene")
        return _Logic("query", "lucene", query, DEFAULT_INTERVAL_SECONDS,
                      DEFAULT_INTERVAL_SECONDS + LOOKBACK_SECONDS, {})
    threshold = _threshold(rule, primary)
    if threshold is not None:
        return threshold
    interval = min(DEFAULT_INTERVAL_SECONDS, primary.timespan.seconds)
    window = primary.timespan.seconds + LOOKBACK_SECONDS
    esql = compile_with(rule, BUILTIN_TARGETS["esql"])
    if esql.ok:
        query = str(esql.query)
        if not query.lstrip().lower().startswith("from "):
            raise KibanaUnsupported(f"ES|QL query does not start with FROM: {query[:60]!r}")
        return _Logic("esql", "esql", query, interval, window, {})
    try:
        return _Logic("eql", "eql", _eql_sequence(rule, primary), interval, window, {})
    except KibanaUnsupported as exc:
        raise KibanaUnsupported(f"{esql.error}; {exc}") from None


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ----------------------------------------------------------------------------- ATLAS


def atlas_threat(rule: RuleFile, catalog: AtlasCatalog) -> list[dict[str, Any]]:
    """Kibana `threat` entries (framework MITRE ATLAS), one per tactic, from the rule's atlas.* tags."""
    named: list[Tactic] = []
    techniques: list[Technique] = []
    for tag in rule.atlas_tags:
        item = catalog.resolve_tag(tag)
        if item is None:
            raise KibanaUnsupported(
                f"ATLAS tag {tag!r} names no tactic or technique of ATLAS {catalog.version}")
        if isinstance(item, Tactic):
            named.append(item)
        else:
            techniques.append(item)
    named_ids = {t.id for t in named}
    placed: dict[str, dict[str, set[str]]] = {t.id: {} for t in named}
    for tech in techniques:
        top = catalog.technique(tech.parent) if tech.parent else tech
        if top is None:
            raise KibanaUnsupported(f"{tech.id}: parent technique {tech.parent} is not in the catalog")
        for tactic_id in [t for t in tech.tactics if t in named_ids] or tech.tactics:
            subs = placed.setdefault(tactic_id, {}).setdefault(top.id, set())
            if tech.parent:
                subs.add(tech.id)
    order = {tid: i for i, tid in enumerate(catalog.techniques)}
    threat = []
    for tactic in catalog.tactics:
        if tactic.id not in placed:
            continue
        entries = []
        for tech_id in sorted(placed[tactic.id], key=order.__getitem__):
            entry = _ref(catalog, catalog.techniques[tech_id])
            subs = sorted(placed[tactic.id][tech_id], key=order.__getitem__)
            if subs:
                entry["subtechnique"] = [_ref(catalog, catalog.techniques[s]) for s in subs]
            entries.append(entry)
        tactic_ref = {"id": tactic.id, "name": tactic.name, "reference": catalog.tactic_url(tactic)}
        threat.append({"framework": FRAMEWORK, "tactic": tactic_ref, "technique": entries})
    return threat


def _ref(catalog: AtlasCatalog, tech: Technique) -> dict[str, Any]:
    return {"id": tech.id, "name": tech.name, "reference": catalog.technique_url(tech)}


def atlas_tags(threat: list[dict[str, Any]]) -> list[str]:
    """`Mitre Atlas: TA0010`, `Mitre Atlas: T0024`, `Mitre Atlas: T0024.002`: tactics, then techniques."""
    ids = [entry["tactic"]["id"] for entry in threat]
    for entry in threat:
        for tech in entry["technique"]:
            ids.append(tech["id"])
            ids.extend(sub["id"] for sub in tech.get("subtechnique", []))
    return [ATLAS_TAG_PREFIX + i.removeprefix("AML.") for i in dict.fromkeys(ids)]


# ----------------------------------------------------------------------------- metadata


def _logic_fields(rule: RuleFile) -> list[str]:
    fields: set[str] = set()
    for detection in rule.detection_rules:
        fields |= sigma_rule_fields(detection)
    if isinstance(rule.primary, SigmaCorrelationRule):
        fields |= correlation_fields(rule.primary)
    return sorted(fields)


def required_fields(names: Iterable[str], registry: FieldRegistry) -> list[dict[str, Any]]:
    """name, type (field registry) and ecs; keys below `object` fields are keyword; unknown fields
    are left out (`aisoc validate` reports them)."""
    out = []
    for name in names:
        field = registry.get(name)
        if field is not None:
            ecs = field.source in ECS_SOURCES and not field.ecs_deviation
            out.append({"name": name, "type": field.type, "ecs": ecs})
        elif registry.is_known(name):
            out.append({"name": name, "type": "keyword", "ecs": False})
    return out


def _note(rule: RuleFile, threat: list[dict[str, Any]], logic: _Logic) -> str:
    meta = rule.meta
    lines = [f"## Triage and analysis: {rule.title}", "", f"**Owner team:** {meta.owner}", ""]
    lines += ["### Suggested playbooks", ""]
    lines += [f"- `{p}`" for p in meta.playbooks] or ["- none named; follow the owner team's runbook"]
    lines += ["", "### Entity fields", ""]
    lines += [f"- `{f}`" for f in meta.entity] or ["- none named"]
    lines += ["", "### MITRE ATLAS", ""]
    for entry in threat:
        tactic = entry["tactic"]
        for tech in entry["technique"] or [None]:
            if tech is None:
                lines.append(f"- {tactic['name']} ([{tactic['id']}]({tactic['reference']}))")
                continue
            lines.append(f"- {tactic['name']}: [{tech['id']}]({tech['reference']}) {tech['name']}")
            lines += [f"  - [{s['id']}]({s['reference']}) {s['name']}" for s in tech.get("subtechnique", [])]
    if not threat:
        lines.append("- no ATLAS mapping")
    lines += ["", "### Detection", "",
              f"Sigma rule `{rule.rule_id}` (`{rule.path.name}`), layer `{rule.layer or 'any'}`, "
              f"Kibana rule type `{logic.type}`."]
    if rule.primary.falsepositives:
        lines += ["", "### Known false positives", ""] + [f"- {fp}" for fp in rule.primary.falsepositives]
    return "\n".join(lines) + "\n"


def _layer_tag(layer: str | None) -> str:
    return "Layer: " + (layer.replace("_", " ").title() if layer else "Any")


# ----------------------------------------------------------------------------- public API


def kibana_rule(rule: RuleFile, catalog: AtlasCatalog, version: int = 1) -> dict[str, Any]:
    """The Kibana rule object (`_import` form) for one rule file; raises KibanaUnsupported."""
    if version < 1:
        raise KibanaUnsupported(f"version must be >= 1, got {version}")
    primary = rule.primary
    if not primary.id:
        raise KibanaUnsupported("rule has no id (Kibana's rule_id)")
    logic = _logic(rule)
    threat = atlas_threat(rule, catalog)
    level = primary.level.name.lower() if primary.level else DEFAULT_LEVEL
    severity = SEVERITY.get(level, DEFAULT_LEVEL)
    author = [a.strip() for a in (primary.author or "").split(",") if a.strip()]
    body: dict[str, Any] = {
        "rule_id": rule.rule_id,
        "version": version,
        "name": rule.title,
        "description": (primary.description or "").strip() or rule.title,
        "severity": severity,
        "risk_score": RISK_SCORE[severity],
        "type": logic.type,
        "language": logic.language,
        "query": logic.query,
        "interval": _duration(logic.interval),
        "from": f"now-{_duration(logic.window)}",
        "enabled": False,
        "max_signals": MAX_SIGNALS,
        "author": author,
        "false_positives": [str(fp) for fp in primary.falsepositives or []],
        "references": [str(ref) for ref in primary.references or []],
        "tags": ["aisoc", _layer_tag(rule.layer), f"Owner: {rule.meta.owner}", *atlas_tags(threat)],
        "threat": threat,
        "required_fields": required_fields(_logic_fields(rule), load_registry()),
        "note": _note(rule, threat, logic),
        "meta": {"aisoc": {"layer": rule.layer, "owner": rule.meta.owner,
                           "playbooks": list(rule.meta.playbooks), "source": rule.path.name}},
        **logic.extra,
    }
    if logic.type != "esql":
        body["index"] = [index_pattern(rule.layer)]
    if rule.meta.entity:
        body["investigation_fields"] = {"field_names": list(rule.meta.entity)}
    if primary.license:
        body["license"] = primary.license
    return body


def kibana_ndjson(
    rules: list[RuleFile], catalog: AtlasCatalog, versions: dict[str, int]
) -> tuple[str, list[Compiled]]:
    """NDJSON for `_import` (one rule per line, sorted keys) and each rule's Compiled result."""
    lines: list[str] = []
    results: list[Compiled] = []
    seen: set[str] = set()
    for rule in rules:
        base = {"rule_id": rule.rule_id, "title": rule.title, "path": str(rule.path), "target": KIBANA}
        if rule.rule_id in seen:
            error = f"duplicate rule id {rule.rule_id}; Kibana keys rules by it"
            results.append(Compiled(**base, error=error))
            continue
        seen.add(rule.rule_id)
        try:
            body = kibana_rule(rule, catalog, versions.get(rule.rule_id, 1))
        except KibanaUnsupported as exc:
            results.append(Compiled(**base, error=f"kibana cannot express this rule: {exc}"))
            continue
        lines.append(json.dumps(body, sort_keys=True))
        results.append(Compiled(**base, query=body))
    return "".join(line + "\n" for line in lines), results
