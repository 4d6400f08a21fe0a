"""The rule version lock (as elastic/detection-rules keeps one): a rule's content hash decides its version.

`rules/version.lock.json` maps rule id -> {version, sha256, title}. The hash covers the rule's
detection content and metadata but not its test events (tests do not change what runs in the SIEM).
`aisoc validate` reports a rule whose hash no longer matches its locked version; `aisoc lock`
bumps the version of every changed rule so Kibana sees an update.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisoc.rules.loader import RuleFile
from aisoc.safeyaml import load_all

LOCK_NAME = "version.lock.json"


def content_hash(rule: RuleFile) -> str:
    docs = [d for d in load_all(rule.text, rule.path) if d is not None]
    stripped = []
    for doc in docs:
        doc = copy.deepcopy(doc)
        if isinstance(doc.get("aisoc"), dict):
            doc["aisoc"].pop("tests", None)
        stripped.append(doc)
    canonical = json.dumps(stripped, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class LockEntry:
    version: int
    sha256: str
    title: str


class VersionLock:
    def __init__(self, path: Path, entries: dict[str, LockEntry] | None = None) -> None:
        self.path = path
        self.entries = entries or {}

    @classmethod
    def load(cls, path: Path) -> VersionLock:
        if not path.exists():
            return cls(path)
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            entries = {k: LockEntry(int(v["version"]), str(v["sha256"]), str(v.get("title", "")))
                       for k, v in raw.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a valid version lock ({exc}); restore it from git") from None
        return cls(path, entries)

    def version(self, rule_id: str) -> int:
        entry = self.entries.get(rule_id)
        return entry.version if entry else 1

    def status(self, rule: RuleFile) -> str:
        """`locked`, `new` (not in the lock) or `changed` (content differs from the locked hash)."""
        entry = self.entries.get(rule.rule_id)
        if entry is None:
            return "new"
        return "locked" if entry.sha256 == content_hash(rule) else "changed"

    def update(self, rules: list[RuleFile]) -> dict[str, tuple[int, int]]:
        """Lock every rule's current hash, bumping changed rules. Returns id -> (old, new) versions."""
        changes: dict[str, tuple[int, int]] = {}
        for rule in rules:
            digest = content_hash(rule)
            entry = self.entries.get(rule.rule_id)
            if entry is None:
                self.entries[rule.rule_id] = LockEntry(1, digest, rule.title)
                changes[rule.rule_id] = (0, 1)
            elif entry.sha256 != digest:
                self.entries[rule.rule_id] = LockEntry(entry.version + 1, digest, rule.title)
                changes[rule.rule_id] = (entry.version, entry.version + 1)
        return changes

    def save(self) -> None:
        data = {k: {"version": v.version, "sha256": v.sha256, "title": v.title}
                for k, v in sorted(self.entries.items())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".lock-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, self.path)


def find_lock(paths: list[Path]) -> Path:
    """The lock beside the rule tree: `<dir>/version.lock.json` of the first directory given."""
    for path in paths:
        base = path if path.is_dir() else path.parent
        for candidate in (base, *base.parents):
            if (candidate / LOCK_NAME).exists():
                return candidate / LOCK_NAME
    first = paths[0] if paths else Path("rules")
    return (first if first.is_dir() else first.parent) / LOCK_NAME
