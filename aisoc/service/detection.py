"""The service's detection loop on the embedded store: run the pack, emit new or grown alerts.

Each pass evaluates every rule over events since `checkpoint - lookback - window`, where window
covers the longest correlation timespan and one suppression bucket, so alerts near the start of
the range are rebuilt whole. Alerts have deterministic ids (rule, entity, bucket); the pass emits
an alert when it is new or its event count grew, and remembers what it emitted in the store, so a
restart repeats nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from aisoc.atlas.catalog import AtlasCatalog
from aisoc.detect.alerts import DEFAULT_SUPPRESSION, alert_document, suppress
from aisoc.detect.engine import Match, run_rule
from aisoc.detect.store import EventStore
from aisoc.rules.fields import rule_fields
from aisoc.rules.loader import RuleFile
from aisoc.rules.lock import VersionLock
from aisoc.rules.model import normalize_timestamp
from aisoc.service.metrics import ServiceMetrics

log = structlog.get_logger("aisoc.detection")
AlertSink = Callable[[list[dict[str, Any]]], None]


class EmbeddedDetection:
    def __init__(self, store: EventStore, lock: threading.Lock, rules: list[RuleFile], catalog: AtlasCatalog,
                 emit: AlertSink, metrics: ServiceMetrics, version_lock: VersionLock | None = None,
                 lookback: timedelta = timedelta(minutes=10), suppression: timedelta = DEFAULT_SUPPRESSION) -> None:
        self.store = store
        self.lock = lock
        self.rules = rules
        self.catalog = catalog
        self.emit = emit
        self.metrics = metrics
        self.version_lock = version_lock
        self.lookback = lookback
        self.suppression = suppression
        timespans = [r.primary.timespan.seconds for r in rules if r.is_correlation]  # type: ignore[union-attr]
        self.window = timedelta(seconds=max(timespans, default=0)) + suppression
        with self.lock:
            self.store.conn.execute("CREATE TABLE IF NOT EXISTS aisoc_alerts (id TEXT PRIMARY KEY, count INTEGER, "
                                    "doc TEXT NOT NULL)")
            self.store.conn.execute("CREATE TABLE IF NOT EXISTS aisoc_checkpoint (id INTEGER PRIMARY KEY, at TEXT)")
            self.store.conn.commit()
            self.store.ensure_columns({f for r in rules for f in rule_fields(r)})

    def _checkpoint(self) -> str | None:
        row = self.store.conn.execute("SELECT at FROM aisoc_checkpoint WHERE id = 1").fetchone()
        return row[0] if row else None

    def run_once(self, now: datetime | None = None) -> list[dict[str, Any]]:
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        with self.lock:
            previous = self._checkpoint()
            since = None
            if previous:
                since = normalize_timestamp(
                    datetime.fromisoformat(previous.replace("Z", "+00:00")) - self.lookback - self.window)
            matches: list[Match] = []
            with self.store.window(since):
                for rule in self.rules:
                    try:
                        matches.extend(run_rule(self.store, rule))
                    except ValueError as exc:
                        log.error("rule_failed", rule=rule.rule_id, error=str(exc))
            created = normalize_timestamp(now)
            emitted = []
            for group in suppress(matches, self.suppression):
                version = self.version_lock.version(group.match.rule.rule_id) if self.version_lock else 1
                doc = alert_document(group, self.catalog, "sqlite", version, created)
                row = self.store.conn.execute("SELECT count FROM aisoc_alerts WHERE id = ?",
                                              (doc["event.id"],)).fetchone()
                if row is not None and row[0] >= doc["aisoc.alert.count"]:
                    continue
                emitted.append(doc)
            if emitted:
                self.emit(emitted)  # outputs first: a crash before the commit below re-emits, never loses
            with self.store.conn:
                for doc in emitted:
                    self.store.conn.execute(
                        "INSERT INTO aisoc_alerts (id, count, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE "
                        "SET count = excluded.count, doc = excluded.doc",
                        (doc["event.id"], doc["aisoc.alert.count"], json.dumps(doc, sort_keys=True)))
                self.store.conn.execute("INSERT INTO aisoc_checkpoint (id, at) VALUES (1, ?) ON CONFLICT(id) "
                                        "DO UPDATE SET at = excluded.at", (created,))
        for doc in emitted:
            self.metrics.alerts.labels(rule=doc["rule.id"]).inc()
        self.metrics.rule_seconds.observe(time.perf_counter() - started)
        return emitted


class DetectionLoop(threading.Thread):
    def __init__(self, detection: EmbeddedDetection, interval_seconds: float) -> None:
        super().__init__(name="detection", daemon=True)
        self.detection = detection
        self.interval = interval_seconds
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.detection.run_once()
            except Exception as exc:  # noqa: BLE001 - detection errors are logged, the loop goes on
                log.error("detection_failed", error=f"{type(exc).__name__}: {exc}")
