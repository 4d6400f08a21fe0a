"""Training-data collector: batches landing with a manifest, and object-store access to ingestion paths.

Batch landing (`BatchLandingSource`, mapper `map_batch`): a landing directory holds batch files
(CSV, JSONL/NDJSON, Parquet; `.csv.gz` / `.jsonl.gz` too) and, per batch, a manifest
`<batch file>.manifest.json|yaml|yml` (or any `*.manifest.*` naming its batch in `file`):

    batch_id: b-771            # default: the batch file's stem
    dataset: txn               # default: config.default_dataset, else the batch's directory name
    source: vendor-a           # checked against config.approved_sources[dataset] (or ["*"])
    rows: 10000                # rows the producer wrote (data rows; a CSV header is not a row)
    sha256: 9f86d0...          # sha256 of the batch file, hex (a `sha256:` prefix is accepted)
    landed_by: svc-ingest      # identity that landed the batch -> user.name
    landed_at: 2026-01-01T00:00:00Z   # optional; default: the batch file's mtime
    file: b-771.parquet        # optional; relative to the manifest, must stay inside the landing dir

Each batch becomes one `data-batch-landed` event; rows are counted in the file, its sha256 is
computed and compared with the manifest. A cursor (CursorStore) remembers every batch already
emitted (by path, size, mtime and its manifest's), so a restart emits nothing twice. A batch file
without a manifest still lands (no comparison); a manifest whose batch is missing waits
`pending_grace_seconds`, then is rejected.

Object-store access logs (`ObjectAccessLogSource`, `parse_object_access_log`): AWS S3 server
access log lines (space-separated, `[time]`, quoted request/referrer/user agent) and MinIO audit
webhook records (JSON, one per line: `time`, `api.{name,bucket,object,objects,statusCode}`,
`remotehost`, `requestID`, `userAgent`, `accessKey`, `parentUser`) become `object-accessed`
events with the operation normalized to read / write / delete / list, whether the key lies under a
configured ingestion path, and whether the identity is an approved pipeline identity there.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import gzip
import hashlib
import io
import ipaddress
import json
import re
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisoc.collectors.base import CursorStore, MappingError, cap_original, make_event
from aisoc.records import Rejected
from aisoc.rules.model import normalize_timestamp
from aisoc.safeyaml import YamlLoadError, load_all

BATCH_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet", ".csv.gz", ".jsonl.gz", ".ndjson.gz")
MANIFEST_SUFFIXES = (".manifest.json", ".manifest.yaml", ".manifest.yml")
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_LINE_BYTES = 256 * 1024
MAX_TEXT = 4096
LONG_MAX = 2**63 - 1
DEFAULT_ROW_LIMIT = 100_000
CURSOR_EVERY = 1000
SHA256_RE = re.compile(r"[0-9a-f]{64}")
_ERRORS = (MappingError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError)


def _when(value: Any, what: str) -> str:
    if isinstance(value, str) and len(value) > 64:
        raise MappingError(f"{what} is too long to be a time")
    if isinstance(value, datetime) or (isinstance(value, str) and value):
        try:
            text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()) if isinstance(value, str) else value
            when = normalize_timestamp(text)
        except (ValueError, OverflowError):
            when = None
        if when:
            return when
    raise MappingError(f"{what} {str(value)[:64]!r} is not an ISO-8601 time")


def _text(value: Any, what: str, *, max_len: int = 1024) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MappingError(f"{what} must be a string, got {type(value).__name__}")
    text = str(value)
    if len(text) > max_len:
        raise MappingError(f"{what} is {len(text)} characters, over the {max_len} limit")
    return text


def _reject(source: str, reason: str, raw: bytes | str, line: int | None = None) -> Rejected:
    return Rejected(source=source, reason=reason[:MAX_TEXT], raw=raw[:MAX_TEXT * 4], line=line)


# ---- batch files ---------------------------------------------------------------------------------


def _batch_kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in BATCH_SUFFIXES:
        if name.endswith(suffix):
            return suffix.split(".")[1].replace("ndjson", "jsonl")
    return None


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def count_rows(path: Path) -> int:
    """Data rows in a batch file (a CSV header is not a row; blank JSONL lines are not rows)."""
    kind = _batch_kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with _open_text(path) as fh:
        if kind == "csv":
            return max(sum(1 for _ in csv.reader(fh)) - 1, 0)
        if kind == "jsonl":
            return sum(1 for line in fh if line.strip())
    raise MappingError(f"{path.name}: not a CSV, JSONL or Parquet batch")


def read_batch_rows(path: Path, limit: int = DEFAULT_ROW_LIMIT) -> Iterator[dict[str, Any]]:
    """The first `limit` rows of a CSV / JSONL / Parquet batch as dicts (for analyzers).

    Raises MappingError naming the file (and line) on a row that cannot be read.
    """
    path = Path(path)
    kind = _batch_kind(path)
    if kind is None:
        raise MappingError(f"{path}: not a CSV, JSONL or Parquet batch")
    produced = 0
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    if produced >= limit:
                        return
                    produced += 1
                    yield row
            return
        with _open_text(path) as fh:
            if kind == "csv":
                reader = csv.DictReader(fh)
                for row in reader:
                    if produced >= limit:
                        return
                    if None in row:  # more fields than the header: an unquoted delimiter, or a broken export
                        raise MappingError(f"{path}:{reader.line_num}: row has {len(row) - 1 + len(row[None])} "
                                           f"fields, the header has {len(reader.fieldnames or [])}; quote fields "
                                           "that contain commas")
                    produced += 1
                    yield dict(row)
                return
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if produced >= limit:
                    return
                if len(line) > MAX_LINE_BYTES:
                    raise MappingError(f"{path}:{number}: line longer than {MAX_LINE_BYTES} characters")
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise MappingError(f"{path}:{number}: not JSON ({exc})") from None
                if not isinstance(row, dict):
                    raise MappingError(f"{path}:{number}: a JSONL row must be an object")
                produced += 1
                yield row
    except MappingError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error, EOFError, ValueError) as exc:
        raise MappingError(f"{path}: cannot read batch: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow.ArrowInvalid and friends
        raise MappingError(f"{path}: cannot read batch: {type(exc).__name__}: {exc}") from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---- manifests -----------------------------------------------------------------------------------


class BatchLandingConfig(BaseModel):
    """Where batches land and which sources each dataset accepts."""

    model_config = ConfigDict(extra="forbid")

    approved_sources: dict[str, list[str]] = Field(
        default_factory=dict,
        description="dataset -> approved source names (fnmatch patterns); key '*' applies to every dataset. "
                    "A dataset with no list gets no aisoc.data.source_approved (unknown, not unapproved).")
    default_dataset: str | None = None
    pipeline: str | None = Field(default=None, description="Ingestion pipeline name for aisoc.pipeline.name.")
    min_age_seconds: float = Field(default=0.0, ge=0, description="Leave files younger than this (still landing).")
    pending_grace_seconds: float = Field(default=3600.0, ge=0,
                                         description="How long a manifest may wait for its batch file.")


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse a JSON or YAML manifest (size-capped, safe); MappingError names the file."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MappingError(f"{path}: cannot read manifest: {exc.strerror or exc}") from None
    if size > MAX_MANIFEST_BYTES:
        raise MappingError(f"{path}: manifest is {size} bytes, over the {MAX_MANIFEST_BYTES} byte limit")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path}: manifest is not UTF-8 (byte {exc.start})") from None
    if path.name.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MappingError(f"{path}:{exc.lineno}: manifest is not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise MappingError(f"{path}: manifest nests too deeply") from None
    else:
        try:
            docs = load_all(text, path)
        except YamlLoadError as exc:
            raise MappingError(str(exc)) from None
        if len(docs) != 1:
            raise MappingError(f"{path}: a manifest is one YAML document, found {len(docs)}")
        data = docs[0]
    if not isinstance(data, dict):
        raise MappingError(f"{path}: manifest must be a mapping, got {type(data).__name__}")
    return data


def _implied_batch(manifest_path: Path) -> Path | None:
    """The batch a manifest names by convention: its own name without `.manifest.<ext>`."""
    name = manifest_path.name
    for suffix in MANIFEST_SUFFIXES:
        if name.lower().endswith(suffix):
            return manifest_path.with_name(name[: -len(suffix)])
    return None


def _manifest_batch_path(manifest_path: Path, manifest: dict[str, Any], root: Path) -> Path:
    named = _text(manifest.get("file"), f"{manifest_path}: 'file'")
    if named:
        candidate = (manifest_path.parent / named).resolve()
        try:
            candidate.relative_to(root.resolve())
        except ValueError:
            raise MappingError(f"{manifest_path}: 'file' {named!r} points outside the landing directory") from None
        return candidate
    implied = _implied_batch(manifest_path)
    if implied is None:
        raise MappingError(f"{manifest_path}: manifest does not name its batch ('file')")
    return implied


def _manifest_fields(manifest: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate the manifest's fields; MappingError says which one is wrong."""
    rows = manifest.get("rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= LONG_MAX):
        raise MappingError(f"{where}: 'rows' must be a non-negative integer, got {str(rows)[:40]!r}")
    sha = manifest.get("sha256")
    if sha is not None:
        if not isinstance(sha, str):
            raise MappingError(f"{where}: 'sha256' must be hex text")
        sha = sha.strip().lower().removeprefix("sha256:")
        if not SHA256_RE.fullmatch(sha):
            raise MappingError(f"{where}: 'sha256' is not 64 hex digits")
    landed_at = manifest.get("landed_at")
    return {
        "batch_id": _text(manifest.get("batch_id"), f"{where}: 'batch_id'"),
        "dataset": _text(manifest.get("dataset"), f"{where}: 'dataset'"),
        "source": _text(manifest.get("source"), f"{where}: 'source'"),
        "landed_by": _text(manifest.get("landed_by"), f"{where}: 'landed_by'"),
        "rows": rows,
        "sha256": sha,
        "landed_at": _when(landed_at, f"{where}: 'landed_at'") if landed_at not in (None, "") else None,
    }


def _source_approved(config: BatchLandingConfig, dataset: str | None, source: str | None) -> bool | None:
    patterns = config.approved_sources.get(dataset or "") if dataset else None
    if patterns is None:
        patterns = config.approved_sources.get("*")
    if patterns is None or source is None:
        return None
    return any(fnmatch.fnmatchcase(source, p) for p in patterns)


def map_batch(
    batch_file: Path,
    manifest: dict[str, Any] | None,
    config: BatchLandingConfig,
    *,
    manifest_path: Path | None = None,
    collector: str | None = None,
) -> dict[str, Any]:
    """One landed batch (file + its manifest, or None) -> a `data-batch-landed` event.

    Raises MappingError naming the file when the manifest is malformed or the batch unreadable.
    """
    where = str(manifest_path or batch_file)
    meta = _manifest_fields(manifest, where) if manifest is not None else {}
    try:
        stat = batch_file.stat()
        sha = _sha256_file(batch_file)
        rows = count_rows(batch_file)
    except MappingError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, UnicodeDecodeError, csv.Error, pyarrow errors
        raise MappingError(f"{batch_file}: cannot read batch: {type(exc).__name__}: {exc}") from None
    dataset = meta.get("dataset") or config.default_dataset or batch_file.parent.name
    batch_id = meta.get("batch_id") or batch_file.name.split(".")[0]
    source = meta.get("source")
    approved = _source_approved(config, dataset, source)
    expected_sha = meta.get("sha256")
    hash_match = None if expected_sha is None else expected_sha == sha
    manifest_rows = meta.get("rows")
    when = meta.get("landed_at") or _when(datetime.fromtimestamp(stat.st_mtime, tz=UTC), "mtime")
    notes = [f"batch {batch_id} of {dataset}" + (f" from {source}" if source else ""),
             f"{rows} rows" + (f" (manifest says {manifest_rows})" if manifest_rows is not None else "")]
    if approved is not None:
        notes.append("source approved" if approved else "source NOT on the approved list")
    if manifest is None:
        notes.append("no manifest")
    elif hash_match is not None:
        notes.append("sha256 matches the manifest" if hash_match else "sha256 differs from the manifest")
    landed_by = meta.get("landed_by")
    fields = {
        "event.category": ["file"],
        "event.type": ["creation"],
        "message": "; ".join(notes),
        "aisoc.data.dataset": dataset,
        "aisoc.data.source": source,
        "aisoc.data.source_approved": approved,
        "aisoc.data.batch.id": batch_id,
        "aisoc.data.batch.rows": rows,
        "aisoc.data.manifest.rows": manifest_rows,
        "aisoc.data.manifest.sha256": expected_sha,
        "aisoc.data.manifest.path": str(manifest_path) if manifest_path else None,
        "aisoc.data.hash_match": hash_match,
        "aisoc.pipeline.name": config.pipeline,
        "user.name": landed_by,
        "related.user": [landed_by] if landed_by else None,
        "related.hash": sorted({sha, *([expected_sha] if expected_sha else [])}),
        "file.path": str(batch_file),
        "file.name": batch_file.name,
        "file.extension": batch_file.suffix.lstrip(".").lower() or None,
        "file.size": stat.st_size,
        "file.hash.sha256": sha,
    }
    return make_event(
        layer="data", provider="pipeline", action="data-batch-landed",
        record_id=(dataset, batch_id, sha, expected_sha or "", manifest_rows if manifest_rows is not None else ""),
        timestamp=when, fields=fields, original=manifest,
        outcome="failure" if hash_match is False else "success", collector=collector,
    )


class BatchLandingSource:
    """Replay a landing directory into `data-batch-landed` events, resuming from a cursor."""

    def __init__(self, config: BatchLandingConfig, cursor: CursorStore | None = None,
                 name: str = "training_data") -> None:
        self.config = config
        self.cursor = cursor
        self.name = name

    def _key(self, root: Path, batch: Path) -> str:
        return f"{self.name}:batch:{batch.resolve().relative_to(root.resolve()).as_posix()}"

    @staticmethod
    def _signature(*paths: Path | None) -> str:
        parts = []
        for path in paths:
            if path is None:
                parts.append("-")
                continue
            st = path.stat()
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        return "|".join(parts)

    def replay(self, path: Path) -> Iterator[dict[str, Any] | Rejected]:
        """Every batch under `path` not yet emitted; each one is recorded in the cursor after it is handed on."""
        root = Path(path)
        now = time.time()
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        manifests = [p for p in files if p.name.lower().endswith(MANIFEST_SUFFIXES)]
        paired: dict[Path, Path] = {}
        for manifest_path in manifests:
            if now - _mtime(manifest_path) < self.config.min_age_seconds:
                continue
            try:
                manifest = read_manifest(manifest_path)
                batch = _manifest_batch_path(manifest_path, manifest, root)
            except MappingError as exc:
                # the batch this manifest was meant for must not land as if it had none
                implied = _implied_batch(manifest_path)
                if implied is not None:
                    paired[implied.resolve()] = manifest_path
                yield from self._once(root, manifest_path, None, lambda exc=exc: _raise(exc), manifest_path)
                continue
            if not batch.is_file():
                if now - _mtime(manifest_path) >= self.config.pending_grace_seconds:
                    err = MappingError(f"{manifest_path}: batch file {batch.name} named by the manifest is missing")
                    yield from self._once(root, manifest_path, None, lambda err=err: _raise(err), manifest_path)
                continue
            paired[batch.resolve()] = manifest_path
            yield from self._once(
                root, batch, manifest_path,
                lambda b=batch, m=manifest, mp=manifest_path: map_batch(b, m, self.config, manifest_path=mp,
                                                                        collector=self.name),
                manifest_path)
        for batch in files:
            if _batch_kind(batch) is None or batch.resolve() in paired:
                continue
            if now - _mtime(batch) < self.config.min_age_seconds:
                continue
            yield from self._once(root, batch, None,
                                  lambda b=batch: map_batch(b, None, self.config, collector=self.name), batch)

    def _once(self, root: Path, key_path: Path, manifest_path: Path | None, build: Any,
              where: Path) -> Iterator[dict[str, Any] | Rejected]:
        key = self._key(root, key_path)
        try:
            signature = self._signature(key_path, manifest_path)
        except OSError:
            return
        if self.cursor is not None and self.cursor.get(key) == signature:
            return
        try:
            item: dict[str, Any] | Rejected = build()
        except _ERRORS as exc:
            raw = b""
            try:
                raw = where.read_bytes()[:MAX_TEXT]
            except OSError:
                pass
            item = _reject(str(where), str(exc), raw)
        yield item
        if self.cursor is not None:
            self.cursor.set(key, signature)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _raise(exc: Exception) -> Any:
    raise exc


# ---- object-store access logs ----------------------------------------------------------------------


class IngestionPath(BaseModel):
    """A training-data ingestion path (`bucket/prefix` or `s3://bucket/prefix`) and who may write there."""

    model_config = ConfigDict(extra="forbid")

    prefix: str
    identities: list[str] = Field(default_factory=list, description="Approved pipeline identities (fnmatch).")

    @property
    def bucket(self) -> str:
        return self.prefix.removeprefix("s3://").partition("/")[0]

    @property
    def key_prefix(self) -> str:
        return self.prefix.removeprefix("s3://").partition("/")[2]


class ObjectAccessConfig(BaseModel):
    """Ingestion paths and approved pipeline identities for `object-accessed` events."""

    model_config = ConfigDict(extra="forbid")

    ingestion_paths: list[IngestionPath] = Field(default_factory=list)
    pipeline_identities: list[str] = Field(default_factory=list,
                                           description="Identities approved on every ingestion path (fnmatch).")

    @field_validator("ingestion_paths", mode="before")
    @classmethod
    def _strings_are_prefixes(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"prefix": v} if isinstance(v, str) else v for v in value]
        return value

    def match(self, bucket: str | None, key: str | None) -> IngestionPath | None:
        if not bucket:
            return None
        for path in self.ingestion_paths:
            if path.bucket == bucket and (key or "").startswith(path.key_prefix):
                return path
        return None

    def identity_approved(self, path: IngestionPath | None, *identities: str | None) -> bool | None:
        patterns = [*self.pipeline_identities, *(path.identities if path else [])]
        if not patterns:
            return None
        names = [i for i in identities if i]
        return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)


