"""MLflow model-registry collector: registrations, aliases, stages, retraining, artifact integrity.

Three ways in, one mapping (`_Differ`), one snapshot:

- **Poll** (`MlflowCollector.poll`): REST API 2.0 (`registered-models/search`, `model-versions/search`
  paged with `next_page_token`, `runs/get` for lineage, `runs/search` on watched experiments,
  `artifacts/list` + `/get-artifact` for artifact hashes). The registry state is diffed against a
  snapshot kept in the `CursorStore` (per version: stage, last_updated_timestamp, tags, lineage; per
  alias: version and a change counter; per model: creation time and generation; per run: status),
  so a restart resumes without re-emitting anything.
- **Push** (`verify_webhook`, `MlflowCollector.parse_webhook`): MLflow 3.x webhooks. MLflow POSTs
  `{"entity", "action", "timestamp", "data"}` with headers `X-MLflow-Delivery-Id`,
  `X-MLflow-Timestamp` (unix seconds) and `X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret,
  "{delivery_id}.{timestamp}.{body}")>` (mlflow/webhooks/delivery.py). A delivery is applied to the
  same snapshot as the poll (under one lock), so push + poll never report one change twice and the
  event ids are the ones the poll would give. Deliveries carry no user and no registry times, so a
  delivery is enriched from the registry (`model-versions/get`, `runs/get`) when it is reachable.
  Stage transitions have no webhook: only the poll sees them.
- **Replay** (`MlflowCollector.replay`): saved API responses (`model-versions/search`,
  `registered-models/search`, `runs/search` pages, single `model_version`/`registered_model`
  objects; `.json` or one per line in `.ndjson`/`.jsonl`) and webhook deliveries as NDJSON
  `{"headers": {...}, "body": "<raw JSON string>"}`. Offline: lineage is known only to be absent
  (empty run_id); a bad record becomes a `Rejected` naming `file:line`.

Who acted: open-source MLflow records no user on model versions (REST and the client send none;
`user_id` is always empty), none on alias changes or stage transitions, and on runs only the
`user_id` the client asserts (`mlflow.user`). So `user.name` is the version's `user_id` when a
server records one (Databricks), else the version tag named by `actor_tag` (default `mlflow.user`,
which the pipeline sets when it registers), and on runs the run's `user_id`/`mlflow.user` tag.
Alias and stage events carry no `user.name`; with `pipeline_identities` configured their
`aisoc.pipeline.identity_approved` is false (an unknown actor is not an approved pipeline), so such
a change is acceptable to the rules only with an approval recorded on the target version: tags
`aisoc.change.ticket` (approved) and `aisoc.change.approved` (`true`/`false`), configurable. All of
these are client-asserted; tag changes are emitted as events so tampering with them is visible.

Event ids (`make_event` hashes provider + action + record id):
`model-version-registered` (name, version, generation), `model-stage-changed` (name, version,
generation, last_updated_timestamp, stage), `model-alias-changed` / `model-alias-deleted` (name,
alias, n-th change of that alias, version), `model-version-tag-set` / `-deleted` (name, version,
generation, key, n-th change of that tag), `model-version-deleted` (name, version, generation),
`training-run-started` (run_id), `training-run-finished` (run_id, status),
`model-artifact-verified` (name, version, generation, path, observed sha256, expected sha256).
The generation counts how often a registered model of that name was deleted and created again
(version numbers restart then). Alias and tag changes bump no registry timestamp, hence counters.

Run poll and webhooks through one `MlflowCollector` object (its lock serializes them; the lock is
held across a poll's HTTP calls so a delivery never interleaves with a half-read registry).
`poll` saves the snapshot before it returns: hand its events to the spool right away.
`poll_interval_seconds` is for the service loop that calls `poll`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import posixpath
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisoc.collectors.base import CursorStore, MappingError, epoch_ms_to_iso, make_event, read_replay_file
from aisoc.records import Rejected
from aisoc.rules.model import normalize_timestamp

PROVIDER = "mlflow"
LAYER = "model"
API = "/api/2.0/mlflow/"
SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"
SNAPSHOT_FORMAT = 1
MAX_TEXT = 8192
MAX_NAME = 1024
MAX_PAGES = 100_000
MAX_RAW = 64 * 1024
MAX_REPLAY_FILE_BYTES = 512 * 1024 * 1024
MAX_RUNS_REMEMBERED = 200_000
TERMINAL_RUN_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})
_TRUE = frozenset({"true", "yes", "1", "approved"})
_FALSE = frozenset({"false", "no", "0", "rejected", "denied"})
_ERRORS = (MappingError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError)
# Deliveries aisoc understands but that say nothing about model versions (prompts, budgets, a new
# empty registered model): accepted and mapped to no event.
_IGNORED_DELIVERIES = frozenset({
    ("registered_model", "created"), ("prompt", "created"), ("prompt_version", "created"),
    ("prompt_tag", "set"), ("prompt_tag", "deleted"), ("prompt_version_tag", "set"),
    ("prompt_version_tag", "deleted"), ("prompt_alias", "created"), ("prompt_alias", "deleted"),
    ("budget_policy", "exceeded"),
})

Event = dict[str, Any]
Record = Event | Rejected
Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class MlflowConfig(BaseModel):
    """Where the MLflow tracking server is, how to authenticate, and the identity/approval policy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("mlflow", description="collector instance name (aisoc.collector, cursor key)")
    tracking_uri: str = Field(..., description="MLflow tracking server base URL, e.g. https://mlflow.internal")
    token_env: str | None = Field(None, description="env var holding a bearer token for the server")
    verify_tls: bool = True
    ca_certs: Path | None = Field(None, description="CA bundle to verify the server's certificate")
    timeout_seconds: float = Field(10.0, gt=0)
    poll_interval_seconds: float = Field(60.0, gt=0)
    page_size: int = Field(200, ge=1, le=1000)
    pipeline_identities: list[str] = Field(
        default_factory=list, description="identities allowed to register, promote and retrain")
    protected_aliases: list[str] = Field(default_factory=lambda: ["champion", "production"])
    protected_stages: list[str] = Field(default_factory=lambda: ["Production"])
    watched_experiments: dict[str, str] = Field(
        default_factory=dict,
        description="experiment id or name -> registered model it trains ('' if none); runs there are reported")
    actor_tag: str = Field("mlflow.user", description="model-version tag naming who registered it")
    approval_tag: str = Field("aisoc.change.approved", description="tag holding true/false approval")
    ticket_tag: str = Field("aisoc.change.ticket", description="tag holding a change ticket (means approved)")
    webhook_secret_env: str | None = Field(None, description="env var holding the webhook HMAC secret")
    webhook_max_age_seconds: int = Field(300, ge=1)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    enrich_webhooks: bool = Field(True, description="look deliveries up in the registry (user, lineage, times)")
    verify_artifacts: bool = Field(False, description="hash registered artifacts and re-verify protected versions")
    artifact_verify_interval_seconds: float = Field(3600.0, ge=0)
    max_artifact_bytes: int = Field(512 * 1024 * 1024, ge=0, description="larger files are compared by size only")
    first_poll_lookback_seconds: float | None = Field(
        86400.0, ge=0, description="first live poll (no snapshot yet): registry changes older than this are the "
        "baseline, recorded without events, and so are the aliases it finds (MLflow does not say when an alias "
        "moved); null reports everything as new")

    @field_validator("tracking_uri")
    @classmethod
    def _http_uri(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"tracking_uri must be an http(s) base URL like https://mlflow.internal, not {value!r}")
        if parts.username or parts.password:
            raise ValueError("tracking_uri must not carry credentials (they would show in events); use token_env")
        return value.rstrip("/")


# ---------------------------------------------------------------------------------------------
# small parsing helpers (every one raises MappingError naming the field)


