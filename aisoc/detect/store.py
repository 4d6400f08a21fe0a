"""The embedded event store: ECS events in one SQLite table whose columns come from the field registry.

Column affinities make Sigma's semantics hold on SQLite: keyword columns are `COLLATE NOCASE` (Sigma
compares strings case-insensitively; `|cased` compiles to GLOB, which ignores the collation),
numeric columns are NUMERIC so `|gt` compares numbers, booleans are stored as 1/0 (the SQLite
backend matches `true` as `'true' OR 1`). A field the registry does not know (e.g. `labels.env`)
gets a TEXT column the first time it is seen.

Multi-valued fields: Sigma (and Elasticsearch) match a field holding a list when *any* value
matches. A SQLite cell holds one value, so an event with lists is stored as one row per combination
of its values (`_variant`), all sharing its `event.id`; matches are folded back per `event.id`, and
the SQLite backend's correlations count distinct event ids. (A negated condition on a multi-valued
field can therefore still match through another value, where Elasticsearch would exclude the event.)
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aisoc.rules.model import flatten_event, normalize_timestamp
from aisoc.schema import FieldRegistry, load_registry

TABLE = "logs"
SOURCE_COLUMN = "_source"
MAX_DYNAMIC_COLUMNS = 500
MAX_VARIANTS = 64


class StoreError(ValueError):
    """An event the store cannot take (the caller dead-letters it with this reason)."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_decl(field_type: str) -> str:
    if field_type in ("long", "integer", "short", "byte", "float", "double", "half_float", "scaled_float"):
        return "NUMERIC"
    if field_type == "boolean":
        return "INTEGER"
    return "TEXT COLLATE NOCASE"


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str, value: Any) -> bool:
    if value is None:
        return False
    return _compiled(pattern).search(str(value)) is not None


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, list):
        if len(value) == 1:
            return _cell(value[0])
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None
    return value


class EventStore:
    """Events in SQLite (`:memory:` or a file). Insert is idempotent on `event.id`."""

    def __init__(self, path: str | Path = ":memory:", registry: FieldRegistry | None = None) -> None:
        self.registry = registry or load_registry()
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False)  # callers serialize access
        self.conn.create_function("REGEXP", 2, _regexp, deterministic=True)
        self.conn.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY")
        self._columns = self._ensure_table()

    def _ensure_table(self) -> set[str]:
        existing = {row[1] for row in self.conn.execute(f"PRAGMA table_info({TABLE})")}
        if not existing:
            cols = [f'{_quote("event.id")} TEXT NOT NULL', "_variant INTEGER NOT NULL DEFAULT 0",
                    f'{_quote("@timestamp")} TEXT']
            for f in self.registry.fields.values():
                if f.name in ("event.id", "@timestamp") or f.type in ("object", "flattened"):
                    continue
                cols.append(f"{_quote(f.name)} {_column_decl(f.type)}")
            cols.append(f"{_quote(SOURCE_COLUMN)} TEXT NOT NULL")
            cols.append(f'UNIQUE ({_quote("event.id")}, _variant)')
            self.conn.execute(f"CREATE TABLE {TABLE} ({', '.join(cols)})")
            self.conn.execute(f'CREATE INDEX IF NOT EXISTS logs_ts ON {TABLE} ({_quote("@timestamp")})')
            self.conn.commit()
            existing = {row[1] for row in self.conn.execute(f"PRAGMA table_info({TABLE})")}
        return existing

    def _add_column(self, name: str) -> None:
        if len(self._columns) >= len(self.registry.fields) + MAX_DYNAMIC_COLUMNS:
            raise StoreError(f"too many distinct unregistered fields (at {name!r}); register them in fields.yml")
        self.conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {_quote(name)} TEXT COLLATE NOCASE")
        self._columns.add(name)

    def ensure_columns(self, names: Iterable[str]) -> None:
        """Make columns exist for fields a query names, so a rule on an unseen field reads NULL."""
        for name in names:
            if name not in self._columns and name not in ("rowid", "_variant"):
                if self.conn.execute("SELECT 1 FROM sqlite_temp_master WHERE name = ?", (TABLE,)).fetchone():
                    raise StoreError(f"cannot add column {name!r} inside a time window; call ensure_columns first")
                self._add_column(name)

    def rows_for(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """One row per combination of the values of the event's multi-valued fields (capped)."""
        row = self.row_for(event)
        lists = {k: v for k, v in flatten_event(event).items() if isinstance(v, list) and len(v) > 1}
        combos: list[dict[str, Any]] = [{}]
        for name, values in lists.items():
            if len(combos) * len(values) > MAX_VARIANTS:
                break
            combos = [{**c, name: _cell(v)} for c in combos for v in values]
        return [{**row, **combo, "_variant": i} for i, combo in enumerate(combos)]

    def row_for(self, event: dict[str, Any]) -> dict[str, Any]:
        flat = flatten_event(event)
        event_id = flat.get("event.id")
        if not event_id or not isinstance(event_id, str):
            raise StoreError("event has no string 'event.id'")
        timestamp = normalize_timestamp(flat.get("@timestamp")) if flat.get("@timestamp") else None
        if timestamp is None:
            raise StoreError("event has no '@timestamp'")
        row: dict[str, Any] = {name: _cell(value) for name, value in flat.items()}
        row["@timestamp"] = timestamp
        row[SOURCE_COLUMN] = json.dumps(event, ensure_ascii=False, sort_keys=True, default=str)
        return row

    def insert(self, events: Iterable[dict[str, Any]]) -> int:
        """Insert events (nested or dotted); returns how many were new. Raises StoreError on a bad event."""
        added = 0
        with self.conn:
            for event in events:
                for row in self.rows_for(event):
                    self.ensure_columns(row)
                    names = list(row)
                    sql = (f"INSERT OR IGNORE INTO {TABLE} ({', '.join(_quote(n) for n in names)}) "
                           f"VALUES ({', '.join('?' for _ in names)})")
                    try:
                        inserted = self.conn.execute(sql, [row[n] for n in names]).rowcount
                    except sqlite3.Error as exc:
                        raise StoreError(f"event {row['event.id']!r}: {exc}") from None
                    if row["_variant"] == 0:
                        added += inserted
        return added

    @contextmanager
    def window(self, since: str | None) -> Iterator[None]:
        """Within the block, queries on `logs` see only events at or after `since`.

        A TEMP view named `logs` shadows the table (SQLite resolves the temp schema first), so
        compiled rules run unchanged over a time window.
        """
        if since is None:
            yield
            return
        bound = normalize_timestamp(since)  # a canonical timestamp: safe to inline (views take no parameters)
        self.conn.execute(f"CREATE TEMP VIEW {TABLE} AS SELECT * FROM main.{TABLE} "
                          f"WHERE {_quote('@timestamp')} >= '{bound}'")
        try:
            yield
        finally:
            self.conn.execute(f"DROP VIEW IF EXISTS temp.{TABLE}")

    def query(self, sql: str) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def source_of(self, event_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(event_ids)
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        rows = self.conn.execute(
            f'SELECT {_quote(SOURCE_COLUMN)} FROM {TABLE} WHERE {_quote("event.id")} IN ({marks}) '
            f'AND _variant = 0 ORDER BY {_quote("@timestamp")}', ids)
        return [json.loads(r[0]) for r in rows]

    def count(self) -> int:
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE _variant = 0").fetchone()[0])

    def close(self) -> None:
        self.conn.close()
