"""`snapshot_evidence`: copy what an analyst will need into a bundle with a sha256 manifest.

A bundle is a new directory under `context.evidence_dir`:

    <bundle>/alert.json          the alert as it triggered the run
    <bundle>/events.ndjson       the triggering events (`aisoc.alert.event_ids`), from the embedded
                                 store (`EventStore.source_of`) or from NDJSON event files
    <bundle>/files/<name>        every file given (model hashes, registry state JSON, pipeline logs)
    <bundle>/manifest.json       sha256 and size of every file above, where each came from, which
                                 event ids or files could not be found, run id, approver

Files are made read-only. The manifest's own sha256 goes into the audit record (hash-chained), so
a bundle edited later — files *and* manifest — still fails `verify_bundle` against the audit log.
Evidence is kept on rollback: snapshotting changes nothing on the systems being defended.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from aisoc.respond.actions.base import Action, ActionError, Change, Params, Result

MANIFEST = "manifest.json"
MAX_EVENT_LINE = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _event_id(event: dict[str, Any]) -> str | None:
    value = event.get("event.id")
    if value is None and isinstance(event.get("event"), dict):
        value = event["event"].get("id")
    return str(value) if value is not None else None


def events_from_files(paths: list[Path], wanted: set[str]) -> list[dict[str, Any]]:
    """The events whose `event.id` is wanted, streamed from NDJSON files (bad lines skipped)."""
    found: dict[str, dict[str, Any]] = {}
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if len(found) == len(wanted):
                    break
                if len(line) > MAX_EVENT_LINE or not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    event_id = _event_id(event)
                    if event_id in wanted and event_id not in found:
                        found[event_id] = event
    return list(found.values())


def verify_bundle(bundle: str | Path, expected_manifest_sha256: str | None = None) -> list[str]:
    """Recompute every hash in the manifest; returns the problems (empty list: the bundle is intact)."""
    root = Path(bundle)
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        return [f"{root}: no {MANIFEST}"]
    problems: list[str] = []
    if expected_manifest_sha256 and sha256_file(manifest_path) != expected_manifest_sha256:
        problems.append(f"{manifest_path}: manifest itself changed (sha256 differs from the audit record)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return problems + [f"{manifest_path}: unreadable ({exc})"]
    listed: set[str] = set()
    for entry in manifest.get("files", []):
        rel = str(entry.get("path", ""))
        listed.add(rel)
        path = (root / rel).resolve()
        if not path.is_relative_to(root.resolve()):
            problems.append(f"{rel}: points outside the bundle")
            continue
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        if path.stat().st_size != entry.get("bytes"):
            problems.append(f"{rel}: size changed ({path.stat().st_size} != {entry.get('bytes')})")
        if sha256_file(path) != entry.get("sha256"):
            problems.append(f"{rel}: sha256 mismatch (file changed)")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel != MANIFEST and rel not in listed:
            problems.append(f"{rel}: not in the manifest (added later)")
    return problems


class SnapshotParams(Params):
    files: list[str] = Field(default_factory=list, description="files or directories to copy into the bundle")
    events_files: list[str] = Field(default_factory=list, description="NDJSON files to take the events from")
    include_events: bool = True
    require_files: bool = Field(False, description="fail when a listed file does not exist")
    label: str | None = Field(None, max_length=100, description="added to the bundle directory name")
    max_bytes: int = Field(2 * 1024**3, gt=0, description="refuse to copy more than this in total")


class SnapshotEvidence(Action):
    """Bundle the alert, its triggering events and given files, with a sha256 manifest."""

    name = "snapshot_evidence"
    Params = SnapshotParams
    undoable = False
    mutating = False
    description = "Snapshot evidence (events, alert, files) into a bundle with a sha256 manifest"

    def _event_ids(self) -> list[str]:
        alert = self.run.alert
        ids = alert.get("aisoc.alert.event_ids")
        if ids is None and isinstance(alert.get("aisoc"), dict):
            ids = ((alert["aisoc"].get("alert") or {}).get("event_ids"))
        return [str(i) for i in ids or []]

    def _sources(self, p: SnapshotParams) -> list[Path]:
        paths = [Path(f) for f in p.files]
        out = []
        for path in paths:
            try:
                out.append(self.context.readable(path))
            except PermissionError as exc:
                raise ActionError(f"snapshot_evidence: {exc}") from None
        return out

    def plan(self, params: dict[str, Any] | Params) -> Change:
        p: SnapshotParams = self.parse(params)
        if self.context.evidence_dir is None:
            raise ActionError("snapshot_evidence: no evidence directory (set context.evidence_dir)")
        sources = self._sources(p)
        missing = [str(s) for s in sources if not s.exists()]
        if missing and p.require_files:
            raise ActionError(f"snapshot_evidence: missing {', '.join(missing)}")
        ids = self._event_ids()
        return Change(self.name, str(self.context.evidence_dir), {"bundle": None},
                      {"bundle": "new", "events": len(ids) if p.include_events else 0,
                       "files": [str(s) for s in sources if s.exists()], "missing": missing},
                      f"new evidence bundle under {self.context.evidence_dir}: alert, {len(ids)} event id(s), "
                      f"{len(sources) - len(missing)} file(s)")

    def apply(self, params: dict[str, Any] | Params) -> Result:
        p: SnapshotParams = self.parse(params)
        change = self.plan(p)
        assert self.context.evidence_dir is not None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", p.label or self.run.playbook or "evidence")[:60]
        alert_id = re.sub(r"[^A-Za-z0-9_.-]", "_", self.run.alert_id or "alert")[:32]
        run = (self.run.run_id or uuid.uuid4().hex)[:8]
        bundle = Path(self.context.evidence_dir) / f"{stamp}-{label}-{alert_id}-{run}"
        bundle.mkdir(parents=True, exist_ok=False)
        try:
            manifest = self._fill(bundle, p)
        except Exception:
            shutil.rmtree(bundle, ignore_errors=True)
            raise
        manifest_sha = sha256_file(bundle / MANIFEST)
        details = {"bundle": str(bundle), "manifest_sha256": manifest_sha, "files": len(manifest["files"]),
                   "missing_event_ids": len(manifest["missing"]["event_ids"]),
                   "missing_files": manifest["missing"]["files"]}
        return Result(self.name, str(bundle), change.before, {"bundle": str(bundle)}, False, {}, details)

    def _fill(self, bundle: Path, p: SnapshotParams) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        total = 0

        def add(rel: str, source: str) -> None:
            nonlocal total
            path = bundle / rel
            size = path.stat().st_size
            total += size
            if total > p.max_bytes:
                raise ActionError(f"snapshot_evidence: more than {p.max_bytes} bytes; raise max_bytes or list less")
            entries.append({"path": rel, "sha256": sha256_file(path), "bytes": size, "source": source})

        (bundle / "alert.json").write_text(json.dumps(self.run.alert, indent=2, sort_keys=True, default=str,
                                                      ensure_ascii=False) + "\n", encoding="utf-8")
        add("alert.json", "alert")
        ids = self._event_ids()
        missing_ids: list[str] = []
        if p.include_events and ids:
            events, source = self._events(p, ids)
            with open(bundle / "events.ndjson", "w", encoding="utf-8") as handle:
                for event in events:
                    handle.write(json.dumps(event, sort_keys=True, default=str, ensure_ascii=False) + "\n")
            found = {_event_id(e) for e in events}
            missing_ids = [i for i in ids if i not in found]
            add("events.ndjson", source)
        missing_files: list[str] = []
        used: set[str] = set()
        for source_path in self._sources(p):
            if not source_path.exists():
                missing_files.append(str(source_path))
                continue
            name = source_path.name or "root"
            stem, n = name, 1
            while name in used:
                n += 1
                name = f"{stem}.{n}"
            used.add(name)
            dest = bundle / "files" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source_path.is_dir():
                shutil.copytree(source_path, dest, symlinks=False)
                for file in sorted(dest.rglob("*")):
                    if file.is_file():
                        rel = file.relative_to(bundle).as_posix()
                        add(rel, str(source_path / file.relative_to(dest)))
            else:
                shutil.copy2(source_path, dest)
                add(dest.relative_to(bundle).as_posix(), str(source_path))
        manifest = {
            "version": 1,
            "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "run_id": self.run.run_id, "playbook": self.run.playbook, "alert_id": self.run.alert_id,
            "rule_id": self.run.rule_id, "approved_by": self.run.approved_by, "actor": self.context.actor,
            "files": entries,
            "missing": {"event_ids": missing_ids, "files": missing_files},
        }
        (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for file in bundle.rglob("*"):
            if file.is_file():
                os.chmod(file, 0o444)
        return manifest

    def _events(self, p: SnapshotParams, ids: list[str]) -> tuple[list[dict[str, Any]], str]:
        store = self.context.event_store
        if store is not None and hasattr(store, "source_of"):
            return list(store.source_of(ids)), "event store"
        files = [Path(f) for f in p.events_files] or list(self.context.events_files)
        readable = []
        for path in files:
            try:
                readable.append(self.context.readable(path))
            except PermissionError as exc:
                raise ActionError(f"snapshot_evidence: {exc}") from None
        existing = [f for f in readable if f.exists()]
        return events_from_files(existing, set(ids)), ", ".join(str(f) for f in existing) or "no event source"
