"""Delivery: each sink drains the spool from its own cursor, acknowledging only what it stored."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from aisoc.detect.store import EventStore, StoreError
from aisoc.service.metrics import ServiceMetrics
from aisoc.sinks.deadletter import DeadLetterStore
from aisoc.sinks.elasticsearch import ElasticsearchSink, SinkUnavailable
from aisoc.spool import Spool

log = structlog.get_logger("aisoc.delivery")


@dataclass
class Delivered:
    stored: int = 0
    duplicates: int = 0
    dead: int = 0


class Sink(Protocol):
    name: str

    def store(self, events: list[dict[str, Any]]) -> Delivered: ...


class SqliteSink:
    """The embedded store; idempotent on event.id. A bad event is dead-lettered, not retried."""

    name = "sqlite"

    def __init__(self, store: EventStore, dead_letters: DeadLetterStore, lock: threading.Lock) -> None:
        self.store_ = store
        self.dead_letters = dead_letters
        self.lock = lock  # shared with the detection loop: one SQLite connection

    def store(self, events: list[dict[str, Any]]) -> Delivered:
        with self.lock:
            try:  # the common case: the whole batch in one transaction
                added = self.store_.insert(events)
                return Delivered(stored=added, duplicates=len(events) - added)
            except StoreError:
                pass  # the batch was rolled back; find the bad events one by one
        out = Delivered()
        with self.lock:
            for event in events:
                try:
                    added = self.store_.insert([event])
                except StoreError as exc:
                    self.dead_letters.add("sink:sqlite", str(exc), json.dumps(event, default=str))
                    out.dead += 1
                    continue
                out.stored += added
                out.duplicates += 1 - added
        return out


class EsSink:
    name = "elasticsearch"

    def __init__(self, sink: ElasticsearchSink) -> None:
        self.sink = sink

    def store(self, events: list[dict[str, Any]]) -> Delivered:
        result = self.sink.send(events)  # raises SinkUnavailable: the batch stays in the spool
        return Delivered(result.created, result.duplicates, result.dead_lettered)


class FileSink:
    """Appends events to an NDJSON file (at least once: after a crash a batch may be written twice;
    readers dedupe on event.id)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def store(self, events: list[dict[str, Any]]) -> Delivered:
        with open(self.path, "a", encoding="utf-8") as fh:
            for event in events:
                fh.write(json.dumps(event, ensure_ascii=False, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return Delivered(stored=len(events))


class DeliveryWorker(threading.Thread):
    def __init__(self, spool: Spool, sink: Sink, metrics: ServiceMetrics, batch_size: int = 500,
                 idle_seconds: float = 0.2, retry_seconds: float = 2.0) -> None:
        super().__init__(name=f"deliver-{sink.name}", daemon=True)
        self.spool = spool
        self.sink = sink
        self.metrics = metrics
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.retry_seconds = retry_seconds
        self.stopping = threading.Event()

    def drain_once(self) -> int:
        """Deliver one batch; returns how many entries it acknowledged (0 when idle or unavailable)."""
        batch = self.spool.read(self.sink.name, self.batch_size)
        if not batch:
            return 0
        started = time.perf_counter()
        try:
            result = self.sink.store([entry.event for entry in batch])
        except SinkUnavailable as exc:
            log.warning("sink_unavailable", sink=self.sink.name, error=str(exc), pending=len(batch))
            return 0
        self.spool.ack(self.sink.name, batch[-1].seq)
        self.metrics.delivery_latency.labels(sink=self.sink.name).observe(time.perf_counter() - started)
        self.metrics.events_out.labels(sink=self.sink.name).inc(result.stored)
        self.metrics.duplicates.labels(sink=self.sink.name).inc(result.duplicates)
        self.metrics.dead_letters.labels(source=f"sink:{self.sink.name}").inc(result.dead)
        self.metrics.spool_depth.set(self.spool.depth())
        return len(batch)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                delivered = self.drain_once()
            except Exception as exc:  # noqa: BLE001 - a sink bug must not kill delivery; the batch stays spooled
                log.error("delivery_failed", sink=self.sink.name, error=f"{type(exc).__name__}: {exc}")
                self.stopping.wait(self.retry_seconds)
                continue
            if delivered == 0:
                self.stopping.wait(self.idle_seconds if self.spool.lag(self.sink.name) == 0 else self.retry_seconds)

    def drain(self, timeout: float) -> None:
        """On shutdown: deliver what is spooled, for at most `timeout` seconds (the rest stays spooled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.spool.lag(self.sink.name) and self.drain_once():
            pass