def _text(value: Any, what: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str | None:
    if value is None or value == "":
        if required:
            raise MappingError(f"{what} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MappingError(f"{what} must be a string, not {type(value).__name__}")
    text = str(value)
    if len(text) > max_len:
        raise MappingError(f"{what} is too long ({len(text)} characters, at most {max_len})")
    return text


def _version_no(value: Any, what: str = "version") -> str:
    text = _text(value, what, required=True, max_len=20)
    assert text is not None
    if not text.isascii() or not text.isdigit():
        raise MappingError(f"{what} {text[:40]!r} is not a version number")
    return str(int(text))


def _millis(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MappingError(f"{what} must be milliseconds since the epoch, not {type(value).__name__}")
    text = str(value)
    if len(text) > 20 or not text.lstrip("-").isdigit():
        raise MappingError(f"{what} {text[:40]!r} is not milliseconds since the epoch")
    number = int(text)
    epoch_ms_to_iso(number)  # range check
    return number


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MappingError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _tags(value: Any, what: str = "tags") -> dict[str, str]:
    """MLflow tags as `[{key, value}]` (REST) or `{key: value}` (webhooks) -> dict."""
    if value is None:
        return {}
    pairs: list[tuple[Any, Any]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = [(_obj(t, f"{what}[{i}]").get("key"), t.get("value")) for i, t in enumerate(value)]
    else:
        raise MappingError(f"{what} must be a list or an object, not {type(value).__name__}")
    tags: dict[str, str] = {}
    for key, val in pairs:
        k = _text(key, f"{what} key", required=True, max_len=MAX_NAME)
        tags[k] = _text(val, f"{what}[{k}]") or ""  # type: ignore[index]
    return tags


def _load_json(data: bytes | str, what: str) -> Any:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise MappingError(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise MappingError(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise MappingError(f"{what} is not valid JSON: {str(exc)[:200]}") from None


def _raw(data: Any) -> bytes | str:
    if isinstance(data, bytes):
        return data[:MAX_RAW]
    if isinstance(data, str):
        return data[:MAX_RAW]
    try:
        return json.dumps(data, default=str)[:MAX_RAW]
    except (ValueError, TypeError, RecursionError):
        return repr(data)[:MAX_RAW]


def _headers(headers: Headers | None) -> dict[str, str]:
    """Header names lower-cased; works for dicts, httpx/email headers and (name, value) pairs."""
    if headers is None:
        return {}
    items = headers.items() if hasattr(headers, "items") else headers
    out: dict[str, str] = {}
    try:
        for name, value in items:  # type: ignore[misc]
            if isinstance(name, str) and isinstance(value, str):
                out[name.lower()] = value
    except (TypeError, ValueError):
        return {}
    return out


def _approval(tags: Mapping[str, str], config: MlflowConfig) -> tuple[bool | None, str | None]:
    """(aisoc.change.approved, aisoc.change.ticket) from a version's or run's tags."""
    ticket = tags.get(config.ticket_tag) or None
    raw = (tags.get(config.approval_tag) or "").strip().lower()
    if raw in _TRUE:
        return True, ticket
    if raw in _FALSE:
        return False, ticket
    return (True if ticket else None), ticket


def _now_iso() -> str:
    return normalize_timestamp(datetime.now(UTC)) or ""


def _key(*parts: str) -> str:
    return "\x00".join(parts)


# ---------------------------------------------------------------------------------------------
# webhook signatures


def webhook_signature_problem(headers: Headers | None, body: bytes, secret: str, *,
                              max_age_seconds: int | None = 300, now: float | None = None) -> str | None:
    """Why a delivery fails verification, or None when the signature is valid and fresh.

    MLflow signs `f"{delivery_id}.{timestamp}.{payload}"` with HMAC-SHA256 and sends
    `X-MLflow-Signature: v1,<base64>`; several space-separated signatures are accepted (key rotation).
    `max_age_seconds=None` skips the freshness check (replaying deliveries saved earlier).
    """
    if not secret:
        return "no webhook secret configured"
    if not isinstance(body, bytes):
        return "body is not bytes"
    h = _headers(headers)
    delivery, stamp, signature = h.get(DELIVERY_HEADER), h.get(TIMESTAMP_HEADER), h.get(SIGNATURE_HEADER)
    if not delivery or not stamp or not signature:
        missing = [n for n, v in ((DELIVERY_HEADER, delivery), (TIMESTAMP_HEADER, stamp),
                                  (SIGNATURE_HEADER, signature)) if not v]
        return f"missing header(s): {', '.join(missing)}"
    if len(stamp) > 12 or not stamp.isascii() or not stamp.isdigit():
        return f"{TIMESTAMP_HEADER} {stamp[:20]!r} is not unix seconds"
    if max_age_seconds is not None:
        age = (time.time() if now is None else now) - int(stamp)
        if age > max_age_seconds:
            return f"stale delivery: signed {int(age)} s ago (limit {max_age_seconds} s)"
        if age < -max_age_seconds:
            return f"delivery timestamp is {int(-age)} s in the future"
    signed = f"{delivery}.{stamp}.".encode() + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    for candidate in signature.split():
        version, _, b64 = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            given = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            return None
    return "signature does not match"


def verify_webhook(headers: Headers | None, body: bytes, secret: str, *,
                   max_age_seconds: int | None = 300, now: float | None = None) -> bool:
    """True when an MLflow webhook delivery is signed with `secret` and not older than 5 minutes."""
    return webhook_signature_problem(headers, body, secret, max_age_seconds=max_age_seconds, now=now) is None


# ---------------------------------------------------------------------------------------------
# registry records


@dataclass(frozen=True)
class _Version:
    """One model version as the registry (or a webhook payload) describes it."""

    name: str
    version: str
    created: int | None
    updated: int | None
    stage: str
    run_id: str
    source: str
    user_id: str
    tags: dict[str, str]
    raw: Any
    complete: bool = True  # False: built from a webhook payload (no stage, no times)

    @classmethod
    def from_api(cls, raw: Any, where: str = "model_version") -> _Version:
        rec = _obj(raw, where)
        return cls(
            name=_text(rec.get("name"), f"{where}.name", required=True, max_len=MAX_NAME) or "",
            version=_version_no(rec.get("version"), f"{where}.version"),
            created=_millis(rec.get("creation_timestamp"), f"{where}.creation_timestamp"),
            updated=_millis(rec.get("last_updated_timestamp"), f"{where}.last_updated_timestamp"),
            stage=_text(rec.get("current_stage"), f"{where}.current_stage", max_len=64) or "None",
            run_id=_text(rec.get("run_id"), f"{where}.run_id", max_len=MAX_NAME) or "",
            source=_text(rec.get("source"), f"{where}.source") or "",
            user_id=_text(rec.get("user_id"), f"{where}.user_id", max_len=MAX_NAME) or "",
            tags=_tags(rec.get("tags"), f"{where}.tags"),
            raw=rec,
        )


@dataclass(frozen=True)
class _Model:
    name: str
    created: int | None
    updated: int | None
    aliases: dict[str, str]
    latest: list[Any]

    @classmethod
    def from_api(cls, raw: Any, where: str = "registered_model") -> _Model:
        rec = _obj(raw, where)
        aliases: dict[str, str] = {}
        items = rec.get("aliases") or []
        if not isinstance(items, list):
            raise MappingError(f"{where}.aliases must be a list")
        for i, item in enumerate(items):
            a = _obj(item, f"{where}.aliases[{i}]")
            alias = _text(a.get("alias"), f"{where}.aliases[{i}].alias", required=True, max_len=MAX_NAME) or ""
            aliases[alias] = _version_no(a.get("version"), f"{where}.aliases[{i}].version")
        latest = rec.get("latest_versions") or []
        return cls(
            name=_text(rec.get("name"), f"{where}.name", required=True, max_len=MAX_NAME) or "",
            created=_millis(rec.get("creation_timestamp"), f"{where}.creation_timestamp"),
            updated=_millis(rec.get("last_updated_timestamp"), f"{where}.last_updated_timestamp"),
            aliases=aliases,
            latest=latest if isinstance(latest, list) else [],
        )


@dataclass(frozen=True)
class _Run:
    run_id: str
    experiment_id: str
    status: str
    start: int | None
    end: int | None
    user: str
    tags: dict[str, str]
    raw: Any

    @classmethod
    def from_api(cls, raw: Any, where: str = "run") -> _Run:
        rec = _obj(raw, where)
        info = _obj(rec.get("info"), f"{where}.info")
        data = rec.get("data") or {}
        tags = _tags(_obj(data, f"{where}.data").get("tags"), f"{where}.data.tags")
        run_id = _text(info.get("run_id") or info.get("run_uuid"), f"{where}.info.run_id", required=True,
                       max_len=MAX_NAME) or ""
        user = _text(info.get("user_id"), f"{where}.info.user_id", max_len=MAX_NAME) or tags.get("mlflow.user", "")
        return cls(
            run_id=run_id,
            experiment_id=_text(info.get("experiment_id"), f"{where}.info.experiment_id", max_len=MAX_NAME) or "",
            status=(_text(info.get("status"), f"{where}.info.status", max_len=64) or "").upper(),
            start=_millis(info.get("start_time"), f"{where}.info.start_time") or None,  # 0 = not given
            end=_millis(info.get("end_time"), f"{where}.info.end_time") or None,
            user=user,
            tags=tags,
            raw=rec,
        )


@dataclass
class _Lineage:
    present: bool | None
    experiment_id: str | None = None
    artifact_uri: str | None = None


class _ApiError(Exception):
    """An MLflow API call that failed; `transient` when a retry may succeed."""

    def __init__(self, url: str, reason: str, raw: bytes | str = b"", *, status: int | None = None,
                 error_code: str | None = None, transient: bool = True) -> None:
        super().__init__(reason)
        self.url, self.reason, self.raw = url, reason, raw
        self.status, self.error_code, self.transient = status, error_code, transient

    @property
    def not_found(self) -> bool:
        return self.status == 404 or self.error_code == "RESOURCE_DOES_NOT_EXIST"

    def rejected(self, what: str = "") -> Rejected:
        return Rejected(source=self.url, reason=f"{what}{self.reason}", raw=self.raw)


# ---------------------------------------------------------------------------------------------
# the snapshot and the diff that turns observations into events


def _iso_or_empty(when: Any) -> str:
    try:
        return normalize_timestamp(when) or ""
    except (ValueError, TypeError, OverflowError):
        return ""


def _empty_snapshot() -> dict[str, Any]:
    return {"format": SNAPSHOT_FORMAT, "models": {}, "versions": {}, "aliases": {}, "runs": {}, "artifacts": {},
            "polls": 0}


@dataclass
class _Differ:
    """Applies observations (poll, webhook or replay) to the snapshot and emits the events."""

    snap: dict[str, Any]
    config: MlflowConfig
    lineage: Callable[[str], _Lineage]
    out: list[Record] = field(default_factory=list)
    _fallback_when: str = field(default_factory=_now_iso)  # event time when the record carries none
    baseline_before: str | None = None  # first poll: changes before this (and every alias) are the baseline

    # -- event building ------------------------------------------------------------------------

    def _identity(self, user: str | None) -> bool | None:
        if not self.config.pipeline_identities:
            return None
        return bool(user) and user in self.config.pipeline_identities

    def _reference(self, name: str, version: str | None = None) -> str:
        base = self.config.tracking_uri.rstrip("/")
        page = f"{base}/#/models/{quote(name, safe='')}"
        return f"{page}/versions/{version}" if version else page

    def _emit(self, action: str, record_id: tuple[object, ...], when: Any, fields: dict[str, Any],
              original: Any, *, category: str = "configuration", type_: str = "change",
              outcome: str = "success") -> None:
        if self.baseline_before is not None and (action.startswith("model-alias")
                                                 or _iso_or_empty(when) < self.baseline_before):
            return  # the state found on the first poll, not a change seen happening
        base: dict[str, Any] = {"event.category": [category], "event.type": [type_], "aisoc.model.registry": PROVIDER}
        base.update(fields)
        try:
            self.out.append(make_event(layer=LAYER, provider=PROVIDER, action=action, record_id=record_id,
                                       timestamp=when, fields=base, original=original, outcome=outcome,
                                       collector=self.config.name))
        except MappingError as exc:
            self.out.append(Rejected(source=f"{PROVIDER}:{action}:{record_id}", reason=str(exc), raw=_raw(original)))

    def _version_context(self, name: str, version: str) -> dict[str, Any]:
        """Lineage and approval of a version as the snapshot knows them (for alias/stage events)."""
        entry = self.snap["versions"].get(_key(name, version)) or {}
        approved, ticket = _approval(entry.get("tags") or {}, self.config)
        return {
            "aisoc.model.lineage.run_id": entry.get("run_id"),
            "aisoc.model.lineage.present": entry.get("lineage"),
            "aisoc.model.lineage.experiment_id": entry.get("experiment_id"),
            "aisoc.change.approved": approved,
            "aisoc.change.ticket": ticket,
        }

    # -- models and generations ----------------------------------------------------------------

    def gen(self, name: str) -> int:
        return int((self.snap["models"].get(name) or {}).get("gen", 0))

    def observe_model(self, name: str, created: int | None, when: str) -> None:
        """A registered model exists; a changed creation time means it was deleted and re-created."""
        models = self.snap["models"]
        m = models.get(name)
        if m is None:
            models[name] = {"created": created, "gen": 0, "deleted": False}
            return
        recreated = created is not None and m.get("created") is not None and created != m["created"]
        if m.get("deleted") or recreated:
            if recreated and not m.get("deleted"):
                self.model_gone(name, when)
            m.update(gen=int(m.get("gen", 0)) + 1, created=created, deleted=False)
        elif m.get("created") is None:
            m["created"] = created

    def model_gone(self, name: str, when: str) -> None:
        for entry in list(self.snap["versions"].values()):
            if entry.get("name") == name and not entry.get("deleted"):
                self.version_gone(name, entry["version"], when)
        for entry in list(self.snap["aliases"].values()):
            if entry.get("name") == name and entry.get("version") is not None:
                self.observe_alias(name, entry["alias"], None, when, None)
        m = self.snap["models"].setdefault(name, {"created": None, "gen": 0})
        m["deleted"] = True

    # -- versions ------------------------------------------------------------------------------

    def observe_version(self, v: _Version, when: str) -> None:
        """First sight -> registered (+ stage if not None); later -> stage and tag changes."""
        self.observe_model(v.name, None, when)  # a version of a model seen deleted: a new generation
        gen = self.gen(v.name)
        key = _key(v.name, v.version)
        entry = self.snap["versions"].get(key)
        if entry is None or entry.get("deleted") or int(entry.get("gen", 0)) != gen:
            self._registered(v, gen, self.lineage(v.run_id))
            if v.complete and v.stage not in ("None", ""):
                self._stage(v, gen, None, when)
            return
        if not v.complete:
            return
        if v.stage != entry.get("stage"):
            self._stage(v, gen, entry.get("stage"), when)
            entry["stage"] = v.stage
        for tag in sorted(set(v.tags) | set(entry.get("tags") or {})):
            self.observe_tag(v.name, v.version, tag, v.tags.get(tag), when, v.raw)
        entry["updated"] = v.updated
        if entry.get("created") is None:
            entry["created"] = v.created
        if not entry.get("user") and v.user_id:
            entry["user"] = v.user_id

    def _registered(self, v: _Version, gen: int, lin: _Lineage) -> None:
        user = v.user_id or v.tags.get(self.config.actor_tag) or None
        approved, ticket = _approval(v.tags, self.config)
        present = False if not v.run_id else lin.present
        when = epoch_ms_to_iso(v.created) if v.created is not None else self._fallback_when
        self._emit("model-version-registered", (v.name, v.version, gen), when, {
            "message": f"model version {v.name}/{v.version} registered from {v.source or '(no source)'}"
                       + (f" (run {v.run_id})" if v.run_id else " without a training run"),
            "aisoc.model.name": v.name,
            "aisoc.model.version": v.version,
            "aisoc.model.source": v.source,
            "url.full": v.source,
            "aisoc.model.lineage.run_id": v.run_id,
            "aisoc.model.lineage.present": present,
            "aisoc.model.lineage.experiment_id": lin.experiment_id,
            "user.name": user,
            "aisoc.pipeline.identity_approved": self._identity(user),
            "aisoc.change.approved": approved,
            "aisoc.change.ticket": ticket,
            "event.reference": self._reference(v.name, v.version),
        }, v.raw, type_="creation")
        self.snap["versions"][_key(v.name, v.version)] = {
            "name": v.name, "version": v.version, "gen": gen, "created": v.created, "updated": v.updated,
            "stage": v.stage if v.complete else "None", "run_id": v.run_id, "source": v.source,
            "tags": dict(v.tags), "tag_seq": {}, "lineage": present, "experiment_id": lin.experiment_id,
            "artifact_uri": lin.artifact_uri, "user": user,
        }

    def _stage(self, v: _Version, gen: int, previous: str | None, when: str) -> None:
        at = epoch_ms_to_iso(v.updated) if v.updated is not None else when
        fields = {
            "message": f"model version {v.name}/{v.version} moved to stage {v.stage}"
                       + (f" from {previous}" if previous else ""),
            "aisoc.model.name": v.name,
            "aisoc.model.version": v.version,
            "aisoc.model.stage": v.stage,
            "aisoc.model.previous_stage": previous,
            "aisoc.pipeline.identity_approved": self._identity(None),
            "event.reference": self._reference(v.name, v.version),
            **self._version_context(v.name, v.version),
        }
        approved, ticket = _approval(v.tags, self.config)
        fields.update({"aisoc.change.approved": approved, "aisoc.change.ticket": ticket})
        self._emit("model-stage-changed", (v.name, v.version, gen, v.updated, v.stage), at, fields, v.raw)

    def observe_tag(self, name: str, version: str, tag: str, value: str | None, when: str, original: Any) -> None:
        entry = self.snap["versions"].get(_key(name, version))
        gen = self.gen(name)
        if entry is not None and entry.get("deleted"):
            entry = None
        tags = entry.setdefault("tags", {}) if entry is not None else {}
        if entry is not None and tags.get(tag) == value:
            return
        seqs = entry.setdefault("tag_seq", {}) if entry is not None else {}
        seq = int(seqs.get(tag, 0)) + 1
        previous = tags.get(tag)
        action = "model-version-tag-set" if value is not None else "model-version-tag-deleted"
        record_id: tuple[object, ...] = (name, version, gen, tag, seq) if entry is not None else (
            name, version, gen, tag, "unsnapshotted", value)
        self._emit(action, record_id, when, {
            "message": f"tag {tag!r} on model version {name}/{version} "
                       + (f"set to {value!r}" if value is not None else "deleted")
                       + (f" (was {previous!r})" if previous is not None else ""),
            "aisoc.model.name": name,
            "aisoc.model.version": version,
            "aisoc.model.tag.key": tag,
            "aisoc.model.tag.value": value,
            "aisoc.pipeline.identity_approved": self._identity(None),
            "event.reference": self._reference(name, version),
        }, original, type_="change" if value is not None else "deletion")
        if entry is not None:
            seqs[tag] = seq
            if value is None:
                tags.pop(tag, None)
            else:
                tags[tag] = value

    def version_gone(self, name: str, version: str, when: str) -> None:
        key = _key(name, version)
        entry = self.snap["versions"].get(key) or {}
        gen = int(entry.get("gen", self.gen(name)))
        self._emit("model-version-deleted", (name, version, gen), when, {
            "message": f"model version {name}/{version} deleted (was in stage {entry.get('stage', 'None')})",
            "aisoc.model.name": name,
            "aisoc.model.version": version,
            "aisoc.model.previous_stage": entry.get("stage"),
            "aisoc.model.source": entry.get("source"),
            "aisoc.model.lineage.run_id": entry.get("run_id"),
            "aisoc.pipeline.identity_approved": self._identity(None),
            "event.reference": self._reference(name),
        }, {"name": name, "version": version, "last_known": entry}, type_="deletion")
        self.snap["versions"][key] = {"name": name, "version": version, "gen": gen, "deleted": True}
        self.snap["artifacts"].pop(key, None)

    # -- aliases -------------------------------------------------------------------------------

    def observe_alias(self, name: str, alias: str, version: str | None, when: str, original: Any) -> None:
        """Alias now points at `version` (None: removed); emits on any difference from the snapshot."""
        key = _key(name, alias)
        entry = self.snap["aliases"].setdefault(key, {"name": name, "alias": alias, "version": None, "seq": 0})
        previous = entry.get("version")
        if previous == version:
            return
        seq = int(entry.get("seq", 0)) + 1
        protected = alias.lower() in {a.lower() for a in self.config.protected_aliases}
        common = {
            "aisoc.model.name": name,
            "aisoc.model.alias": alias,
            "aisoc.model.previous_version": previous,
            "aisoc.pipeline.identity_approved": self._identity(None),
            "event.reference": self._reference(name, version),
        }
        if version is None:
            self._emit("model-alias-deleted", (name, alias, seq), when, {
                **common,
                "message": f"alias {alias!r} of {name} removed (pointed at version {previous})"
                           + (" - protected alias" if protected else ""),
                "aisoc.model.version": previous,
            }, original or {"name": name, "alias": alias}, type_="deletion")
        else:
            self._emit("model-alias-changed", (name, alias, seq, version), when, {
                **self._version_context(name, version),
                **common,
                "message": f"alias {alias!r} of {name} now points at version {version}"
                           + (f" (was {previous})" if previous else " (new alias)")
                           + (" - protected alias" if protected else ""),
                "aisoc.model.version": version,
            }, original or {"name": name, "alias": alias, "version": version})
        entry.update(version=version, seq=seq)

    # -- runs ----------------------------------------------------------------------------------

    def observe_run(self, run: _Run, model: str | None, when: str) -> None:
        runs = self.snap["runs"]
        previous = runs.get(run.run_id)
        approved, ticket = _approval(run.tags, self.config)
        common = {
            "aisoc.model.name": model or None,
            "aisoc.model.lineage.experiment_id": run.experiment_id,
            "aisoc.model.lineage.run_id": run.run_id,
            "aisoc.model.run.status": run.status,
            "user.name": run.user or None,
            "aisoc.pipeline.identity_approved": self._identity(run.user or None),
            "aisoc.pipeline.name": run.tags.get("aisoc.pipeline.name"),
            "aisoc.change.approved": approved,
            "aisoc.change.ticket": ticket,
            "event.reference": f"{self.config.tracking_uri.rstrip('/')}/#/experiments/"
                               f"{quote(run.experiment_id, safe='')}/runs/{quote(run.run_id, safe='')}",
        }
        if previous is None:
            start = epoch_ms_to_iso(run.start) if run.start else when
            self._emit("training-run-started", (run.run_id,), start, {
                **common, "message": f"training run {run.run_id} started by {run.user or 'an unknown identity'}"
                                     f" in experiment {run.experiment_id}"}, run.raw,
                       category="process", type_="start")
        if run.status in TERMINAL_RUN_STATUSES and previous != run.status:
            end = epoch_ms_to_iso(run.end) if run.end else when
            self._emit("training-run-finished", (run.run_id, run.status), end, {
                **common, "message": f"training run {run.run_id} ended {run.status}"}, run.raw,
                       category="process", type_="end", outcome="success" if run.status == "FINISHED" else "failure")
        runs[run.run_id] = run.status
        while len(runs) > MAX_RUNS_REMEMBERED:
            runs.pop(next(iter(runs)))


# ---------------------------------------------------------------------------------------------
# the collector


class MlflowCollector:
    """MLflow registry and tracking collector: `poll`, `parse_webhook`/`receive_webhook`, `replay`.

    Give it the `CursorStore` at construction (or to `poll`) so poll and webhooks share one
    snapshot and a restart resumes; without one the snapshot lives in memory.
    """

    def __init__(self, config: MlflowConfig, cursor: CursorStore | None = None,
                 clock: Callable[[], str] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.clock = clock or _now_iso  # the poll time stamped on changes the registry does not date
        self.cursor = cursor
        self._http: httpx.Client | None = None
        self._lock = threading.RLock()
        self._memory: dict[str, Any] | None = None
        self._experiment_ids: dict[str, str] = {}

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def _cursor_key(self) -> str:
        return f"{self.config.name}:snapshot"

    def _load(self, store: CursorStore | None) -> dict[str, Any]:
        if store is None:
            if self._memory is None:
                self._memory = _empty_snapshot()
            return json.loads(json.dumps(self._memory))
        snap = store.get(self._cursor_key)
        if not isinstance(snap, dict) or snap.get("format") != SNAPSHOT_FORMAT:
            return _empty_snapshot()
        snap.setdefault("polls", 1)  # a snapshot saved before polls were counted has been polled
        for part, empty in _empty_snapshot().items():
            snap.setdefault(part, empty)
        return snap

    def _save(self, store: CursorStore | None, snap: dict[str, Any]) -> None:
        if store is None:
            self._memory = snap
        else:
            store.set(self._cursor_key, snap)

    def _client(self) -> httpx.Client:
        if self._http is None:
            headers = {"Accept": "application/json", "User-Agent": "aisoc-mlflow-collector"}
            token = os.environ.get(self.config.token_env) if self.config.token_env else None
            if token:
                headers["Authorization"] = f"Bearer {token}"
            verify: ssl.SSLContext | bool = self.config.verify_tls
            if self.config.ca_certs is not None and self.config.verify_tls:
                verify = ssl.create_default_context(cafile=str(self.config.ca_certs))
            self._http = httpx.Client(base_url=self.config.tracking_uri.rstrip("/") + "/", headers=headers,
                                      verify=verify, timeout=self.config.timeout_seconds,
                                      follow_redirects=False)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> MlflowCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One REST call -> the JSON object; any failure -> _ApiError with a clear reason."""
        url = path if path.startswith("/") else API + path
        shown = f"{self.config.tracking_uri.rstrip('/')}{url}"
        try:
            resp = self._client().request(method, url.lstrip("/"), params=params, json=body)
        except httpx.HTTPError as exc:
            raise _ApiError(shown, f"cannot reach MLflow: {type(exc).__name__}: {str(exc)[:300]}") from None
        content = resp.content[:MAX_RAW]
        if resp.status_code >= 400:
            code, message = None, resp.text[:300]
            try:
                err = resp.json()
                if isinstance(err, dict):
                    code, message = err.get("error_code"), str(err.get("message", ""))[:300]
            except ValueError:
                pass
            raise _ApiError(shown, f"HTTP {resp.status_code}{f' {code}' if code else ''}: {message}", content,
                            status=resp.status_code, error_code=code if isinstance(code, str) else None,
                            transient=resp.status_code >= 500 or resp.status_code == 429)
        try:
            data = resp.json()
        except (ValueError, RecursionError):
            raise _ApiError(shown, f"HTTP {resp.status_code} response is not JSON", content) from None
        if not isinstance(data, dict):
            raise _ApiError(shown, f"response is a JSON {type(data).__name__}, not an object", content)
        return data

    def _pages(self, path: str, key: str, *, params: dict[str, Any] | None = None,
               body: dict[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
        """Items of a paged search, following `next_page_token`; yields (where, item)."""
        token: str | None = None
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            if body is not None:
                data = self._call("POST", path, body={**body, "max_results": self.config.page_size,
                                                      **({"page_token": token} if token else {})})
            else:
                data = self._call("GET", path, params={**(params or {}), "max_results": self.config.page_size,
                                                       **({"page_token": token} if token else {})})
            items = data.get(key) or []
            if not isinstance(items, list):
                raise _ApiError(f"{self.config.tracking_uri}{API}{path}", f"'{key}' is not a list", _raw(data))
            for i, item in enumerate(items):
                yield f"{path} page {page + 1} {key}[{i}]", item
            token = data.get("next_page_token") or None
            if not token:
                return
            if not isinstance(token, str) or token in seen:
                raise _ApiError(f"{self.config.tracking_uri}{API}{path}", "bad or repeated next_page_token", _raw(data))
            seen.add(token)

    def _live_lineage(self, cache: dict[str, _Lineage]) -> Callable[[str], _Lineage]:
        def lookup(run_id: str) -> _Lineage:
            if not run_id:
                return _Lineage(False)
            if run_id not in cache:
                try:
                    run = _obj(self._call("GET", "runs/get", params={"run_id": run_id}).get("run"), "run")
                    info = _obj(run.get("info"), "run.info")
                    cache[run_id] = _Lineage(
                        info.get("lifecycle_stage", "active") != "deleted",
                        _text(info.get("experiment_id"), "run.info.experiment_id", max_len=MAX_NAME),
                        _text(info.get("artifact_uri"), "run.info.artifact_uri"))
                except _ApiError as exc:
                    if exc.not_found or exc.error_code == "INVALID_PARAMETER_VALUE":
                        cache[run_id] = _Lineage(False)
                    else:
                        raise
                except MappingError:
                    cache[run_id] = _Lineage(None)
            return cache[run_id]
        return lookup

    @staticmethod
    def _offline_lineage(run_id: str) -> _Lineage:
        return _Lineage(False if not run_id else None)

    # -- live pull -----------------------------------------------------------------------------

    def poll(self, cursor: CursorStore | None = None) -> list[Record]:
        """One poll: diff the registry (and watched experiments) against the snapshot; save it."""
        store = cursor if cursor is not None else self.cursor
        with self._lock:
            snap = self._load(store)
            now = self.clock()
            differ = _Differ(snap, self.config, self._live_lineage({}), _fallback_when=now)
            lookback = self.config.first_poll_lookback_seconds
            if snap["polls"] == 0 and lookback is not None:
                start = datetime.fromisoformat(now.replace("Z", "+00:00")) - timedelta(seconds=lookback)
                differ.baseline_before = normalize_timestamp(start)
            self._poll_registry(differ, now)
            self._poll_runs(differ, now)
            differ.baseline_before = None
            if self.config.verify_artifacts:
                self._verify_artifacts(differ, now)
            snap["polls"] += 1
            self._save(store, snap)
            return differ.out

    def _poll_registry(self, differ: _Differ, now: str) -> None:
        try:
            raw_models = list(self._pages("registered-models/search", "registered_models"))
            raw_versions = list(self._pages("model-versions/search", "model_versions"))
        except _ApiError as exc:
            differ.out.append(exc.rejected("registry poll skipped, snapshot unchanged: "))
            return
        complete = True  # a record we cannot read must never look like a deletion
        models: dict[str, _Model] = {}
        for where, raw in raw_models:
            try:
                m = _Model.from_api(raw, where)
                models[m.name] = m
            except _ERRORS as exc:
                complete = False
                differ.out.append(Rejected(f"{self.config.tracking_uri}{API}{where}", str(exc), _raw(raw)))
        versions: dict[tuple[str, str], _Version] = {}
        for where, raw in raw_versions:
            try:
                v = _Version.from_api(raw, where)
                versions[(v.name, v.version)] = v
            except _ERRORS as exc:
                complete = False
                differ.out.append(Rejected(f"{self.config.tracking_uri}{API}{where}", str(exc), _raw(raw)))
        for m in models.values():
            differ.observe_model(m.name, m.created, now)
        for v in sorted(versions.values(), key=lambda v: (v.name, int(v.version))):
            try:
                differ.observe_version(v, now)
            except _ApiError as exc:
                differ.out.append(exc.rejected(f"lineage of {v.name}/{v.version} unknown, retried next poll: "))
        if complete:
            for entry in list(differ.snap["versions"].values()):
                if not entry.get("deleted") and (entry["name"], entry["version"]) not in versions \
                        and entry["name"] in models:
                    differ.version_gone(entry["name"], entry["version"], now)
            for name, m in list(differ.snap["models"].items()):
                if not m.get("deleted") and name not in models:
                    differ.model_gone(name, now)
        for m in models.values():
            for alias, version in sorted(m.aliases.items()):
                differ.observe_alias(m.name, alias, version, now, {"name": m.name, "alias": alias, "version": version})
            for entry in list(differ.snap["aliases"].values()):
                if entry.get("name") == m.name and entry.get("version") is not None and entry["alias"] not in m.aliases:
                    differ.observe_alias(m.name, entry["alias"], None, now, None)

    def _experiment_id(self, ref: str) -> str:
        if ref not in self._experiment_ids:
            if ref.isdigit():
                self._experiment_ids[ref] = ref
            else:
                exp = _obj(self._call("GET", "experiments/get-by-name", params={"experiment_name": ref})
                           .get("experiment"), "experiment")
                self._experiment_ids[ref] = _text(exp.get("experiment_id"), "experiment_id", required=True) or ""
        return self._experiment_ids[ref]

    def _poll_runs(self, differ: _Differ, now: str) -> None:
        for ref, model in self.config.watched_experiments.items():
            try:
                exp_id = self._experiment_id(ref)
                raw_runs = list(self._pages("runs/search", "runs", body={
                    "experiment_ids": [exp_id], "run_view_type": "ALL", "order_by": ["attributes.start_time ASC"]}))
            except _ApiError as exc:
                differ.out.append(exc.rejected(f"runs of experiment {ref!r} not polled: "))
                continue
            except MappingError as exc:
                differ.out.append(Rejected(f"{self.config.tracking_uri}{API}experiments/get-by-name", str(exc), ref))
                continue
            for where, raw in raw_runs:
                try:
                    differ.observe_run(_Run.from_api(raw, where), model, now)
                except _ERRORS as exc:
                    differ.out.append(Rejected(f"{self.config.tracking_uri}{API}{where}", str(exc), _raw(raw)))

    # -- artifact integrity --------------------------------------------------------------------

    def _artifact_location(self, entry: dict[str, Any]) -> tuple[str, str] | None:
        """(run_id, path inside the run's artifacts) for a version whose source is run artifacts."""
        run_id, source = entry.get("run_id") or "", entry.get("source") or ""
        if not run_id:
            return None
        if source.startswith("runs:/"):
            rest = source[len("runs:/"):].lstrip("/")
            rid, _, path = rest.partition("/")
            return (rid, path.strip("/")) if rid == run_id else None
        root = (entry.get("artifact_uri") or "").rstrip("/")
        if root:
            s, r = urlsplit(source), urlsplit(root)
            src_path, root_path = unquote(s.path).rstrip("/"), unquote(r.path).rstrip("/")
            if (s.scheme or "file") == (r.scheme or "file") and s.netloc == r.netloc:
                if src_path == root_path:
                    return run_id, ""
                if src_path.startswith(root_path + "/"):
                    return run_id, posixpath.relpath(src_path, root_path)
        return None

    def _list_files(self, run_id: str, path: str) -> dict[str, int | None]:
        files: dict[str, int | None] = {}
        pending = [path]
        while pending and len(files) < 10_000:
            current = pending.pop()
            params = {"run_id": run_id, **({"path": current} if current else {})}
            data = self._call("GET", "artifacts/list", params=params)
            items = data.get("files") or []
            if not isinstance(items, list):
                raise _ApiError("artifacts/list", "'files' is not a list", _raw(data), transient=False)
            if not items and current == path and path:
                files[path] = None  # the source is a single file (or an empty directory)
            for item in items:
                it = _obj(item, "artifact")
                p = _text(it.get("path"), "artifact.path", required=True) or ""
                if it.get("is_dir"):
                    pending.append(p)
                else:
                    size = it.get("file_size")
                    files[p] = size if isinstance(size, int) and not isinstance(size, bool) else None
        return files

    def _hash_file(self, run_id: str, path: str, size: int | None) -> str | None:
        if size is not None and size > self.config.max_artifact_bytes:
            return None
        digest, total = hashlib.sha256(), 0
        try:
            with self._client().stream("GET", "get-artifact", params={"run_id": run_id, "path": path}) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _ApiError(f"{self.config.tracking_uri}/get-artifact?path={path}",
                                    f"HTTP {resp.status_code}: {resp.text[:300]}", resp.content[:MAX_RAW],
                                    status=resp.status_code)
                for chunk in resp.iter_bytes():
                    total += len(chunk)
                    if total > self.config.max_artifact_bytes:
                        return None
                    digest.update(chunk)
        except httpx.HTTPError as exc:
            raise _ApiError(f"{self.config.tracking_uri}/get-artifact", f"cannot download {path}: {exc}") from None
        return digest.hexdigest()

    def _verify_artifacts(self, differ: _Differ, now: str) -> None:
        """Hash run-artifact files of each version at first sight (trust-on-first-use baseline) and re-verify versions
        under a protected alias or stage every `artifact_verify_interval_seconds`."""
        snap = differ.snap
        protected_aliases = {a.lower() for a in self.config.protected_aliases}
        protected_stages = {s.lower() for s in self.config.protected_stages}
        serving = {_key(a["name"], a["version"]) for a in snap["aliases"].values()
                   if a.get("version") and str(a.get("alias", "")).lower() in protected_aliases}
        clock = time.time()
        for key, entry in list(snap["versions"].items()):
            if entry.get("deleted"):
                continue
            state = snap["artifacts"].get(key)
            if state is not None:
                due = clock - float(state.get("checked", 0)) >= self.config.artifact_verify_interval_seconds
                if not due or not (key in serving or str(entry.get("stage", "")).lower() in protected_stages):
                    continue
            location = self._artifact_location(entry)
            if location is None:
                snap["artifacts"][key] = {"checked": clock, "files": {}, "unsupported": True}
                continue
            run_id, path = location
            try:
                files = self._list_files(run_id, path)
                observed = {p: {"size": size, "sha256": self._hash_file(run_id, p, size)} for p, size in files.items()}
            except (_ApiError, MappingError) as exc:
                reason = exc.reason if isinstance(exc, _ApiError) else str(exc)
                differ.out.append(Rejected(f"{self.config.tracking_uri}{API}artifacts/list?run_id={run_id}",
                                           f"artifacts of {entry['name']}/{entry['version']} not verified: {reason}",
                                           _raw(entry)))
                continue
            if state is None or state.get("unsupported"):
                snap["artifacts"][key] = {"checked": clock, "files": observed, "reported": {}}
                continue
            state["checked"] = clock
            reported = state.setdefault("reported", {})  # path -> last verdict reported ("ok" = as baseline)
            for p in sorted(set(observed) | set(state["files"])):
                exp, obs = state["files"].get(p), observed.get(p)
                match = self._artifact_match(exp, obs)
                if match is None:
                    continue
                verdict = "ok" if match else str((obs or {}).get("sha256") or (obs or {}).get("size") or "missing")
                if reported.get(p, "ok") == verdict:
                    continue
                reported[p] = verdict
                self._artifact_event(differ, entry, p, exp, obs, match, now)

    @staticmethod
    def _artifact_match(expected: dict[str, Any] | None, observed: dict[str, Any] | None) -> bool | None:
        if expected is None or observed is None:
            return False  # a file appeared or disappeared
        if expected.get("sha256") and observed.get("sha256"):
            return bool(expected["sha256"] == observed["sha256"])
        sizes = expected.get("size"), observed.get("size")
        if None not in sizes and sizes[0] != sizes[1]:
            return False
        return None  # too large to hash and same size: no verdict

    def _artifact_event(self, differ: _Differ, entry: dict[str, Any], path: str, expected: dict[str, Any] | None,
                        observed: dict[str, Any] | None, match: bool, now: str) -> None:
        name, version = entry["name"], entry["version"]
        obs_sha = (observed or {}).get("sha256")
        exp_sha = (expected or {}).get("sha256")
        base = posixpath.basename(path)
        ext = posixpath.splitext(base)[1].lstrip(".") or None
        what = ("matches its registration-time hash" if match else
                "was added after registration" if expected is None else
                "is missing" if observed is None else "differs from its registration-time hash")
        differ._emit("model-artifact-verified", (name, version, differ.gen(name), path, obs_sha or "missing",
                                                 exp_sha or "none"), now, {
            "message": f"artifact {path} of model version {name}/{version} {what}",
            "aisoc.model.name": name,
            "aisoc.model.version": version,
            "aisoc.model.artifact.sha256": obs_sha,
            "aisoc.model.artifact.expected_sha256": exp_sha,
            "aisoc.model.artifact.hash_match": match,
            "file.path": path,
            "file.name": base,
            "file.extension": ext,
            "file.size": (observed or {}).get("size"),
            "file.hash.sha256": obs_sha,
            "aisoc.model.lineage.run_id": entry.get("run_id"),
            "event.reference": differ._reference(name, version),
        }, {"path": path, "expected": expected, "observed": observed}, category="file", type_="info",
            outcome="success" if match else "failure")

    # -- push ----------------------------------------------------------------------------------

    def receive_webhook(self, headers: Headers | None, body: bytes) -> list[Record]:
        """What an HTTP receiver calls: size cap, signature and freshness check, then `parse_webhook`."""
        h = _headers(headers)
        source = f"mlflow-webhook:{h.get(DELIVERY_HEADER, '?')[:100]}"
        if not isinstance(body, bytes):
            return [Rejected(source, "body is not bytes", _raw(body))]
        if len(body) > self.config.max_body_bytes:
            return [Rejected(source, f"body of {len(body)} bytes exceeds max_body_bytes "
                                     f"{self.config.max_body_bytes}", body[:MAX_RAW])]
        secret = os.environ.get(self.config.webhook_secret_env) if self.config.webhook_secret_env else None
        if not secret:
            return [Rejected(source, "refused: no webhook secret configured (set webhook_secret_env and the "
                                     "variable it names)", body[:MAX_RAW])]
        problem = webhook_signature_problem(h, body, secret, max_age_seconds=self.config.webhook_max_age_seconds)
        if problem:
            return [Rejected(source, f"refused: {problem}", body[:MAX_RAW])]
        return self.parse_webhook(h, body)

    def parse_webhook(self, headers: Headers | None, body: bytes) -> list[Record]:
        """Map one (already verified) MLflow webhook delivery to events; never raises.

        MODEL_VERSION/CREATED -> model-version-registered; MODEL_VERSION_ALIAS/CREATED|DELETED ->
        model-alias-changed|deleted; MODEL_VERSION_TAG/SET|DELETED -> model-version-tag-set|deleted.
        Changes the snapshot already holds (seen by the poll, or a redelivery) give no event.
        """
        with self._lock:
            snap = self._load(self.cursor)
            out = self._apply_delivery(snap, _headers(headers), body, enrich=self.config.enrich_webhooks)
            self._save(self.cursor, snap)
            return out

    def _apply_delivery(self, snap: dict[str, Any], h: dict[str, str], body: Any, *, enrich: bool,
                        source: str | None = None) -> list[Record]:
        delivery = h.get(DELIVERY_HEADER, "")[:100]
        source = source or f"mlflow-webhook:{delivery or '?'}"
        try:
            if isinstance(body, str):
                body = body.encode("utf-8", errors="surrogatepass")
            if not isinstance(body, bytes):
                raise MappingError(f"body must be bytes, not {type(body).__name__}")
            if len(body) > self.config.max_body_bytes:
                raise MappingError(f"body of {len(body)} bytes exceeds max_body_bytes {self.config.max_body_bytes}")
            payload = _obj(_load_json(body, "webhook body"), "webhook body")
            entity = (_text(payload.get("entity"), "entity", required=True, max_len=64) or "").lower()
            action = (_text(payload.get("action"), "action", required=True, max_len=64) or "").lower()
            when = self._delivery_time(payload, h)
            if (entity, action) in _IGNORED_DELIVERIES:
                return []
            data = _obj(payload.get("data"), "webhook data")
            name = _text(data.get("name"), "data.name", required=True, max_len=MAX_NAME) or ""
            differ = _Differ(snap, self.config, self._live_lineage({}) if enrich else self._offline_lineage,
                             _fallback_when=when)
            original = body.decode("utf-8", errors="replace")
            if entity == "model_version" and action == "created":
                v = _Version(name=name, version=_version_no(data.get("version"), "data.version"), created=None,
                             updated=None, stage="None", run_id=_text(data.get("run_id"), "data.run_id") or "",
                             source=_text(data.get("source"), "data.source") or "", user_id="",
                             tags=_tags(data.get("tags"), "data.tags"), raw=payload, complete=False)
                self._ensure_version(differ, v, when, enrich, original, required=True)
            elif entity == "model_version_tag" and action in ("set", "deleted"):
                version = _version_no(data.get("version"), "data.version")
                key = _text(data.get("key"), "data.key", required=True, max_len=MAX_NAME) or ""
                value = (_text(data.get("value"), "data.value") or "") if action == "set" else None
                self._ensure_version(differ, _Version(name, version, None, None, "None", "", "", "", {}, payload,
                                                      complete=False), when, enrich, original, required=False)
                differ.observe_tag(name, version, key, value, when, original)
            elif entity == "model_version_alias" and action == "created":
                alias = _text(data.get("alias"), "data.alias", required=True, max_len=MAX_NAME) or ""
                version = _version_no(data.get("version"), "data.version")
                self._ensure_version(differ, _Version(name, version, None, None, "None", "", "", "", {}, payload,
                                                      complete=False), when, enrich, original, required=False)
                differ.observe_alias(name, alias, version, when, original)
            elif entity == "model_version_alias" and action == "deleted":
                alias = _text(data.get("alias"), "data.alias", required=True, max_len=MAX_NAME) or ""
                differ.observe_alias(name, alias, None, when, original)
            else:
                raise MappingError(f"unsupported webhook event {entity}.{action}")
        except _ERRORS as exc:
            return [Rejected(source, str(exc), _raw(body))]
        except _ApiError as exc:
            return [Rejected(source, f"registry lookup failed: {exc.reason}", _raw(body))]
        for event in differ.out:
            if isinstance(event, dict) and delivery:
                event["labels.mlflow_delivery_id"] = delivery
        return differ.out

    def _ensure_version(self, differ: _Differ, payload_version: _Version, when: str, enrich: bool,
                        original: str, *, required: bool) -> None:
        """Make sure the snapshot knows the version a delivery is about (emits its registration if new).

        Enriched from the registry when possible (same event as the poll's); if the registry says the
        version does not exist (MLflow's test delivery, or deleted since) a MODEL_VERSION/CREATED
        delivery is rejected; if the registry is unreachable the payload alone is used.
        """
        key = _key(payload_version.name, payload_version.version)
        entry = differ.snap["versions"].get(key)
        known = entry is not None and not entry.get("deleted") and int(entry.get("gen", 0)) == differ.gen(
            payload_version.name)
        if known:
            return
        if enrich:
            try:
                rec = self._call("GET", "model-versions/get",
                                 params={"name": payload_version.name, "version": payload_version.version})
                differ.observe_version(_Version.from_api(rec.get("model_version"), "model_version"), when)
                return
            except _ApiError as exc:
                if exc.not_found:
                    if required:
                        raise MappingError(f"model version {payload_version.name}/{payload_version.version} does "
                                           "not exist in the registry (an MLflow test delivery, or deleted since)"
                                           ) from None
                    return
                if not exc.transient:
                    raise
                differ.lineage = self._offline_lineage  # registry down: payload only, lineage unknown
        if required:
            differ.observe_version(payload_version, when)

    @staticmethod
    def _delivery_time(payload: dict[str, Any], h: dict[str, str]) -> str:
        stamp = payload.get("timestamp")
        if isinstance(stamp, str) and len(stamp) <= 64:
            try:
                when = normalize_timestamp(stamp)
                if when:
                    return when
            except (ValueError, OverflowError):
                pass
        header = h.get(TIMESTAMP_HEADER, "")
        if header.isascii() and header.isdigit() and len(header) <= 12:
            return epoch_ms_to_iso(int(header) * 1000) or _now_iso()
        return _now_iso()

    # -- replay --------------------------------------------------------------------------------

    def replay(self, path: Path) -> Iterator[Record]:
        """Events from saved API responses and webhook deliveries (a file, or a directory of them)."""
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".ndjson", ".jsonl")
                       and not p.name.startswith(".")) if path.is_dir() else [path]
        snap = _empty_snapshot()
        for file in files:
            yield from self._replay_file(file, snap)

    def _replay_file(self, file: Path, snap: dict[str, Any]) -> Iterator[Record]:
        data = read_replay_file(file, MAX_REPLAY_FILE_BYTES)
        if isinstance(data, Rejected):
            yield data
            return
        if file.suffix in (".ndjson", ".jsonl"):
            for lineno, line in enumerate(data.splitlines(), 1):
                if line.strip():
                    yield from self._replay_record(line, f"{file}:{lineno}", lineno, snap)
        else:
            yield from self._replay_record(data, f"{file}:1", 1, snap)

    def _replay_record(self, data: bytes, where: str, lineno: int, snap: dict[str, Any]) -> Iterator[Record]:
        try:
            record = _load_json(data, "record")
        except MappingError as exc:
            yield Rejected(where, str(exc), data[:MAX_RAW], line=lineno)
            return
        items = record if isinstance(record, list) else [record]
        for i, item in enumerate(items):
            ref = f"{where}[{i}]" if isinstance(record, list) else where
            try:
                out = self._replay_item(item, ref, snap)
            except _ERRORS as exc:
                out = [Rejected(ref, str(exc), _raw(item), line=lineno)]
            for rec in out:
                yield Rejected(rec.source, rec.reason, rec.raw, line=lineno) if isinstance(rec, Rejected) else rec

    def _replay_item(self, item: Any, where: str, snap: dict[str, Any]) -> list[Record]:
        if not isinstance(item, dict):
            raise MappingError(f"record must be a JSON object, not {type(item).__name__}")
        if "body" in item and "headers" in item:
            return self._replay_delivery(item, where, snap)
        differ = _Differ(snap, self.config, self._offline_lineage)
        now = differ._fallback_when
        recognised = False
        if "registered_models" in item or "registered_model" in item:
            recognised = True
            raw_models = item.get("registered_models") if "registered_models" in item else [item["registered_model"]]
            if not isinstance(raw_models, list):
                raise MappingError("registered_models must be a list")
            for i, raw in enumerate(raw_models):
                try:
                    m = _Model.from_api(raw, f"registered_models[{i}]")
                except _ERRORS as exc:
                    differ.out.append(Rejected(f"{where} registered_models[{i}]", str(exc), _raw(raw)))
                    continue
                when = epoch_ms_to_iso(m.updated) if m.updated else now
                differ.observe_model(m.name, m.created, when)
                for j, latest in enumerate(m.latest):
                    self._replay_version(differ, latest, f"{where} registered_models[{i}].latest_versions[{j}]", when)
                for alias, version in sorted(m.aliases.items()):
                    differ.observe_alias(m.name, alias, version, when, {"name": m.name, "alias": alias,
                                                                       "version": version})
        if "model_versions" in item or "model_version" in item:
            recognised = True
            raw_versions = item.get("model_versions") if "model_versions" in item else [item["model_version"]]
            if not isinstance(raw_versions, list):
                raise MappingError("model_versions must be a list")
            for i, raw in enumerate(raw_versions):
                self._replay_version(differ, raw, f"{where} model_versions[{i}]", now)
        if "runs" in item:
            recognised = True
            runs = item["runs"]
            if not isinstance(runs, list):
                raise MappingError("runs must be a list")
            models = dict(self.config.watched_experiments)
            for i, raw in enumerate(runs):
                try:
                    run = _Run.from_api(raw, f"runs[{i}]")
                    differ.observe_run(run, models.get(run.experiment_id), now)
                except _ERRORS as exc:
                    differ.out.append(Rejected(f"{where} runs[{i}]", str(exc), _raw(raw)))
        if not recognised:
            raise MappingError("unrecognised record: expected a model-versions/search, registered-models/search "
                               "or runs/search response, or a webhook delivery {headers, body}")
        return differ.out

    @staticmethod
    def _replay_version(differ: _Differ, raw: Any, where: str, now: str) -> None:
        try:
            v = _Version.from_api(raw, where)
        except _ERRORS as exc:
            differ.out.append(Rejected(where, str(exc), _raw(raw)))
            return
        differ.observe_version(v, epoch_ms_to_iso(v.updated) if v.updated else now)

    def _replay_delivery(self, item: dict[str, Any], where: str, snap: dict[str, Any]) -> list[Record]:
        headers, body = item.get("headers"), item.get("body")
        if not isinstance(headers, dict):
            raise MappingError("delivery headers must be an object")
        if isinstance(body, dict):
            if self.config.webhook_secret_env:
                raise MappingError("delivery body is parsed JSON, not the raw string MLflow signed; cannot verify")
            body = json.dumps(body)
        if not isinstance(body, str):
            raise MappingError(f"delivery body must be the raw JSON string, not {type(body).__name__}")
        raw = body.encode("utf-8", errors="surrogatepass")
        h = _headers(headers)
        secret = os.environ.get(self.config.webhook_secret_env) if self.config.webhook_secret_env else None
        if secret:
            problem = webhook_signature_problem(h, raw, secret, max_age_seconds=None)
            if problem:
                raise MappingError(f"delivery refused: {problem}")
        return self._apply_delivery(snap, h, raw, enrich=False, source=where)


__all__ = [
    "MlflowCollector",
    "MlflowConfig",
    "verify_webhook",
    "webhook_signature_problem",
]
