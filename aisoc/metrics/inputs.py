"""What `aisoc metrics` reads: alerts, response history, incidents, integrity events, rule states.

File formats
------------
* **Alerts** (NDJSON, one ECS alert per line, nested or dotted keys): ``event.id`` (the alert id the
  response history refers to), ``rule.id``, ``rule.name``, ``aisoc.alert.first_event`` (first
  triggering event = first adversarial signal), ``event.created`` (when detection raised the
  alert), optionally ``aisoc.alert.event_ids``, ``aisoc.alert.entity``, ``aisoc.owner.team``.
  Lines whose ``event.kind`` is set to something other than ``alert`` are skipped and reported.
* **Response history** (JSONL, a playbook audit log): ``{"alert_id", "playbook", "action", "at",
  "result": "applied|failed|rolled_back|planned", "approved_by", ...}``; ``started``/``finished``
  may replace or accompany ``at``. Other keys are kept and ignored.
* **Incidents** (YAML or JSON list, or ``{incidents: [...]}``): ``id``, ``opened``,
  ``detected_by: soc|business``, ``alert_ids``, ``contained_at``.
* **Integrity events** (NDJSON ECS events): ``model-signature-verified``,
  ``model-artifact-verified`` and ``data-batch-landed`` (see :mod:`aisoc.metrics.compute`).

Times are ISO 8601 (``Z`` or an offset; no offset means UTC) or epoch milliseconds. A line that
cannot be used never stops the report and is never silently dropped: it becomes a
:class:`DataIssue` naming file and line. A file that cannot be read at all raises
:class:`MetricsInputError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aisoc.findings import Finding
from aisoc.rules.model import flatten_event
from aisoc.safeyaml import YamlLoadError, line_of, load_file

__all__ = [
    "CONTAINMENT_TYPES",
    "Alert",
    "DataIssue",
    "Incident",
    "MetricsInputError",
    "ResponseRecord",
    "RuleState",
    "containment_type",
    "load_alerts",
    "load_events",
    "load_incidents",
    "load_responses",
    "parse_time",
    "rule_states",
]

MAX_INPUT_BYTES = 256 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
MAX_INCIDENT_BYTES = 8 * 1024 * 1024


class MetricsInputError(ValueError):
    """An input file cannot be read at all (missing, too large, not the expected format)."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, fix: str = "") -> None:
        self.path, self.line, self.message, self.fix = str(path), line, message, fix
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}" + (f" ({fix})" if fix else ""))


