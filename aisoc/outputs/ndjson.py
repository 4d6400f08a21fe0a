"""NDJSON file output: one alert per line, appended, fsynced, rotated by size.

Each `send` writes its batch with one `write` and then `fsync`s, so an acknowledged batch survives a
crash. A write that fails part-way is truncated back to where the batch began, so the file never
holds half a line. When the next batch would take the file over `max_bytes`, the file is rotated
first (`alerts.ndjson` -> `alerts.ndjson.1` -> ... up to `backups` files; the oldest is dropped).
An advisory `flock` on a sibling lock file serializes writers in several processes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from pathlib import Path

from aisoc.outputs.base import Alert, OutputConfigError, OutputResult, flatten, unflatten

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BACKUPS = 5


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class NdjsonFileOutput:
    """Append alerts to an NDJSON file (nested ECS JSON by default, `nested=False` for dotted keys)."""

    def __init__(self, path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS,
                 nested: bool = True, name: str | None = None) -> None:
        if max_bytes < 1024:
            raise OutputConfigError(f"ndjson output {path}: max_bytes must be at least 1024")
        if backups < 0:
            raise OutputConfigError(f"ndjson output {path}: backups cannot be negative")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.nested = nested
        self.name = name or f"ndjson:{self.path.name}"
        self._lock = threading.Lock()

    def _line(self, alert: Alert) -> bytes:
        doc = unflatten(alert) if self.nested else flatten(alert)
        return (json.dumps(doc, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode("utf-8")

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        oldest = self.path.with_name(f"{self.path.name}.{self.backups}")
        oldest.unlink(missing_ok=True)
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        _fsync_dir(self.path.parent)
        log.info("rotated alert file %s", self.path)

    def send(self, alerts: list[Alert]) -> OutputResult:
        result = OutputResult(self.name)
        if not alerts:
            return result
        lines: list[bytes] = []
        delivered: list[Alert] = []
        for alert in alerts:
            try:
                lines.append(self._line(alert))
                delivered.append(alert)
            except (TypeError, ValueError) as exc:  # not JSON-serializable even with default=str
                result.failed.append(alert)
                result.errors.append(f"alert not serializable: {exc}")
        data = b"".join(lines)
        if not data:
            return result
        try:
            self._append(data)
        except OSError as exc:
            result.failed.extend(delivered)
            result.errors.append(f"cannot write {self.path}: {exc.strerror or exc}")
            log.warning("alert file output %s failed: %s", self.name, exc.strerror or exc)
            return result
        result.sent = len(delivered)
        return result

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                size = self.path.stat().st_size if self.path.exists() else 0
                if size > 0 and size + len(data) > self.max_bytes:
                    self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                try:
                    start = os.fstat(fd).st_size
                    try:
                        view = memoryview(data)
                        while view:
                            written = os.write(fd, view)
                            view = view[written:]
                        os.fsync(fd)
                    except OSError:
                        os.ftruncate(fd, start)  # never leave half a batch (or half a line) behind
                        raise
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def close(self) -> None:
        """Nothing stays open between batches."""
