"""The durable spool between receiving and delivery.

A batch is acknowledged to its source only after `append` returns, and `append` returns only after
SQLite has committed it with `synchronous=FULL` (on disk, surviving `kill -9` and power loss of the
process). Each sink reads the spool from its own cursor and moves the cursor after a successful
delivery, so delivery is at least once; deterministic `event.id`s make the sinks idempotent, so
at-least-once becomes exactly-once in the store. Entries every sink has passed are deleted.

The spool is bounded (events and bytes). When full, `append` raises `SpoolFull` and the receiver
answers 503 with Retry-After: back-pressure to the source, never silent loss.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SpoolFull(RuntimeError):
    """The spool is at its bound; the source must retry later."""


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    event: dict[str, Any]


class Spool:
    def __init__(self, path: Path, sinks: Iterable[str], max_events: int = 1_000_000,
                 max_bytes: int = 1024 * 1024 * 1024) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                           "source TEXT NOT NULL, body TEXT NOT NULL)")
        self._conn.execute("CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
        self.sinks = list(sinks)
        for sink in self.sinks:
            self._conn.execute("INSERT OR IGNORE INTO cursors (sink, seq) VALUES (?, 0)", (sink,))
        # Sinks no longer configured must not hold entries forever.
        marks = ",".join("?" for _ in self.sinks) or "''"
        self._conn.execute(f"DELETE FROM cursors WHERE sink NOT IN ({marks})", self.sinks)
        self._depth, self._bytes = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM spool").fetchone()

    def append(self, source: str, events: list[dict[str, Any]]) -> int:
        """Durably add events; returns the last sequence number. Raises SpoolFull at the bound."""
        bodies = [json.dumps(e, ensure_ascii=False, sort_keys=True, default=str) for e in events]
        size = sum(len(b) for b in bodies)
        with self._lock:
            if self._depth + len(bodies) > self.max_events or self._bytes + size > self.max_bytes:
                raise SpoolFull(f"spool holds {self._depth} events / {self._bytes} bytes")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT INTO spool (source, body) VALUES (?, ?)",
                                       [(source, b) for b in bodies])
                last = self._conn.execute("SELECT MAX(seq) FROM spool").fetchone()[0] or 0
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._depth += len(bodies)
            self._bytes += size
            return int(last)

    def read(self, sink: str, limit: int) -> list[SpoolEntry]:
        with self._lock:
            cursor = self._conn.execute("SELECT seq FROM cursors WHERE sink = ?", (sink,)).fetchone()[0]
            rows = self._conn.execute("SELECT seq, body FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
                                      (cursor, limit)).fetchall()
        return [SpoolEntry(seq, json.loads(body)) for seq, body in rows]

    def ack(self, sink: str, seq: int) -> None:
        """The sink has durably stored everything up to `seq`; drop entries every sink has passed."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("UPDATE cursors SET seq = MAX(seq, ?) WHERE sink = ?", (seq, sink))
            floor = self._conn.execute("SELECT MIN(seq) FROM cursors").fetchone()[0] or 0
            removed = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM spool WHERE seq <= ?", (floor,)).fetchone()
            self._conn.execute("DELETE FROM spool WHERE seq <= ?", (floor,))
            self._conn.execute("COMMIT")
            self._depth -= removed[0]
            self._bytes -= removed[1]

    def depth(self) -> int:
        return int(self._depth)

    def lag(self, sink: str) -> int:
        with self._lock:
            cursor = self._conn.execute("SELECT seq FROM cursors WHERE sink = ?", (sink,)).fetchone()[0]
            return int(self._conn.execute("SELECT COUNT(*) FROM spool WHERE seq > ?", (cursor,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
