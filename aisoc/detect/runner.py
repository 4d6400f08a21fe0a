"""Run a rule pack over an event store and produce ECS alerts (the embedded engine's detection pass)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from aisoc.atlas.catalog import AtlasCatalog
from aisoc.detect.alerts import DEFAULT_SUPPRESSION, alert_document, suppress
from aisoc.detect.engine import Match, run_rule
from aisoc.detect.store import EventStore, StoreError
from aisoc.records import Rejected
from aisoc.rules.loader import RuleFile
from aisoc.rules.lock import VersionLock

MAX_LINE_BYTES = 1024 * 1024


@dataclass
class DetectResult:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    rule_errors: dict[str, str] = field(default_factory=dict)
    events_loaded: int = 0


def read_ndjson(handle: TextIO, source: str) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    """Each line's JSON object, or a Rejected naming `source:line` and what is wrong with it."""
    for number, line in enumerate(handle, start=1):
        where = f"{source}:{number}"
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            yield number, Rejected(where, f"line longer than {MAX_LINE_BYTES} bytes", line[:1024], number)
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, Rejected(where, f"not JSON: {exc.msg} at column {exc.colno}", line.rstrip(), number)
            continue
        if not isinstance(event, dict):
            yield number, Rejected(where, "a JSON object per line is expected", line.rstrip(), number)
            continue
        yield number, event


def load_events(store: EventStore, path: Path, result: DetectResult) -> None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, item in read_ndjson(handle, str(path)):
            if isinstance(item, Rejected):
                result.rejected.append(item)
                continue
            try:
                result.events_loaded += store.insert([item])
            except StoreError as exc:
                result.rejected.append(Rejected(f"{path}:{number}", str(exc), json.dumps(item)[:4096], number))


def detect(
    store: EventStore,
    rules: list[RuleFile],
    catalog: AtlasCatalog,
    lock: VersionLock | None = None,
    suppression: timedelta = DEFAULT_SUPPRESSION,
    result: DetectResult | None = None,
) -> DetectResult:
    result = result or DetectResult()
    matches: list[Match] = []
    for rule in rules:
        try:
            matches.extend(run_rule(store, rule))
        except ValueError as exc:
            result.rule_errors[rule.rule_id] = str(exc)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for alert in suppress(matches, suppression):
        version = lock.version(alert.match.rule.rule_id) if lock else 1
        result.alerts.append(alert_document(alert, catalog, "sqlite", version, created))
    return result
