"""Ground truth of a simulation: what the red team did and which benign edge cases were staged.

It is written to `ground_truth.json`, apart from the native telemetry, and is read only to *score*
a detection run: an attack counts as detected when an alert's triggering events belong to it.

An event belongs to an activity when its `@timestamp` lies in `[start, end + grace_seconds]` and at
least one of the activity's matchers matches it: a matcher is a set of `field: value` pairs that
must all be equal (case-insensitively; a list-valued field matches when any of its values does).
The grace period covers the analyzers' windows: a signal is stamped with the end of the window that
saw the activity (10 minutes to a day after the last attack event).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

TRUTH_FORMAT = 1


@dataclass
class Activity:
    """One injected attack or one staged benign edge case."""

    id: str
    kind: Literal["attack", "benign"]
    name: str
    description: str
    start: str
    end: str
    matchers: list[dict[str, str]]
    layer: str
    grace_seconds: int = 3900
    atlas: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    @property
    def start_epoch(self) -> float:
        return _epoch(self.start)

    @property
    def end_epoch(self) -> float:
        return _epoch(self.end)

    def owns(self, event: dict[str, Any]) -> bool:
        """Whether the event (flat dotted keys) belongs to this activity."""
        when = _epoch(event.get("@timestamp"))
        if when != when or not self.start_epoch <= when <= self.end_epoch + self.grace_seconds:
            return False
        return any(all(_matches(event.get(k), v) for k, v in matcher.items()) for matcher in self.matchers)


@dataclass
class GroundTruth:
    """The attack manifest and the benign edge cases of one simulation."""

    seed: int
    scale: str
    start: str
    end: str
    activities: list[Activity]

    @property
    def attacks(self) -> list[Activity]:
        return [a for a in self.activities if a.kind == "attack"]

    @property
    def benign(self) -> list[Activity]:
        return [a for a in self.activities if a.kind == "benign"]

    def to_json(self) -> dict[str, Any]:
        return {"format": TRUTH_FORMAT, "seed": self.seed, "scale": self.scale, "start": self.start,
                "end": self.end, "activities": [asdict(a) for a in self.activities]}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> GroundTruth:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != TRUTH_FORMAT:
            raise ValueError(f"{path}: ground truth format {data.get('format')!r} is not {TRUTH_FORMAT}")
        return cls(seed=data["seed"], scale=data["scale"], start=data["start"], end=data["end"],
                   activities=[Activity(**a) for a in data["activities"]])


def _epoch(value: Any) -> float:
    if not isinstance(value, str):
        return float("nan")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return float("nan")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _matches(actual: Any, expected: str) -> bool:
    if isinstance(actual, list):
        return any(_matches(a, expected) for a in actual)
    if actual is None:
        return False
    if isinstance(actual, bool):
        actual = "true" if actual else "false"
    return str(actual).lower() == str(expected).lower()
