"""Reading fields out of normalized events defensively: a missing or mistyped field is `None`, never an error."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from aisoc.rules.model import normalize_timestamp


def get_field(event: dict[str, Any], name: str) -> Any:
    """Value of a dotted field in a flat (`{"a.b": 1}`) or nested (`{"a": {"b": 1}}`) event."""
    if name in event:
        return event[name]
    node: Any = event
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def text(value: Any) -> str | None:
    """A non-empty string, else None (numbers are not identities)."""
    return value if isinstance(value, str) and value.strip() else None


def number(value: Any) -> float | None:
    """A finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def flag(value: Any) -> bool:
    """True for `True` and the string "true" (any case); everything else is False."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def action(event: dict[str, Any]) -> str | None:
    """`event.action`, lower-cased (Sigma compares it case-insensitively too)."""
    value = text(get_field(event, "event.action"))
    return value.lower() if value else None


def event_time(event: dict[str, Any]) -> float | None:
    """`@timestamp` as seconds since the epoch (UTC), or None when absent or unparsable."""
    return parse_time(get_field(event, "@timestamp"))


def parse_time(value: Any) -> float | None:
    """ISO-8601 text or a datetime -> epoch seconds; None for anything else."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def iso(epoch: float) -> str:
    """Epoch seconds -> the canonical `YYYY-MM-DDTHH:MM:SS.mmmZ` form."""
    return normalize_timestamp(datetime.fromtimestamp(epoch, tz=UTC)) or ""