_S3_TOKEN = re.compile(r'\[[^\]]*\]|"(?:[^"\\]|\\.)*"|\S+')
_S3_FIELDS = ("bucket_owner", "bucket", "time", "remote_ip", "requester", "request_id", "operation", "key",
              "request_uri", "http_status", "error_code", "bytes_sent", "object_size", "total_time",
              "turn_around_time", "referer", "user_agent", "version_id", "host_id", "signature_version",
              "cipher_suite", "authentication_type", "host_header", "tls_version", "access_point_arn",
              "acl_required")
_S3_OPERATION = re.compile(r"[A-Z0-9_]+(\.[A-Z0-9_]+)+")


def parse_s3_access_log_line(line: str) -> dict[str, str | None]:
    """Split one S3 server access log record into its named fields (`-` -> None)."""
    tokens = _S3_TOKEN.findall(line.strip())
    if len(tokens) < 17:
        raise MappingError(f"S3 access log record has {len(tokens)} fields, expected at least 17")
    record: dict[str, str | None] = {}
    for name, token in zip(_S3_FIELDS, tokens, strict=False):
        if token.startswith("[") and token.endswith("]"):
            token = token[1:-1]
        elif len(token) >= 2 and token.startswith('"') and token.endswith('"'):
            token = token[1:-1]
        record[name] = None if token == "-" else token
    if not record.get("time") or not tokens[2].startswith("["):
        raise MappingError("S3 access log record has no [time] in the third field")
    if not record.get("operation") or not _S3_OPERATION.fullmatch(record["operation"] or ""):
        raise MappingError(f"S3 operation {str(record.get('operation'))[:40]!r} is not like REST.GET.OBJECT")
    return record


