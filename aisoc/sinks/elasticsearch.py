"""Bulk-ingest ECS events into aisoc's data streams, exactly once per `event.id`.

- `_id` is the event's deterministic `event.id` and the op is `create`: a redelivered event gets
  409 from Elasticsearch and counts as already stored, never as a duplicate.
- Whole-request failures (connection errors, 429, 5xx) and per-item 429/5xx are retried with
  exponential backoff and jitter; after `max_retries` the sink raises `SinkUnavailable` with the
  events it could not deliver, so the caller keeps them (spool) instead of losing them.
- Per-item rejections that retrying cannot fix (mapping conflicts, oversized documents) go to the
  dead-letter store with Elasticsearch's reason and the raw event.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch

from aisoc.detect.alerts import unflatten
from aisoc.rules.model import LAYERS, flatten_event
from aisoc.sinks.deadletter import DeadLetterStore

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024


class SinkUnavailable(RuntimeError):
    """Elasticsearch could not take these events after every retry; the caller must keep them."""

    def __init__(self, message: str, pending: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.pending = pending


@dataclass
class SinkResult:
    created: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    reasons: list[str] = field(default_factory=list)


def field_value(event: dict[str, Any], name: str) -> Any:
    """A field of an event written nested (`{"event": {"id": ..}}`), dotted (`{"event.id": ..}`) or mixed."""
    if name in event:
        return event[name]
    head, _, rest = name.partition(".")
    node = event.get(head)
    if isinstance(node, dict) and rest:
        return field_value(node, rest)
    for key, value in event.items():  # mixed forms such as {"event": {...}, "aisoc.llm.cost": 1}
        if name.startswith(key + ".") and isinstance(value, dict):
            return field_value(value, name[len(key) + 1:])
    return None


def data_stream_for(event: dict[str, Any], namespace: str = "default") -> str:
    """`logs-aisoc.<dataset>-<namespace>` from event.kind / event.dataset / aisoc.layer."""
    if field_value(event, "event.kind") == "alert":
        return f"logs-aisoc.alerts-{namespace}"
    dataset = str(field_value(event, "event.dataset") or "")
    if dataset.startswith("aisoc."):
        layer = dataset.removeprefix("aisoc.")
    else:
        layer = str(field_value(event, "aisoc.layer") or "")
    if layer not in LAYERS:
        flat = flatten_event(event)
        layer = "inference" if any(k.startswith(("gen_ai.", "aisoc.llm.", "aisoc.inference.")) for k in flat) else ""
    return f"logs-aisoc.{layer or 'unknown'}-{namespace}"


def _batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class ElasticsearchSink:
    def __init__(
        self,
        client: Elasticsearch,
        dead_letters: DeadLetterStore,
        namespace: str = "default",
        batch_size: int = 500,
        max_retries: int = 8,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        refresh: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.dead_letters = dead_letters
        self.namespace = namespace
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_event_bytes = max_event_bytes
        self.refresh = refresh
        self._sleep = sleep

    def _serialize(self, event: dict[str, Any], ingested: str) -> str:
        """The document as Elasticsearch stores it: nested ECS JSON with event.ingested stamped."""
        doc = unflatten(flatten_event(event)) if any("." in key for key in event) else dict(event)
        section = dict(doc.get("event") or {})
        section.setdefault("ingested", ingested)
        doc["event"] = section
        return json.dumps(doc, default=str, ensure_ascii=False)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_initial * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311

    def send(self, events: Iterable[dict[str, Any]]) -> SinkResult:
        result = SinkResult()
        for batch in _batches(events, self.batch_size):
            self._send_batch(batch, result)
        return result

    def _send_batch(self, batch: list[dict[str, Any]], result: SinkResult) -> None:
        pending: list[tuple[dict[str, Any], str, str, str]] = []  # (event, index, id, serialized doc)
        ingested = datetime.now(UTC).isoformat(timespec="milliseconds")
        for event in batch:
            event_id = field_value(event, "event.id")
            doc = self._serialize(event, ingested)
            size = len(doc.encode("utf-8"))
            if not event_id:
                self._dead(result, "event has no event.id", doc)
            elif size > self.max_event_bytes:
                self._dead(result, f"event is {size} bytes, over the {self.max_event_bytes} cap", doc)
            else:
                pending.append((event, data_stream_for(event, self.namespace), str(event_id), doc))
        attempt = 0
        while pending:
            lines: list[str] = []
            for _, index, event_id, doc in pending:
                lines.append(json.dumps({"create": {"_index": index, "_id": event_id}}))
                lines.append(doc)
            try:
                response = self.client.bulk(operations="\n".join(lines) + "\n", refresh=self.refresh)
            except (EsConnectionError, ConnectionTimeout) as exc:
                pending = self._retry_or_raise(pending, attempt, f"connection failed: {exc}", result)
                attempt += 1
                continue
            except ApiError as exc:
                if exc.meta.status in RETRYABLE_STATUS:
                    pending = self._retry_or_raise(pending, attempt, f"HTTP {exc.meta.status}", result)
                    attempt += 1
                    continue
                raise
            retry: list[tuple[dict[str, Any], str, str, str]] = []
            for (event, index, event_id, doc), item in zip(pending, response["items"], strict=True):
                outcome = item["create"]
                status = int(outcome.get("status", 0))
                if status in (200, 201):
                    result.created += 1
                elif status == 409:
                    result.duplicates += 1
                elif status in RETRYABLE_STATUS:
                    retry.append((event, index, event_id, doc))
                else:
                    error = outcome.get("error") or {}
                    reason = f"{index}: {error.get('type', status)}: {error.get('reason', '')}".strip()
                    self._dead(result, reason, doc)
            pending = retry
            if pending:
                pending = self._retry_or_raise(pending, attempt, "items rejected with 429/5xx", result)
                attempt += 1

    def _retry_or_raise(
        self, pending: list[tuple[dict[str, Any], str, str, str]], attempt: int, why: str, result: SinkResult
    ) -> list[tuple[dict[str, Any], str, str, str]]:
        if attempt >= self.max_retries:
            raise SinkUnavailable(f"Elasticsearch unavailable after {attempt} retries ({why})",
                                  [event for event, _, _, _ in pending])
        result.retries += 1
        self._sleep(self._backoff(attempt))
        return pending

    def _dead(self, result: SinkResult, reason: str, raw: str) -> None:
        self.dead_letters.add("elasticsearch-sink", reason, raw)
        result.dead_lettered += 1
        result.reasons.append(reason)
