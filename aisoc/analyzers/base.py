"""Shared pieces of analyzers: persisted state and the signal event."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from aisoc.collectors.base import make_event
from aisoc.schema import load_registry


class Analyzer(Protocol):
    """Consumes events in time order, returns the signal events they trigger."""

    name: str

    def observe(self, event: dict[str, Any]) -> list[dict[str, Any]]: ...


class StateStore:
    """Key -> JSON state for analyzers (baselines, windows), in SQLite so it survives restarts."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), check_same_thread=False)
        self.conn.execute("CREATE TABLE IF NOT EXISTS state (analyzer TEXT, key TEXT, value TEXT NOT NULL, "
                          "PRIMARY KEY (analyzer, key))")
        self.conn.commit()

    def get(self, analyzer: str, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM state WHERE analyzer = ? AND key = ?", (analyzer, key)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, analyzer: str, key: str, value: Any) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO state (analyzer, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(analyzer, key) DO UPDATE SET value = excluded.value",
                (analyzer, key, json.dumps(value, sort_keys=True)),
            )

    def keys(self, analyzer: str) -> Iterable[str]:
        return [r[0] for r in self.conn.execute("SELECT key FROM state WHERE analyzer = ?", (analyzer,))]


def _known_signals() -> frozenset[str]:
    field = load_registry().get("aisoc.signal.name")
    return field.allowed_names if field else frozenset()


def signal_event(
    *,
    name: str,
    layer: str,
    timestamp: str,
    entity: str,
    value: float,
    sample_size: int,
    window_seconds: int,
    baseline: float | None = None,
    fields: dict[str, Any] | None = None,
    analyzer: str = "aisoc",
) -> dict[str, Any]:
    """A signal event; its id is derived from (signal, entity, window end) so recomputation is idempotent."""
    if name not in _known_signals():
        raise ValueError(f"signal {name!r} is not documented in the field registry (aisoc.signal.name)")
    return make_event(
        layer=layer,
        provider=f"aisoc-analyzer:{analyzer}",
        action=f"signal-{name.replace('_', '-')}",
        record_id=(name, entity, timestamp, window_seconds),
        timestamp=timestamp,
        kind="metric",
        fields={
            "aisoc.signal.name": name,
            "aisoc.signal.value": round(float(value), 6),
            "aisoc.signal.sample_size": int(sample_size),
            "aisoc.signal.entity": entity,
            "aisoc.signal.window_seconds": int(window_seconds),
            "aisoc.signal.baseline": None if baseline is None else round(float(baseline), 6),
            **(fields or {}),
        },
    )
