"""Shared pieces of every collector: deterministic event ids, the ECS envelope, cursors."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, Protocol

from aisoc.records import Rejected
from aisoc.rules.model import LAYERS, normalize_timestamp

ECS_VERSION = "9.4.0"
MAX_ORIGINAL_CHARS = 16 * 1024


class MappingError(ValueError):
    """A native record that cannot be mapped; the message says which field and why."""


def event_id(source: str, *identity: object) -> str:
    """Deterministic event id from the source (collector/platform) and the record's own identity.

    The same record always gets the same id, so replays and redeliveries never duplicate an event.
    """
    # the text json.dumps([source, *parts], ensure_ascii=False) gives, built without an encoder per call
    key = "[" + ", ".join(encode_basestring(str(part)) for part in (source, *identity)) + "]"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def cap_original(raw: bytes | str | dict[str, Any] | list[Any]) -> str:
    """`event.original`: the raw record as text, cut to MAX_ORIGINAL_CHARS with a marker."""
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", errors="replace")
    elif isinstance(raw, str):
        text = raw
    else:
        text = json.dumps(raw, ensure_ascii=False, default=str)  # key order as received
    if len(text) > MAX_ORIGINAL_CHARS:
        return text[:MAX_ORIGINAL_CHARS] + f"...[truncated, {len(text)} chars]"
    return text


def make_event(
    *,
    layer: str,
    provider: str,
    action: str,
    record_id: tuple[object, ...],
    timestamp: Any,
    fields: dict[str, Any],
    original: bytes | str | dict[str, Any] | list[Any] | None = None,
    kind: str = "event",
    outcome: str | None = None,
    collector: str | None = None,
) -> dict[str, Any]:
    """An ECS event (flat dotted keys) with aisoc's envelope filled in.

    `record_id` is the platform's own identity of the record (e.g. MLflow model name + version +
    last_updated_timestamp); together with `provider` and `action` it makes `event.id`.
    """
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}")
    when = normalize_timestamp(timestamp) if timestamp is not None else None
    if when is None:
        raise MappingError("record has no usable timestamp")
    event: dict[str, Any] = {
        "@timestamp": when,
        "event.id": event_id(provider, action, *record_id),
        "event.kind": kind,
        "event.module": "aisoc",
        "event.provider": provider,
        "event.dataset": f"aisoc.{layer}",
        "event.action": action,
        "event.created": _now(),
        "aisoc.layer": layer,
        "ecs.version": ECS_VERSION,
    }
    if outcome:
        event["event.outcome"] = outcome
    if collector:
        event["aisoc.collector"] = collector
    if original is not None:
        event["event.original"] = cap_original(original)
    event.update({k: v for k, v in fields.items() if v is not None and v != "" and v != []})
    return event


_clock: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _now() -> str:
    """The current time as canonical ISO text; the formatted second is reused (one call per event)."""
    now = time.time()
    second = int(now)
    if second != _clock[0]:
        _clock[0], _clock[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_clock[1]}.{int((now - second) * 1000):03d}Z"


def read_replay_file(path: Path, max_bytes: int) -> bytes | Rejected:
    """A native file to replay, whole; a Rejected naming the file when it is too large or unreadable."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Rejected(str(path), f"file is {size} bytes, over the {max_bytes}-byte replay limit; split it "
                            "into smaller files", b"")
        return path.read_bytes()
    except OSError as exc:
        return Rejected(str(path), f"cannot read file: {exc.strerror or exc}", b"")


def epoch_ms_to_iso(value: Any) -> str | None:
    """Milliseconds since the epoch (MLflow, LiteLLM) -> ISO-8601 UTC."""
    if value is None or value == "":
        return None
    try:
        return normalize_timestamp(datetime.fromtimestamp(int(value) / 1000, tz=UTC))
    except (TypeError, ValueError, OverflowError, OSError):
        raise MappingError(f"timestamp {value!r} is not milliseconds since the epoch") from None


class Source(Protocol):
    """What a collector offers the CLI and the service."""

    name: str

    def replay(self, path: Path) -> Iterator[dict[str, Any] | Rejected]: ...


@dataclass
class CursorStore:
    """Per-collector resume points, one small SQLite file, written atomically per update."""

    path: Path
    _conn: sqlite3.Connection | None = field(default=None, init=False, repr=False)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False)
            self._conn.execute("CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._conn.commit()
        return self._conn

    def get(self, name: str, default: Any = None) -> Any:
        row = self._db().execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, name: str, value: Any) -> None:
        with self._db():
            self._db().execute(
                "INSERT INTO cursors (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, json.dumps(value, sort_keys=True)),
            )


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
    os.replace(tmp, path)
