"""Turn rule matches into ECS alert documents, folding repeats per rule and entity (suppression)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aisoc.atlas.catalog import AtlasCatalog, Tactic, Technique
from aisoc.detect.engine import Match
from aisoc.rules.loader import RuleFile

SEVERITY = {"informational": 21, "low": 21, "medium": 47, "high": 73, "critical": 99}
MAX_EVENT_IDS = 100
DEFAULT_SUPPRESSION = timedelta(hours=1)


@dataclass
class AlertGroup:
    """The matches of one rule on one entity within one suppression bucket: one alert."""

    match: Match
    bucket_start: str
    first: str
    last: str
    count: int
    event_ids: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set, repr=False)  # the same ids, for O(1) membership


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def entity_label(entity: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(entity.items()))


def bucket_of(when: str, window: timedelta) -> str:
    """Start of the fixed suppression bucket (aligned to the epoch) holding `when`."""
    seconds = int(window.total_seconds())
    epoch = int(_time(when).timestamp())
    return _iso(datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC))


def suppress(matches: Iterable[Match], window: timedelta = DEFAULT_SUPPRESSION) -> list[AlertGroup]:
    """Fold matches of one rule and entity whose first event falls in the same fixed time bucket.

    Fixed buckets make an alert a pure function of the events in its bucket, so re-running
    detection over overlapping ranges (lookback, restarts) rebuilds the same alert instead of a new one.
    """
    groups: dict[tuple[str, str, str], AlertGroup] = {}
    for match in sorted(matches, key=lambda m: (m.first, m.rule.rule_id)):
        bucket = bucket_of(match.first, window)
        key = (match.rule.rule_id, entity_label(match.entity), bucket)
        group = groups.get(key)
        if group is None:
            ids = list(dict.fromkeys(match.event_ids))
            groups[key] = AlertGroup(match, bucket, match.first, match.last, len(ids), ids, set(ids))
            continue
        group.last = max(group.last, match.last)
        new_ids = [i for i in dict.fromkeys(match.event_ids) if i not in group.seen]
        group.count += len(new_ids)
        group.event_ids.extend(new_ids)
        group.seen.update(new_ids)
    return sorted(groups.values(), key=lambda g: (g.first, g.match.rule.rule_id))


def threat_fields(rule: RuleFile, catalog: AtlasCatalog) -> dict[str, list[str]]:
    """ECS threat.* fields (ATLAS) for an alert, from the rule's `atlas.*` tags."""
    tactics: list[Tactic] = []
    techniques: list[Technique] = []
    subtechniques: list[Technique] = []
    for tag in rule.atlas_tags:
        item = catalog.resolve_tag(tag)
        if isinstance(item, Tactic) and item not in tactics:
            tactics.append(item)
        elif isinstance(item, Technique):
            target = subtechniques if item.is_subtechnique else techniques
            if item not in target:
                target.append(item)
            if item.is_subtechnique and item.parent:
                parent = catalog.technique(item.parent)
                if parent is not None and parent not in techniques:
                    techniques.append(parent)
    out: dict[str, list[str]] = {}
    if tactics:
        out["threat.tactic.id"] = [t.id for t in tactics]
        out["threat.tactic.name"] = [t.name for t in tactics]
        out["threat.tactic.reference"] = [catalog.tactic_url(t) for t in tactics]
    if techniques:
        out["threat.technique.id"] = [t.id for t in techniques]
        out["threat.technique.name"] = [t.name for t in techniques]
        out["threat.technique.reference"] = [catalog.technique_url(t) for t in techniques]
    if subtechniques:
        out["threat.technique.subtechnique.id"] = [t.id for t in subtechniques]
        out["threat.technique.subtechnique.name"] = [t.name for t in subtechniques]
        out["threat.technique.subtechnique.reference"] = [catalog.technique_url(t) for t in subtechniques]
    return out


def alert_document(
    alert: AlertGroup, catalog: AtlasCatalog, engine: str, rule_version: int = 1, created: str | None = None
) -> dict[str, Any]:
    """An ECS alert (flat dotted keys; `unflatten` for nested JSON)."""
    rule = alert.match.rule
    level = str(rule.primary.level.name).lower() if rule.primary.level else "medium"
    label = entity_label(alert.match.entity)
    alert_id = hashlib.sha256(f"{rule.rule_id}|{label}|{alert.bucket_start}".encode()).hexdigest()[:32]
    doc: dict[str, Any] = {
        "@timestamp": alert.last,
        "event.kind": "alert",
        "event.id": alert_id,
        "event.module": "aisoc",
        "event.dataset": "aisoc.alerts",
        "event.severity": SEVERITY.get(level, 47),
        "event.risk_score": float(SEVERITY.get(level, 47)),
        "event.reason": f"{rule.title}" + (f" ({label})" if label else ""),
        "rule.id": rule.rule_id,
        "rule.name": rule.title,
        "rule.version": str(rule_version),
        "rule.ruleset": "aisoc",
        "rule.category": rule.layer,
        "rule.description": (rule.primary.description or "").strip(),
        "threat.framework": "MITRE ATLAS",
        **threat_fields(rule, catalog),
        "aisoc.alert.count": alert.count,
        "aisoc.alert.first_event": alert.first,
        "aisoc.alert.last_event": alert.last,
        "aisoc.alert.event_ids": alert.event_ids[:MAX_EVENT_IDS],
        "aisoc.alert.entity": label,
        "aisoc.alert.playbooks": list(rule.meta.playbooks),
        "aisoc.alert.engine": engine,
        "aisoc.owner.team": rule.meta.owner,
        "aisoc.layer": rule.layer,
    }
    if created:
        doc["event.created"] = created
    for name, value in alert.match.entity.items():
        doc.setdefault(name, value)
    return doc


def unflatten(doc: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` -> `{"a": {"b": 1}}` (ECS JSON as Elasticsearch and SIEMs expect it)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key.startswith("@"):
            out[key] = value
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
