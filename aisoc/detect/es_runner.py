"""Scheduled detection on Elasticsearch: interval, lookback, a persisted checkpoint, alerts written back.

Each run evaluates every rule over `(checkpoint - lookback, now]` (correlations also see one
timespan before that), so late events inside the lookback are still found. Alerts are suppressed
per rule, entity and fixed time bucket (see `aisoc.detect.alerts.suppress`); every bucket a run
touches is rebuilt from *all* its matching events, so an alert is a pure function of the data and
gets a deterministic id. Writing it is idempotent: created once in the alerts data stream, updated
in place (same backing index, optimistic concurrency) when more events join it. The checkpoint
only moves after every alert of a run is written, so a runner killed at any point and restarted
neither misses nor repeats an alert.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import ConflictError, Elasticsearch

from aisoc.atlas.catalog import AtlasCatalog
from aisoc.detect.alerts import DEFAULT_SUPPRESSION, AlertGroup, alert_document, bucket_of, suppress, unflatten
from aisoc.detect.engine import Match
from aisoc.detect.es_engine import ElasticsearchEngine, UnsupportedOnElasticsearch
from aisoc.rules.loader import RuleFile
from aisoc.rules.lock import VersionLock


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class RunReport:
    start: str
    end: str
    alerts_created: int = 0
    alerts_updated: int = 0
    alerts_unchanged: int = 0
    rule_errors: dict[str, str] = field(default_factory=dict)


class Checkpoint:
    """The end of the last completed run, in a small JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        try:
            return str(json.loads(self.path.read_text(encoding="utf-8"))["end"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{self.path}: unreadable checkpoint ({exc}); delete it to start over") from None

    def save(self, end: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checkpoint-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"end": end}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class ElasticsearchRunner:
    def __init__(
        self,
        client: Elasticsearch,
        rules: list[RuleFile],
        catalog: AtlasCatalog,
        checkpoint: Checkpoint,
        lock: VersionLock | None = None,
        namespace: str = "default",
        source_namespace: str = "*",
        lookback: timedelta = timedelta(minutes=10),
        suppression: timedelta = DEFAULT_SUPPRESSION,
    ) -> None:
        self.client = client
        self.rules = rules
        self.catalog = catalog
        self.checkpoint = checkpoint
        self.lock = lock
        self.alerts_stream = f"logs-aisoc.alerts-{namespace}"
        self.engine = ElasticsearchEngine(client, source_namespace)
        self.lookback = lookback
        self.suppression = suppression

    def run_once(self, now: datetime | None = None) -> RunReport:
        end = _iso(now or datetime.now(UTC))
        previous = self.checkpoint.load()
        start = _iso(_parse(previous) - self.lookback) if previous else _iso(_parse(end) - self.lookback)
        report = RunReport(start, end)
        for rule in self.rules:
            try:
                groups = self._groups(rule, start, end)
            except UnsupportedOnElasticsearch as exc:
                report.rule_errors[rule.rule_id] = str(exc)
                continue
            for group in groups:
                self._write(group, report)
        self.client.indices.refresh(index=self.alerts_stream, ignore_unavailable=True)
        self.checkpoint.save(end)
        return report

    def _groups(self, rule: RuleFile, start: str, end: str) -> list[AlertGroup]:
        touched = self.engine.run_rule(rule, start, end)
        if not touched:
            return []
        # Rebuild every touched bucket from all of its events, not just this run's.
        first_bucket = min(bucket_of(m.first, self.suppression) for m in touched)
        last_bucket_end = _iso(_parse(max(bucket_of(m.first, self.suppression) for m in touched)) + self.suppression)
        full: list[Match] = self.engine.run_rule(rule, first_bucket, last_bucket_end)
        keys = {(bucket_of(m.first, self.suppression), tuple(sorted(m.entity.items()))) for m in touched}
        return [g for g in suppress(full, self.suppression)
                if (g.bucket_start, tuple(sorted(g.match.entity.items()))) in keys]

    def _write(self, group: AlertGroup, report: RunReport) -> None:
        version = self.lock.version(group.match.rule.rule_id) if self.lock else 1
        doc = unflatten(alert_document(group, self.catalog, "elasticsearch", version))
        alert_id = doc["event"]["id"]
        try:
            self.client.create(index=self.alerts_stream, id=alert_id, document=doc)
            report.alerts_created += 1
            return
        except ConflictError:
            pass
        found = self.client.search(index=self.alerts_stream, query={"ids": {"values": [alert_id]}},
                                   seq_no_primary_term=True, size=1)["hits"]["hits"]
        if not found:
            raise RuntimeError(f"alert {alert_id} conflicts but cannot be found")
        current = found[0]
        if _same_alert(current["_source"], doc):
            report.alerts_unchanged += 1
            return
        self.client.index(index=current["_index"], id=alert_id, document=doc,
                          if_seq_no=current["_seq_no"], if_primary_term=current["_primary_term"])
        report.alerts_updated += 1


def _same_alert(stored: dict[str, Any], new: dict[str, Any]) -> bool:
    def key(doc: dict[str, Any]) -> dict[str, Any]:
        alert = doc.get("aisoc", {}).get("alert", {})
        return {"count": alert.get("count"), "ids": alert.get("event_ids"), "last": alert.get("last_event"),
                "version": doc.get("rule", {}).get("version")}

    return key(stored) == key(new)
