"""The embedded engine: run a rule's compiled SQLite query over an `EventStore` and return matches."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aisoc.compile.targets import sqlite_query
from aisoc.detect.store import EventStore
from aisoc.rules.fields import rule_fields
from aisoc.rules.loader import RuleFile

# Fields that identify who or what a single-event alert is about, when the rule names none.
DEFAULT_ENTITY_FIELDS = (
    "aisoc.api_key.hash",
    "aisoc.inference.client_id",
    "aisoc.model.name",
    "aisoc.data.dataset",
    "package.name",
    "aisoc.supply_chain.hub.repo_id",
    "user.name",
    "host.name",
)


@dataclass
class Match:
    """One hit of a rule: a matching event, or one correlation window."""

    rule: RuleFile
    event_ids: list[str]
    first: str
    last: str
    entity: dict[str, Any] = field(default_factory=dict)
    metric: float | None = None


def _epoch_to_iso(value: float) -> str:
    when = datetime.fromtimestamp(float(value), tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _strip_source_prefix(evidence_id: str) -> str:
    """The SQLite backend scopes event ids by source table: `0:<event.id>`."""
    head, sep, rest = evidence_id.partition(":")
    return rest if sep and head.isdigit() else evidence_id


def entity_fields(rule: RuleFile) -> list[str]:
    if rule.meta.entity:
        return list(rule.meta.entity)
    group_by = getattr(rule.primary, "group_by", None)
    return list(group_by) if group_by else []


def run_rule(store: EventStore, rule: RuleFile, sql: str | None = None) -> list[Match]:
    """Evaluate one rule over every event in the store."""
    sql = sql or sqlite_query(rule)
    store.ensure_columns(rule_fields(rule))
    rows = store.query(sql)
    if rule.is_correlation:
        return [_with_event_times(store, _correlation_match(rule, row)) for row in rows]
    seen: set[str] = set()  # rows of one multi-valued event share its event.id: one match each
    matches = []
    for row in rows:
        if row["event.id"] not in seen:
            seen.add(row["event.id"])
            matches.append(single_event_match(rule, row, row["event.id"], row["@timestamp"]))
    return matches


def single_event_match(rule: RuleFile, flat: dict[str, Any], event_id: str, timestamp: str) -> Match:
    """A single-event hit; the entity is the rule's entity fields, else the first known entity field."""
    names = entity_fields(rule) or [next((f for f in DEFAULT_ENTITY_FIELDS if flat.get(f) is not None), "")]
    entity = {name: flat.get(name) for name in names if name and flat.get(name) is not None}
    return Match(rule, [event_id], timestamp, timestamp, entity)


def _with_event_times(store: EventStore, match: Match) -> Match:
    """first/last = the times of the first and last triggering events (not the window's bounds)."""
    ids = match.event_ids
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        low, high = store.conn.execute(
            f'SELECT MIN("@timestamp"), MAX("@timestamp") FROM logs WHERE "event.id" IN ({marks})', chunk).fetchone()
        if low is not None:
            match.first = low if start == 0 else min(match.first, low)
            match.last = high if start == 0 else max(match.last, high)
    return match


def _correlation_match(rule: RuleFile, row: dict[str, Any]) -> Match:
    ids = [_strip_source_prefix(e) for e in json.loads(row.get("event_ids") or "[]")]
    entity = json.loads(row.get("group_keys") or "{}")
    return Match(
        rule,
        ids,
        _epoch_to_iso(row["window_start"]),
        _epoch_to_iso(row["window_end"]),
        entity,
        row.get("metric_value"),
    )