@dataclass(frozen=True)
class DataIssue:
    """A record the metrics could not use, or used with a caveat; says where and why."""

    source: str
    message: str
    line: int | None = None
    kind: str = "data"

    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "kind": self.kind, "message": self.message}


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 text or epoch milliseconds -> aware UTC datetime; None when absent or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _first(value: Any) -> Any:
    """ECS fields may hold a list; metrics want the first value."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _strs(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if v is not None and str(v) != ""]


# --------------------------------------------------------------------- NDJSON


def _read_lines(path: Path) -> Iterable[tuple[int, str]]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MetricsInputError(path, f"cannot read file: {exc.strerror or exc}",
                                fix="check the path") from None
    if size > MAX_INPUT_BYTES:
        raise MetricsInputError(path, f"file is {size // (1024 * 1024)} MiB, over the "
                                f"{MAX_INPUT_BYTES // (1024 * 1024)} MiB limit", fix="narrow the export")
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        yield from enumerate(handle, start=1)


def _ndjson(path: Path, issues: list[DataIssue]) -> list[tuple[int, dict[str, Any]]]:
    """Objects of an NDJSON file (a JSON array file works too), flattened to dotted keys."""
    out: list[tuple[int, dict[str, Any]]] = []
    src = str(path)
    lines = list(_read_lines(path))
    head = next((text.lstrip() for _, text in lines if text.strip()), "")
    if head.startswith("["):
        try:
            data = json.loads("".join(text for _, text in lines))
        except json.JSONDecodeError as exc:
            raise MetricsInputError(path, f"not valid JSON: {exc.msg}", exc.lineno,
                                    fix="write one JSON object per line (NDJSON) or one JSON array") from None
        for index, item in enumerate(data if isinstance(data, list) else []):
            if isinstance(item, dict):
                out.append((index + 1, flatten_event(item)))
            else:
                issues.append(DataIssue(src, f"item {index + 1} is not a JSON object; skipped", None, "malformed"))
        return out
    for number, text in lines:
        text = text.strip()
        if not text:
            continue
        if len(text) > MAX_LINE_BYTES:
            issues.append(DataIssue(src, "line longer than 1 MiB; skipped", number, "malformed"))
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            issues.append(DataIssue(src, f"not valid JSON ({exc.msg}); skipped", number, "malformed"))
            continue
        if not isinstance(item, dict):
            issues.append(DataIssue(src, "not a JSON object; skipped", number, "malformed"))
            continue
        out.append((number, flatten_event(item)))
    return out


# ---------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    """The parts of an ECS alert the metrics use."""

    alert_id: str | None
    rule_id: str
    rule_name: str
    first_event: datetime | None
    created: datetime | None
    event_ids: tuple[str, ...] = ()
    entity: str = ""
    owner_team: str | None = None
    source: str = "alerts"
    line: int | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any], source: str = "alerts", line: int | None = None) -> Alert:
        """Build from an ECS alert document (nested or flat keys)."""
        flat = flatten_event(doc)
        rule_id = str(_first(flat.get("rule.id")) or _first(flat.get("rule.uuid")) or "unknown")
        alert_id = _first(flat.get("event.id"))
        return cls(
            alert_id=None if alert_id in (None, "") else str(alert_id),
            rule_id=rule_id,
            rule_name=str(_first(flat.get("rule.name")) or rule_id),
            first_event=parse_time(_first(flat.get("aisoc.alert.first_event"))),
            created=parse_time(_first(flat.get("event.created"))),
            event_ids=tuple(_strs(flat.get("aisoc.alert.event_ids"))),
            entity=str(_first(flat.get("aisoc.alert.entity")) or ""),
            owner_team=None if flat.get("aisoc.owner.team") is None else str(_first(flat.get("aisoc.owner.team"))),
            source=source,
            line=line,
        )


def load_alerts(path: Path | str, issues: list[DataIssue]) -> list[Alert]:
    """Alerts from an NDJSON file. The same alert id twice (re-written by a later detection run)
    counts once, with the earliest ``event.created``."""
    path = Path(path)
    src = str(path)
    by_id: dict[str, Alert] = {}
    out: list[Alert] = []
    for number, flat in _ndjson(path, issues):
        kind = _first(flat.get("event.kind"))
        if kind not in (None, "alert"):
            issues.append(DataIssue(src, f"event.kind is {kind!r}, not 'alert'; skipped", number, "not-alert"))
            continue
        alert = Alert.from_doc(flat, src, number)
        if alert.alert_id is None:
            out.append(alert)
            continue
        known = by_id.get(alert.alert_id)
        if known is None:
            by_id[alert.alert_id] = alert
            out.append(alert)
        elif alert.created and (known.created is None or alert.created < known.created):
            out[out.index(known)] = by_id[alert.alert_id] = alert
    return out


def load_events(path: Path | str, issues: list[DataIssue]) -> list[tuple[int, dict[str, Any]]]:
    """ECS events (NDJSON) as (line, flat event) pairs."""
    return _ndjson(Path(path), issues)


# ------------------------------------------------------------- response history

# Containment types by keyword in the action (or, failing that, the playbook) name. Snapshots,
# notifications and re-attestation are not containment: they do not stop the attack.
CONTAINMENT_TYPES: dict[str, tuple[str, ...]] = {
    "throttle": ("throttle", "rate-limit", "rate_limit", "ratelimit", "block"),
    "rollback": ("rollback", "roll-back", "roll_back", "revert", "promote-canary", "promote_canary"),
    "quarantine": ("quarantine", "freeze", "isolate", "pause-ingestion", "pause_ingestion"),
    "revoke": ("rotate", "revoke", "invalidate", "disable-key", "disable_key"),
}


def containment_type(action: str | None, playbook: str | None = None) -> str | None:
    """``throttle`` / ``rollback`` / ``quarantine`` / ``revoke``, or None when not containment."""
    for name in (action, playbook):
        text = (name or "").lower()
        for kind, words in CONTAINMENT_TYPES.items():
            if any(word in text for word in words):
                return kind
    return None


class ResponseRecord(BaseModel):
    """One line of a playbook audit log."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    alert_id: str
    playbook: str | None = None
    action: str
    result: Literal["applied", "failed", "rolled_back", "planned"]
    at: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    approved_by: str | None = None
    action_type: str | None = Field(None, description="explicit containment type; else derived from the names")

    @field_validator("result", mode="before")
    @classmethod
    def _result(cls, value: Any) -> Any:
        return value.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(value, str) else value

    @field_validator("at", "started", "finished", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        parsed = parse_time(value)
        if parsed is None:
            raise ValueError(f"{value!r} is not an ISO 8601 time or epoch milliseconds")
        return parsed

    @field_validator("alert_id", mode="before")
    @classmethod
    def _alert_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _has_time(self) -> ResponseRecord:
        if self.at is None and self.started is None and self.finished is None:
            raise ValueError("no time: give 'at' (or 'started'/'finished')")
        for name in ("at", "started", "finished"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=UTC))
        return self

    @property
    def when(self) -> datetime:
        """When the action took effect: ``finished``, else ``at``, else ``started``."""
        return self.finished or self.at or self.started  # type: ignore[return-value]

    @property
    def containment(self) -> str | None:
        """The containment type of the action, None for non-containment actions."""
        if self.action_type:
            return self.action_type.strip().lower() or None
        return containment_type(self.action, self.playbook)


