"""The aisoc part of a rule file: the `aisoc:` block (owner, playbooks, entity, test events)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    def events(self) -> list[dict[str, Any]]:
        """The mapped events. Records of tools that stamp the time of observation (scans, signature checks,
        SBOM diffs) get a fixed one unless they give their own, so the same case always maps to the same events."""
        import json

        from aisoc.collectors.base import event_id
        from aisoc.collectors.native import map_native

        record = self.record
        if self.native in OBSERVED_AT_KINDS and "observed_at" not in record:
            record = {**record, "observed_at": _iso(TEST_BASE_TIME)}
        events = [flatten_event(e) for e in map_native(self.native, record, self.options)]
        if self.native in TEMP_DIR_KINDS:  # their collector identity includes a temporary directory
            canonical = json.dumps([record, self.options], sort_keys=True, default=str)
            for index, event in enumerate(events):
                event["event.id"] = event_id(f"native:{self.native}", canonical, index)
        return events


class TestCase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    expect: Literal["match", "no_match"]
    events: list[RepeatedEvent | NativeRecord | dict[str, Any]] = Field(min_length=1)

    @field_validator("events", mode="before")
    @classmethod
    def _repeated(cls, value: Any) -> Any:
        """A mapping with `repeat` is a RepeatedEvent and one with `native` a NativeRecord, never a literal event."""
        if isinstance(value, list):
            return [RepeatedEvent.model_validate(v) if isinstance(v, dict) and "repeat" in v
                    else NativeRecord.model_validate(v) if isinstance(v, dict) and "native" in v
                    else v for v in value]
        return value

    def expanded_events(self, rule_key: str, case_index: int) -> list[dict[str, Any]]:
        """The case's events, flattened to dotted keys, with @timestamp and event.id filled in."""
        out: list[dict[str, Any]] = []
        clock = TEST_BASE_TIME
        for item in self.events:
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
            elif isinstance(item, NativeRecord):
                mapped = item.events()  # the collector sets @timestamp and event.id from the record
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
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def normalize_timestamp(value: Any) -> str | None:
    """Any ISO-8601 time -> `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), the form the SQLite engine compares."""
    parsed = _parse_time(value)
    return None if parsed is None else _iso(parsed)
