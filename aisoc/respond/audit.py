"""The response audit log: append-only JSON lines chained by SHA-256, so tampering shows.

Every record carries `seq` (1, 2, ...), `at` (UTC), `prev` (the previous record's `hash`, 64 zeros
for the first) and `hash` = sha256 of the record's canonical JSON without `hash` (sorted keys, no
whitespace, UTF-8). Changing, deleting, inserting or reordering a record breaks the chain at that
point, and `verify_audit_log` names the line. Cutting records off the *end* leaves a valid shorter
chain: keep the head hash somewhere else (run reports carry it; ship the log to the SIEM) and pass
it as `expected_head` to detect that too.

Appends take an exclusive `flock` on a sibling `.lock` file (several processes may respond at
once), write one line with O_APPEND and `fsync` it. Every record is scrubbed of secrets first.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode("ascii")


def record_hash(record: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the record without its `hash` field."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _last_line(path: Path) -> bytes | None:
    """The last non-empty line of a file, read from the end."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            if end == 0:
                return None
            chunk = b""
            position = end
            while position > 0:
                step = min(65536, position)
                position -= step
                handle.seek(position)
                chunk = handle.read(step) + chunk
                stripped = chunk.rstrip(b"\n")
                if b"\n" in stripped:
                    return stripped.rsplit(b"\n", 1)[1]
            return chunk.rstrip(b"\n") or None
    except FileNotFoundError:
        return None


class AuditLog:
    """Append-only, hash-chained JSONL audit log."""

    def __init__(self, path: str | Path, scrub: Callable[[Any], Any] | None = None) -> None:
        self.path = Path(path)
        self.scrub = scrub

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain, scrub and durably append one record; returns it as written (with seq, prev, hash)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = self.scrub(dict(record)) if self.scrub else dict(record)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                last = _last_line(self.path)
                if last is None:
                    seq, prev = 1, GENESIS
                else:
                    try:
                        tail = json.loads(last)
                        seq, prev = int(tail["seq"]) + 1, str(tail["hash"])
                    except (ValueError, KeyError, TypeError) as exc:
                        raise AuditError(f"{self.path}: last record is not a valid audit record ({exc}); "
                                         "run verify_audit_log and repair before appending") from None
                entry = {**body, "seq": seq, "at": body.get("at") or _now(), "prev": prev}
                entry["hash"] = record_hash(entry)
                line = canonical(entry) + b"\n"
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return entry
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def head(self) -> str:
        """Hash of the last record (GENESIS when empty): anchor it elsewhere to detect truncation."""
        last = _last_line(self.path)
        return str(json.loads(last)["hash"]) if last else GENESIS


class AuditError(RuntimeError):
    """The audit log cannot be appended to safely."""


@dataclass
class AuditCheck:
    ok: bool
    records: int
    head: str
    problems: list[str] = field(default_factory=list)


def verify_audit_log(path: str | Path, expected_head: str | None = None) -> AuditCheck:
    """Recompute the chain; every broken link is reported with its line number."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    file = Path(path)
    if not file.exists():
        return AuditCheck(expected_head in (None, GENESIS), 0, GENESIS,
                          [] if expected_head in (None, GENESIS) else [f"{file}: missing"])
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            count += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{file}:{number}: not JSON ({exc.msg})")
                prev = ""
                continue
            if not isinstance(record, dict) or "hash" not in record:
                problems.append(f"{file}:{number}: not an audit record")
                prev = ""
                continue
            if record.get("seq") != count:
                problems.append(f"{file}:{number}: seq is {record.get('seq')!r}, expected {count} "
                                "(a record was removed or inserted)")
            if record.get("prev") != prev and prev != "":
                problems.append(f"{file}:{number}: prev does not match the previous record's hash "
                                "(a record before it was changed, removed or reordered)")
            actual = record_hash(record)
            if actual != record.get("hash"):
                problems.append(f"{file}:{number}: hash mismatch (this record was modified)")
            prev = str(record.get("hash"))
    head = prev or GENESIS
    if expected_head is not None and head != expected_head:
        problems.append(f"{file}: head is {head[:16]}..., expected {expected_head[:16]}... "
                        "(records were cut off the end, or this is another log)")
    return AuditCheck(not problems, count, head, problems)