def _model_issue(src: str, number: int, exc: ValidationError) -> DataIssue:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return DataIssue(src, "; ".join(parts) + "; skipped", number, "malformed")


def load_responses(path: Path | str, issues: list[DataIssue]) -> list[ResponseRecord]:
    """The response/audit history (JSONL)."""
    path = Path(path)
    src = str(path)
    out: list[ResponseRecord] = []
    for number, flat in _ndjson(path, issues):
        try:
            out.append(ResponseRecord.model_validate(flat))
        except ValidationError as exc:
            issues.append(_model_issue(src, number, exc))
    return out


# ------------------------------------------------------------------- incidents


class Incident(BaseModel):
    """An AI incident and who noticed it first."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    id: str
    opened: datetime
    detected_by: Literal["soc", "business"]
    alert_ids: list[str] = Field(default_factory=list)
    contained_at: datetime | None = None
    title: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("detected_by", mode="before")
    @classmethod
    def _by(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("opened", "contained_at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        parsed = parse_time(value)
        if parsed is None:
            raise ValueError(f"{value!r} is not an ISO 8601 time")
        return parsed

    @field_validator("opened", "contained_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def load_incidents(path: Path | str, issues: list[DataIssue]) -> list[Incident]:
    """Incident records from a YAML or JSON file (a list, or a mapping with ``incidents:``)."""
    path = Path(path)
    src = str(path)
    try:
        docs = [d for d in load_file(path, MAX_INCIDENT_BYTES) if d is not None]
    except YamlLoadError as exc:
        raise MetricsInputError(src, exc.message, exc.line, exc.fix) from None
    text = path.read_text(encoding="utf-8")
    data: Any = docs[0] if len(docs) == 1 else ([] if not docs else None)
    if isinstance(data, dict) and "incidents" in data:
        data = data["incidents"]
    if not isinstance(data, list):
        raise MetricsInputError(
            src, "expected a list of incidents", 1,
            fix="write '- {id: INC-1, opened: ..., detected_by: soc, alert_ids: [...]}' per incident")
    out: list[Incident] = []
    start = 1
    for index, item in enumerate(data):
        ident = item.get("id") if isinstance(item, dict) else None
        line = line_of(text, str(ident), start) if ident is not None else None
        start = line or start
        if not isinstance(item, dict):
            issues.append(DataIssue(src, f"incident {index + 1} is not a mapping; skipped", line, "malformed"))
            continue
        try:
            out.append(Incident.model_validate(item))
        except ValidationError as exc:
            issue = _model_issue(src, line or 0, exc)
            issues.append(DataIssue(src, f"incident {ident or index + 1}: {issue.message}", line, "malformed"))
    return out


# ----------------------------------------------------------------------- rules


@dataclass(frozen=True)
class RuleState:
    """What coverage needs to know about one rule: its ATLAS tags, and whether it counts."""

    rule_id: str
    title: str
    atlas_tags: tuple[str, ...]
    tests_passed: bool
    active: bool = True  # Sigma status not deprecated/unsupported

    @property
    def counts(self) -> bool:
        """Active and its test events pass."""
        return self.active and self.tests_passed


INACTIVE_STATUSES = frozenset({"deprecated", "unsupported"})


def rule_states(paths: Iterable[Path]) -> tuple[list[RuleState], list[Finding]]:
    """Load a rule pack and run each rule's test events on the embedded engine."""
    from aisoc.detect.ruletest import test_rule_sqlite
    from aisoc.rules.loader import load_rules

    rules, findings = load_rules(paths)
    out = []
    for rule in rules:
        status = str(rule.primary.status or "").lower().rsplit(".", 1)[-1]
        out.append(RuleState(rule.rule_id, rule.title, tuple(rule.atlas_tags), test_rule_sqlite(rule).passed,
                             status not in INACTIVE_STATUSES))
    return out, findings
