"""The aisoc part of a rule file: the `aisoc:` block (owner, playbooks, entity, test events)."""

from __future__ import annotations

import copy
import json
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisoc.analyzers.settings import AnalyzerSettings, coerce_settings

LAYERS = ("data", "model", "inference", "supply_chain")
OWNER_TEAMS = ("SOC", "ML Ops", "Data Science", "Risk")
TEST_BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
MAX_REPEAT = 5000
# native record kinds whose mapping is stamped with the time the tool ran (`observed_at`)
OBSERVED_AT_KINDS = frozenset({"modelscan", "hub_model_info", "sbom_diff", "pip_environment", "model_signature"})
# native record kinds written to a temporary directory before mapping (the path is part of the identity)
TEMP_DIR_KINDS = frozenset({"model_signature", "pip_environment", "data_batch"})

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h or 2d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


class RepeatedEvent(BaseModel):
    """`{repeat: N, every: 30s, event: {...}}`: N copies of an event, `every` apart."""

    model_config = ConfigDict(extra="forbid")
    repeat: int = Field(ge=1, le=MAX_REPEAT)
    every: str = "1s"
    event: dict[str, Any]
    vary: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="field -> values cycled through the copies (copy i gets values[i % len(values)])",
    )

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        parse_duration(value)
        return value


class NativeRecord(BaseModel):
    """`{native: litellm, record: {...}, options: {...}}`: a platform record mapped by the real collector."""

    model_config = ConfigDict(extra="forbid")
    native: str
    record: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)

    def events(self, workdir: Path | None = None) -> list[dict[str, Any]]:
        """The mapped events. Records of tools that stamp the time of observation (scans, signature checks,
        SBOM diffs) get a fixed one unless they give their own, so the same case always maps to the same events.
        Files a record needs (batches) are written under `workdir` and kept there when one is given."""
        from aisoc.collectors.base import event_id
        from aisoc.collectors.native import map_native

        record = self.record
        if self.native in OBSERVED_AT_KINDS and "observed_at" not in record:
            record = {**record, "observed_at": _iso(TEST_BASE_TIME)}
        events = [flatten_event(e) for e in map_native(self.native, record, self.options, workdir)]
        if self.native in TEMP_DIR_KINDS:  # their collector identity includes a temporary directory
            canonical = json.dumps([record, self.options], sort_keys=True, default=str)
            for index, event in enumerate(events):
                event["event.id"] = event_id(f"native:{self.native}", canonical, index)
        return events


class RepeatedNative(BaseModel):
    """`{repeat: N, every: 30s, native: litellm, record: {...}, vary: {...}}`: N copies of a platform record.

    Copy i is the record with each `vary` path (dotted, list indexes as numbers:
    `metadata.user_api_key_hash`, `events.0.data.inputs.0.data`) set to values[i % len(values)], mapped
    by the real collector; its events are then moved `every` x i later than the record's own time
    and get an id unique to the copy. Identical copies are mapped once.
    """

    model_config = ConfigDict(extra="forbid")
    repeat: int = Field(ge=1, le=MAX_REPEAT)
    every: str = "1s"
    native: str
    record: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)
    vary: dict[str, list[Any]] = Field(default_factory=dict, description="record path -> values cycled through")

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("vary")
    @classmethod
    def _values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [path for path, values in value.items() if not values]
        if empty:
            raise ValueError(f"vary path {empty[0]!r} has no values")
        return value

    def events(self, namespace: str, workdir: Path | None = None) -> list[dict[str, Any]]:
        from aisoc.collectors.base import event_id

        step = parse_duration(self.every)
        mapped: dict[str, list[dict[str, Any]]] = {}
        out: list[dict[str, Any]] = []
        for i in range(self.repeat):
            record = copy.deepcopy(self.record)
            for path, values in self.vary.items():
                _set_path(record, path, values[i % len(values)])
            key = json.dumps(record, sort_keys=True, default=str)
            if key not in mapped:
                mapped[key] = NativeRecord(native=self.native, record=record, options=self.options).events(workdir)
            for event in mapped[key]:
                when = _parse_time(event["@timestamp"])
                assert when is not None  # every mapped event has a time
                out.append({**event, "@timestamp": _iso(when + step * i),
                            "event.id": event_id(namespace, event["event.id"], i)})
        return out


