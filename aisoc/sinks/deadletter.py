"""The dead-letter store: every record aisoc could not take, with the reason and the raw bytes.

Nothing is silently dropped: a malformed or rejected record lands here, can be listed, inspected
and replayed once the cause is fixed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class DeadLetter:
    id: int
    at: str
    source: str
    reason: str
    raw: bytes


class DeadLetterStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, "
            "source TEXT NOT NULL, reason TEXT NOT NULL, raw BLOB NOT NULL)"
        )
        self.conn.commit()

    def add(self, source: str, reason: str, raw: bytes | str) -> int:
        data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO dead_letters (at, source, reason, raw) VALUES (?, ?, ?, ?)", (at, source, reason, data))
        return int(cursor.lastrowid or 0)

    def list(self, limit: int = 100) -> list[DeadLetter]:
        rows = self.conn.execute(
            "SELECT id, at, source, reason, raw FROM dead_letters ORDER BY id LIMIT ?", (limit,))
        return [DeadLetter(*row) for row in rows]

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def remove(self, ids: list[int]) -> None:
        with self.conn:
            self.conn.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])

    def close(self) -> None:
        self.conn.close()