_S3_METADATA = ("TAGGING", "ACL", "RETENTION", "LEGAL_HOLD", "ATTRIBUTES")
_MINIO_METADATA = ("Tagging", "Acl", "ACL", "Retention", "LegalHold", "Attributes")


def _s3_operation(operation: str) -> str | None:
    """S3 log operation -> read/write/delete/list; None for object metadata (tags, ACLs, retention), which
    neither reads nor changes the data."""
    parts = operation.split(".")
    verb, noun = (parts[1] if len(parts) > 1 else ""), ".".join(parts[2:])
    if any(marker in noun for marker in _S3_METADATA):
        return None
    if verb == "COPY" and noun.endswith("_GET"):  # the source side of a server-side copy, logged at the source
        return "read"
    if (verb == "DELETE" or "DELETE" in noun or parts[0] == "S3" and verb.startswith("EXPIRE")
            or operation == "S3.CREATE.DELETEMARKER"):
        return "delete"
    if verb in ("GET", "HEAD"):
        return "list" if noun in ("BUCKET", "BUCKETVERSIONS", "UPLOADS", "SERVICE") else "read"
    if verb in ("PUT", "POST", "COPY") or verb.startswith("TRANSITION") or verb == "RESTORE":
        return "write"
    return None


def _minio_operation(api: str) -> str | None:
    if any(marker in api for marker in _MINIO_METADATA):
        return None
    if api.startswith("List"):
        return "list"
    if api.startswith("Delete") or api == "AbortMultipartUpload":
        return "delete"
    if api.startswith(("Get", "Head", "Select")):
        return "read"
    if api.startswith(("Put", "Copy", "Post", "NewMultipart", "CompleteMultipart", "Restore")):
        return "write"
    return None