def _set_path(record: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in nested dicts/lists, creating dicts on the way; `a.0.b` indexes a list."""
    parts = path.split(".")
    node: Any = record
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_index(node, part, path)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            break
    if isinstance(node, list):
        node[_index(node, parts[-1], path)] = value
    elif isinstance(node, dict):
        node[parts[-1]] = value
    else:
        raise ValueError(f"vary path {path!r} goes through a value that is neither a mapping nor a list")


def _index(node: list[Any], part: str, path: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ValueError(f"vary path {path!r}: {part!r} is not an index of a {len(node)}-item list")
    return int(part)


class TestCase(BaseModel):
    """One scenario of a rule's tests. With `analyzers`, the events run through aisoc's analyzers first (fresh
    state, built from the given settings as `aisoc serve` builds them) and the rule sees events and signals."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    expect: Literal["match", "no_match"]
    analyzers: AnalyzerSettings | None = None
    events: list[RepeatedNative | RepeatedEvent | NativeRecord | dict[str, Any]] = Field(min_length=1)

    _settings = field_validator("analyzers", mode="before")(coerce_settings)

    @field_validator("events", mode="before")
    @classmethod
    def _repeated(cls, value: Any) -> Any:
        """A mapping with `repeat` is a repeated event (or record, with `native`) and one with `native` a
        NativeRecord, never a literal event."""
        if isinstance(value, list):
            return [_item(v) if isinstance(v, dict) else v for v in value]
        return value

    def expanded_events(self, rule_key: str, case_index: int) -> list[dict[str, Any]]:
        """The case's events, flattened to dotted keys, with @timestamp and event.id filled in (and the
        analyzers' signals, when the case asks for analyzers)."""
        if self.analyzers is None or not self.analyzers.enabled:
            return self._expand(rule_key, case_index, None)
        from aisoc.detect.analyzed import analyze_case

        with tempfile.TemporaryDirectory(prefix="aisoc-case-") as workdir:
            events = self._expand(rule_key, case_index, Path(workdir))
            return analyze_case(events, self.analyzers, f"test:{rule_key}:{case_index}")

    def _expand(self, rule_key: str, case_index: int, workdir: Path | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        clock = TEST_BASE_TIME
        for position, item in enumerate(self.events):
            if isinstance(item, RepeatedEvent):
                step = parse_duration(item.every)
                base = flatten_event(item.event)
                start = _parse_time(base.get("@timestamp")) or clock
                for i in range(item.repeat):
                    event = dict(base)
                    for field, values in item.vary.items():
                        event[field] = values[i % len(values)]
                    event["@timestamp"] = _iso(start + step * i)
                    out.append(event)
                clock = start + step * item.repeat
            elif isinstance(item, NativeRecord | RepeatedNative):
                # the collector sets @timestamp and event.id from the record
                mapped = (item.events(workdir) if isinstance(item, NativeRecord)
                          else item.events(f"test:{rule_key}:{case_index}:{position}", workdir))
                out.extend(mapped)
                if mapped:
                    clock = max(_parse_time(e["@timestamp"]) or clock for e in mapped) + timedelta(seconds=1)
            else:
                event = flatten_event(item)
                when = _parse_time(event.get("@timestamp")) or clock
                event["@timestamp"] = _iso(when)
                clock = when + timedelta(seconds=1)
                out.append(event)
        for index, event in enumerate(out):
            event.setdefault("event.id", f"test:{rule_key}:{case_index}:{index}")
        return out


def _item(value: dict[str, Any]) -> Any:
    if "repeat" in value:
        return RepeatedNative.model_validate(value) if "native" in value else RepeatedEvent.model_validate(value)
    return NativeRecord.model_validate(value) if "native" in value else value


class RuleMeta(BaseModel):
    """The `aisoc:` custom attribute of a rule."""

    model_config = ConfigDict(extra="forbid")
    owner: Literal["SOC", "ML Ops", "Data Science", "Risk"] = "SOC"
    playbooks: list[str] = Field(default_factory=list)
    entity: list[str] = Field(
        default_factory=list, description="fields that identify who or what an alert is about"
    )
    tests: list[TestCase] = Field(default_factory=list)


def flatten_event(event: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"event": {"action": "x"}}` -> `{"event.action": "x"}`; dotted keys pass through."""
    flat: dict[str, Any] = {}
    for key, value in event.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_event(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    when = when.astimezone(UTC)
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}."
            f"{when.microsecond // 1000:03d}Z")


_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def normalize_timestamp(value: Any) -> str | None:
    """Any ISO-8601 time -> `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), the form the SQLite engine compares."""
    if isinstance(value, str) and _CANONICAL.fullmatch(value):  # already canonical (most events, every signal)
        datetime.fromisoformat(value[:-1])  # still refuse an impossible date such as 2026-02-30
        return value
    parsed = _parse_time(value)
    return None if parsed is None else _iso(parsed)
