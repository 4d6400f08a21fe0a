"""Analyzer state held in memory and written to the `StateStore` at checkpoints, atomically.

Why checkpoints rather than a write per event: the service hands the chain a batch of events from
its spool and acknowledges the batch after the chain returns. If every analyzer's state for the
batch is committed in one SQLite transaction at the end, a crash mid-batch leaves the state as it
was before the batch, the spool redelivers it, and the recomputed signals are identical (same
deterministic ids). A write per event would count the redelivered events twice.

`save_changes` writes into the `state` table of `aisoc.analyzers.base.StateStore` through its
connection, because `StateStore.put` commits per key and cannot group keys into one transaction.
Each change names the store it belongs to, so components built on different stores can be
checkpointed together (one transaction per store).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from aisoc.analyzers.base import StateStore


class _Deleted:
    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()

Change = tuple[StateStore, str, str, Any]  # (store, analyzer namespace, key, JSON value or DELETED)
STARTED = "\x00started"  # KeyState key of the first time an analyzer saw anything; never an entity


class Persistent(Protocol):
    """A component whose state the chain checkpoints."""

    def state_changes(self) -> list[Change]: ...

    def state_saved(self) -> None: ...


def load_all(store: StateStore, namespace: str) -> dict[str, Any]:
    """Every key of one analyzer namespace, in one query."""
    rows = store.conn.execute("SELECT key, value FROM state WHERE analyzer = ?", (namespace,)).fetchall()
    return {key: json.loads(value) for key, value in rows}


def save_changes(changes: Iterable[Change]) -> None:
    """Write (or delete) all changed keys, in a single transaction per store."""
    by_store: dict[int, tuple[StateStore, list[Change]]] = {}
    for change in changes:
        by_store.setdefault(id(change[0]), (change[0], []))[1].append(change)
    for store, rows in by_store.values():
        _write(store, rows)


def _write(store: StateStore, rows: list[Change]) -> None:
    with store.conn:
        for _, namespace, key, value in rows:
            if value is DELETED:
                store.conn.execute("DELETE FROM state WHERE analyzer = ? AND key = ?", (namespace, key))
            else:
                store.conn.execute(
                    "INSERT INTO state (analyzer, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT(analyzer, key) DO UPDATE SET value = excluded.value",
                    (namespace, key, json.dumps(value, sort_keys=True)),
                )


def checkpoint(components: Iterable[Persistent]) -> None:
    """Persist the pending state of several components together, then mark them saved."""
    parts = list(components)
    save_changes([c for part in parts for c in part.state_changes()])
    for part in parts:
        part.state_saved()


class KeyState:
    """One analyzer's keys, loaded once, changed in memory, written at the next checkpoint.

    Values must be JSON-serializable. After mutating a stored value in place, call `touch(key)`.
    """

    def __init__(self, store: StateStore, namespace: str) -> None:
        self.store = store
        self.namespace = namespace
        self._data = load_all(store, namespace)
        self._dirty: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._dirty.add(key)

    def touch(self, key: str) -> None:
        if key in self._data:
            self._dirty.add(key)

    def delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None or key in self._dirty:
            self._dirty.add(key)

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """(key, value) pairs whose key starts with `prefix`, in key order."""
        for key in sorted(k for k in self._data if k.startswith(prefix)):
            yield key, self._data[key]

    def started(self, when: float) -> float:
        """When this analyzer first saw anything (the start of its learning period): `when` on the first call."""
        first = self.get(STARTED)
        if first is None:
            self.set(STARTED, first := when)
        return float(first)

    def changes(self) -> list[Change]:
        return [(self.store, self.namespace, k, self._data.get(k, DELETED)) for k in sorted(self._dirty)]

    def saved(self) -> None:
        self._dirty.clear()

    def checkpoint(self) -> None:
        save_changes(self.changes())
        self.saved()