def _minio_method(api: str) -> str | None:
    """The HTTP method of a MinIO S3 API call (the audit log names the API, not the method)."""
    if api.startswith("Head"):
        return "HEAD"
    if api == "DeleteMultipleObjects" or api.startswith(("Post", "NewMultipart", "CompleteMultipart", "Select",
                                                             "Restore")):
        return "POST"
    if api.startswith(("Get", "List")):
        return "GET"
    if api.startswith(("Put", "Copy")):
        return "PUT"
    if api.startswith("Delete") or api == "AbortMultipartUpload":
        return "DELETE"
    return None


_EVENT_TYPE = {"read": "access", "list": "access", "write": "change", "delete": "deletion"}


def _ip(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return _parsed_ip(value)


@functools.lru_cache(maxsize=4096)  # access logs repeat a few client addresses many times
def _parsed_ip(value: str) -> str | None:
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value  # MinIO: "10.0.0.1:53120"
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _status(value: Any, what: str) -> int | None:
    if value in (None, "", "-", 0):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise MappingError(f"{what} {str(value)[:20]!r} is not an HTTP status code")
    return value


def _access_event(
    *, provider_record: tuple[object, ...], when: str, bucket: str | None, key: str | None, operation: str | None,
    api: str | None,
    user: str | None, user_id: str | None, ip: str | None, status: int | None, method: str | None,
    user_agent: str | None, error: str | None, cloud: str | None, config: ObjectAccessConfig,
    original: str | dict[str, Any], collector: str | None,
) -> dict[str, Any]:
    path = config.match(bucket, key)
    approved = config.identity_approved(path, user, user_id)
    outcome = None if status is None else ("success" if status < 400 else "failure")
    fields = {
        "event.category": ["file"],
        "event.type": [_EVENT_TYPE.get(operation or "", "info")],
        "message": f"{user or 'anonymous'} {operation or 'accessed'} {bucket}/{key or ''}"
                   + (f" ({status})" if status else ""),
        "aisoc.data.storage.bucket": bucket,
        "aisoc.data.storage.operation": operation,
        "aisoc.data.storage.api": api,
        "aisoc.data.storage.ingestion_path": path is not None,
        "aisoc.pipeline.identity_approved": approved,
        "user.name": user,
        "user.id": user_id if user_id != user else None,
        "related.user": sorted({u for u in (user, user_id) if u}) or None,
        "source.ip": ip,
        "file.path": key,
        "file.name": key.rsplit("/", 1)[-1] if key and not key.endswith("/") else None,
        "http.response.status_code": status,
        "http.request.method": method,
        "user_agent.original": user_agent,
        "error.type": error,
        "cloud.provider": cloud,
    }
    return make_event(
        layer="data", provider="object_store", action="object-accessed", record_id=provider_record,
        timestamp=when, fields=fields, original=original, outcome=outcome, collector=collector,
    )


@functools.lru_cache(maxsize=1024)  # many log lines share a second
def _s3_time(text: str) -> str | None:
    try:
        return normalize_timestamp(datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z"))
    except ValueError:
        raise MappingError(f"S3 time [{text}] is not like [06/Feb/2019:00:00:38 +0000]") from None


def map_s3_access_log_line(line: str, config: ObjectAccessConfig, *, collector: str | None = None) -> dict[str, Any]:
    """One S3 server access log line -> an `object-accessed` event (MappingError if malformed)."""
    record = parse_s3_access_log_line(line)
    when = _s3_time(record["time"] or "")
    operation_name = record["operation"] or ""
    key = unquote(record["key"]) if record.get("key") else None
    method = None
    request_uri = record.get("request_uri")
    if request_uri:
        method = request_uri.split(" ", 1)[0] if " " in request_uri else None
        if key is None and operation_name.endswith(".BUCKET"):  # ListObjects: the prefix is the "key" listed
            target = request_uri.split(" ")[1] if len(request_uri.split(" ")) > 1 else ""
            prefix = parse_qs(urlsplit(target).query).get("prefix")
            key = prefix[0] if prefix else None
    if record.get("remote_ip") and _ip(record["remote_ip"]) is None:
        raise MappingError(f"S3 remote IP {str(record['remote_ip'])[:60]!r} is not an IP address")
    return _access_event(
        provider_record=("s3", record.get("bucket"), record.get("request_id"), operation_name, key or "",
                         record["time"]),
        when=when or "", bucket=record.get("bucket"), key=key, operation=_s3_operation(operation_name),
        api=operation_name,
        user=record.get("requester"), user_id=None, ip=_ip(record.get("remote_ip")),
        status=_status(record.get("http_status"), "S3 HTTP status"), method=method,
        user_agent=record.get("user_agent"), error=record.get("error_code"), cloud="aws", config=config,
        original=line, collector=collector,
    )


def map_minio_audit(record: Any, config: ObjectAccessConfig, *, collector: str | None = None,
                    raw: str | None = None) -> list[dict[str, Any]]:
    """One MinIO audit webhook record -> `object-accessed` events (one per object of a multi-delete).

    `raw`: the record's text as received, kept as `event.original` (else the record is serialized)."""
    if not isinstance(record, dict):
        raise MappingError(f"MinIO audit record must be an object, got {type(record).__name__}")
    api = record.get("api")
    if not isinstance(api, dict):
        raise MappingError("MinIO audit record has no 'api' object")
    name = _text(api.get("name"), "api.name", max_len=128)
    if not name:
        raise MappingError("MinIO audit record has no api.name")
    when = _when(record.get("time"), "MinIO audit 'time'")
    bucket = _text(api.get("bucket"), "api.bucket")
    objects = [_text(api.get("object"), "api.object")]
    query = record.get("requestQuery") if isinstance(record.get("requestQuery"), dict) else {}
    if objects == [None] and name.startswith("List"):  # a listing: the prefix is what was looked at
        objects = [_text(query.get("prefix"), "requestQuery.prefix")]
    if isinstance(api.get("objects"), list) and api["objects"]:
        objects = [_text(o.get("objectName") if isinstance(o, dict) else o, "api.objects[].objectName")
                   for o in api["objects"][:10_000]]
    access_key = _text(record.get("accessKey"), "accessKey")
    parent = _text(record.get("parentUser"), "parentUser")
    status = _status(api.get("statusCode"), "api.statusCode")
    operation = _minio_operation(name)
    # the same for every object the record names
    original = cap_original(raw if raw is not None else record)
    common = {"when": when, "bucket": bucket, "operation": operation, "api": name, "user": parent or access_key,
              "user_id": access_key, "ip": _ip(record.get("remotehost")), "status": status,
              "method": _minio_method(name), "user_agent": _text(record.get("userAgent"), "userAgent"),
              "error": _text(record.get("error"), "error", max_len=MAX_TEXT), "cloud": None, "config": config,
              "original": original, "collector": collector}
    return [_access_event(provider_record=("minio", record.get("deploymentid"), record.get("requestID"), name,
                                           bucket, key or "", when), key=key, **common) for key in objects]


def parse_object_access_log(
    data: bytes | str | Iterable[bytes | str],
    config: ObjectAccessConfig,
    *,
    source: str = "object-log",
    first_line: int = 1,
    collector: str | None = None,
) -> Iterator[dict[str, Any] | Rejected]:
    """S3 access log lines and/or MinIO audit JSON lines -> events; each bad line -> Rejected with its line."""
    if isinstance(data, bytes | str):
        data = data.splitlines()
    for number, raw in enumerate(data, start=first_line):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            yield _reject(f"{source}:{number}", f"line {number}: not UTF-8 (byte {exc.start})", raw, number)
            continue
        if not text.strip():
            continue
        if len(text) > MAX_LINE_BYTES:
            yield _reject(f"{source}:{number}", f"line {number}: over {MAX_LINE_BYTES} characters", text, number)
            continue
        try:
            if text.lstrip().startswith("{"):
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise MappingError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
                yield from map_minio_audit(record, config, collector=collector, raw=text)
            else:
                yield map_s3_access_log_line(text, config, collector=collector)
        except _ERRORS as exc:
            yield _reject(f"{source}:{number}", f"line {number}: {exc}", raw, number)


class ObjectAccessLogSource:
    """Replay object-store access log files (a file or a directory of them), resuming per file."""

    def __init__(self, config: ObjectAccessConfig, cursor: CursorStore | None = None,
                 name: str = "object_store") -> None:
        self.config = config
        self.cursor = cursor
        self.name = name

    def replay(self, path: Path) -> Iterator[dict[str, Any] | Rejected]:
        """Every line not yet read; the cursor keeps (byte offset, line number) per file.

        A plain file that shrank (rotated or truncated) is read again from the start; an incomplete
        last line waits for the next replay. A `.gz` file is read whole once (rotated logs do not change).
        The cursor is saved every CURSOR_EVERY lines: a crash re-reads at most that many, and their
        deterministic event ids make the repeats harmless.
        """
        root = Path(path)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            yield from self._replay_file(file)

    def _replay_file(self, file: Path) -> Iterator[dict[str, Any] | Rejected]:
        key = f"{self.name}:log:{file.resolve()}"
        offset, line = self.cursor.get(key, [0, 0]) if self.cursor else [0, 0]
        try:
            size = file.stat().st_size
        except OSError as exc:
            yield _reject(str(file), f"cannot read log file: {exc}", b"")
            return
        compressed = file.name.endswith(".gz")
        if size == offset and (compressed or size > 0):
            return
        if size < offset or compressed:
            offset, line = 0, 0
        try:
            with (gzip.open(file, "rb") if compressed else open(file, "rb")) as fh:
                if not compressed:
                    fh.seek(offset)
                for raw in fh:
                    if not compressed and not raw.endswith(b"\n"):
                        break  # an incomplete last line: leave it for the next replay
                    line += 1
                    offset += len(raw)
                    yield from parse_object_access_log([raw.rstrip(b"\r\n")], self.config, source=str(file),
                                                       first_line=line, collector=self.name)
                    if self.cursor is not None and line % CURSOR_EVERY == 0 and not compressed:
                        self.cursor.set(key, [offset, line])
        except (OSError, EOFError) as exc:
            yield _reject(str(file), f"cannot read log file: {exc}", b"", line or None)
            return
        if self.cursor is not None:
            self.cursor.set(key, [size if compressed else offset, line])


__all__ = [
    "BatchLandingConfig",
    "BatchLandingSource",
    "IngestionPath",
    "ObjectAccessConfig",
    "ObjectAccessLogSource",
    "count_rows",
    "map_batch",
    "map_minio_audit",
    "map_s3_access_log_line",
    "parse_object_access_log",
    "parse_s3_access_log_line",
    "read_batch_rows",
    "read_manifest",
]
