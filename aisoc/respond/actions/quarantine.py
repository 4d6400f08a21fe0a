"""`quarantine_data_source`: freeze ingestion from a data source by listing it in the quarantine file.

The quarantine list is a small JSON or YAML file (by suffix) that the training-data collector and
pipelines consult before taking a batch (`is_quarantined`):

```json
{"version": 1, "sources": [{"source": "vendor-feed-7", "reason": "...", "quarantined_at": "...",
  "by": "alice", "run_id": "...", "rule_id": "...", "alert_id": "..."}]}
```

Writes are atomic (temporary file in the same directory, fsync, rename, fsync the directory) under
an exclusive lock, so a reader never sees half a file and two responders never lose each other's
entries. Undo removes the entry only if this run added it.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from aisoc.respond.actions.base import Action, ActionError, Change, Params, Result
from aisoc.safeyaml import YamlLoadError, load_file


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yml", ".yaml")


def load_quarantine(path: str | Path) -> dict[str, Any]:
    """The quarantine list (empty when the file does not exist)."""
    file = Path(path)
    if not file.exists():
        return {"version": 1, "sources": []}
    try:
        if _is_yaml(file):
            docs = load_file(file)
            data = docs[0] if docs else None
        else:
            data = json.loads(file.read_text(encoding="utf-8") or "{}")
    except (YamlLoadError, ValueError) as exc:
        raise ActionError(f"quarantine list {file} is unreadable: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("sources", []), list):
        raise ActionError(f"quarantine list {file}: expected a mapping with a 'sources' list")
    data.setdefault("version", 1)
    data.setdefault("sources", [])
    return data


def is_quarantined(source: str, path: str | Path) -> bool:
    """True when `source` is on the quarantine list at `path` (what collectors call per batch)."""
    return any(isinstance(e, dict) and e.get("source") == source for e in load_quarantine(path)["sources"])


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if _is_yaml(path):
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class QuarantineParams(Params):
    source: str = Field(min_length=1, max_length=1000, description="data source identifier (aisoc.data.source)")
    reason: str = Field("", max_length=2000)
    dataset: str | None = None
    list_file: str | None = Field(None, description="quarantine list (default context.quarantine_file)")


class QuarantineDataSource(Action):
    """Put a data source on the quarantine list so ingestion from it stops."""

    name = "quarantine_data_source"
    Params = QuarantineParams
    undoable = True
    description = "Freeze ingestion from a data source (quarantine list file)"

    def _file(self, p: QuarantineParams) -> Path:
        path = Path(p.list_file) if p.list_file else self.context.quarantine_file
        if path is None:
            raise ActionError("quarantine_data_source: no quarantine list (set context.quarantine_file)")
        return path

    def plan(self, params: dict[str, Any] | Params) -> Change:
        p: QuarantineParams = self.parse(params)
        path = self._file(p)
        listed = is_quarantined(p.source, path)
        return Change(self.name, f"data source {p.source}", {"quarantined": listed}, {"quarantined": True},
                      f"data source {p.source!r}: quarantined {listed} -> True (list {path})")

    def apply(self, params: dict[str, Any] | Params) -> Result:
        p: QuarantineParams = self.parse(params)
        path = self._file(p)
        with _locked(path):
            data = load_quarantine(path)
            if any(isinstance(e, dict) and e.get("source") == p.source for e in data["sources"]):
                return Result(self.name, f"data source {p.source}", {"quarantined": True}, {"quarantined": True},
                              False, {}, {"list_file": str(path), "summary": "already quarantined"})
            entry = {
                "source": p.source, "reason": p.reason, "dataset": p.dataset,
                "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "by": self.run.approved_by or self.context.actor, "run_id": self.run.run_id,
                "playbook": self.run.playbook, "rule_id": self.run.rule_id, "alert_id": self.run.alert_id,
            }
            data["sources"].append({k: v for k, v in entry.items() if v not in (None, "")})
            _write_atomic(path, data)
        return Result(self.name, f"data source {p.source}", {"quarantined": False}, {"quarantined": True}, True,
                      {"source": p.source, "list_file": str(path), "run_id": self.run.run_id},
                      {"list_file": str(path)})

    def undo(self, result: Result) -> None:
        if not result.changed:
            return
        path = Path(result.undo_data["list_file"])
        source = result.undo_data["source"]
        with _locked(path):
            data = load_quarantine(path)
            kept = [e for e in data["sources"] if not (isinstance(e, dict) and e.get("source") == source
                                                       and e.get("run_id", "") == result.undo_data["run_id"])]
            if len(kept) == len(data["sources"]):
                raise ActionError(f"data source {source!r} is no longer on {path} as this run listed it; "
                                  "nothing to undo")
            data["sources"] = kept
            _write_atomic(path, data)
