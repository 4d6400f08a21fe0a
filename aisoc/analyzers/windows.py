"""Event-time windows per entity, persisted, closed by the watermark.

A `WindowedAnalyzer` reads one stream of events (those whose `event.action` is in `stream`) and
keeps, per entity (API key, client, dataset, identity), one aggregate per `step`-second bucket
aligned to the epoch. A window is `[end - window, end)` for every `end` on the step grid; it closes
when the watermark reaches `end`. The watermark is the latest `@timestamp` in the analyzer's stream
minus `allowed_lateness`; a stream event moves it even when it lacks the fields the signal counts,
and other sources' events never do (one lagging source cannot close another's windows). Then
`close()` turns the merged buckets of each entity into signal events stamped `end`.
`window == step` gives tumbling windows; `step < window` gives sliding windows emitted every step
(api_key_request_rate: 10m every 1m).

Time is event time only: replaying the same events gives the same windows, the same signals and
(because `signal_event` derives ids from name, entity and window end) the same signal ids. An
event for a window that has already closed is late: it is counted in the state (`late`) and
dropped, so a signal once emitted is never contradicted. `advance(ts)` closes windows without an
event (a service tick when a source goes quiet).

State keys: `_meta` (watermark, last closed boundary, late count) and `w:<entity>` (open buckets,
`{"<bucket start>": aggregate}`); subclasses add their own keys (baselines under `b:<entity>`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

from aisoc.analyzers.base import StateStore
from aisoc.analyzers.events import action, event_time, iso, parse_time
from aisoc.analyzers.state import Change, KeyState

META = "_meta"
OPEN = "w:"
BASELINE = "b:"


class WindowedAnalyzer(ABC):
    """Base of the windowed analyzers; subclasses define the entity, the aggregate and the signal."""

    name: str
    layer: str
    window: int
    step: int
    stream: frozenset[str]

    def __init__(self, state: StateStore, *, name: str | None = None, allowed_lateness: float = 0) -> None:
        if name:
            self.name = name
        if self.window % self.step:
            raise ValueError(f"{type(self).__name__}: window must be a multiple of step")
        if self.window != self.step and type(self).merge is WindowedAnalyzer.merge:
            raise TypeError(f"{type(self).__name__}: a sliding window (step < window) must define merge()")
        self.allowed_lateness = float(allowed_lateness)
        self.state = KeyState(state, self.name)
        meta = self.state.get(META) or {}
        self._watermark: float | None = meta.get("watermark")
        self._closed: int | None = meta.get("closed")
        self._late: int = int(meta.get("late", 0))

    # ---- what a subclass defines ---------------------------------------------------------------

    @abstractmethod
    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        """(entity, observation) for an event this analyzer counts, else None."""

    @abstractmethod
    def new(self) -> Any:
        """An empty aggregate for one bucket."""

    @abstractmethod
    def add(self, aggregate: Any, observation: Any) -> Any:
        """Fold one observation into a bucket's aggregate; returns the aggregate."""

    def merge(self, aggregates: list[Any]) -> Any:
        """Combine the buckets of one window. Tumbling windows (step == window) have exactly one bucket;
        sliding ones must override this (checked when the analyzer is made)."""
        return aggregates[0]

    @abstractmethod
    def close(self, entity: str, aggregate: Any, end: int) -> list[dict[str, Any]]:
        """Signals for one entity's window ending at `end` (epoch seconds)."""

    # ---- the Analyzer protocol -----------------------------------------------------------------

    def observe(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Close the windows the event's time passes, then count the event; returns closed-window signals."""
        when = event_time(event)
        if when is None or action(event) not in self.stream:
            return []
        signals = self._advance_to(when)
        selected = self.select(event)
        if selected is None:
            return signals
        bucket = math.floor(when / self.step) * self.step
        if self._closed is not None and bucket + self.step <= self._closed:
            self._late += 1
            self._save_meta()
            return signals
        entity, observation = selected
        key = OPEN + entity
        buckets = self.state.get(key)
        if buckets is None:
            buckets = {}
            self.state.set(key, buckets)
        slot = str(bucket)
        buckets[slot] = self.add(buckets[slot] if slot in buckets else self.new(), observation)
        self.state.touch(key)
        return signals

    def advance(self, timestamp: Any) -> list[dict[str, Any]]:
        """Move the watermark to `timestamp` (ISO text, datetime or epoch seconds) and close windows."""
        when = float(timestamp) if isinstance(timestamp, int | float) else parse_time(timestamp)
        return [] if when is None else self._advance_to(when)

    @property
    def late_events(self) -> int:
        return self._late

    def state_changes(self) -> list[Change]:
        return self.state.changes()

    def state_saved(self) -> None:
        self.state.saved()

    def checkpoint(self) -> None:
        self.state.checkpoint()

    # ---- window bookkeeping --------------------------------------------------------------------

    def _save_meta(self) -> None:
        self.state.set(META, {"watermark": self._watermark, "closed": self._closed, "late": self._late})

    def _advance_to(self, when: float) -> list[dict[str, Any]]:
        if self._watermark is not None and when <= self._watermark:
            return []
        self._watermark = when
        limit = math.floor((when - self.allowed_lateness) / self.step) * self.step
        signals: list[dict[str, Any]] = []
        if self._closed is None or limit > self._closed:
            signals = self._close_until(limit)
            self._closed = limit
        self._save_meta()
        return signals

    def _close_until(self, limit: int) -> list[dict[str, Any]]:
        """Close every window ending in (last closed, limit] that holds data, in time order."""
        open_windows = dict(self.state.items(OPEN))
        if not open_windows:
            return []
        spans = self.window // self.step
        ends: set[int] = set()
        for buckets in open_windows.values():
            for slot in buckets:
                start = int(slot)
                ends.update(start + self.step * i for i in range(1, spans + 1))
        lower = self._closed if self._closed is not None else -math.inf
        signals: list[dict[str, Any]] = []
        for end in sorted(e for e in ends if lower < e <= limit):
            for key, buckets in open_windows.items():
                inside = sorted((int(s), agg) for s, agg in buckets.items() if end - self.window <= int(s) < end)
                if inside:
                    merged = self.merge([agg for _, agg in inside]) if len(inside) > 1 else inside[0][1]
                    signals.extend(self.close(key[len(OPEN):], merged, end))
                expired = [s for s in buckets if int(s) <= end - self.window]
                if expired:
                    for slot in expired:
                        del buckets[slot]
                    self.state.touch(key)
        for key, buckets in open_windows.items():
            if not buckets:
                self.state.delete(key)
        return signals


class ShareWindow(WindowedAnalyzer):
    """A window whose observations are yes/no and whose signal is the share of yes: the aggregate is
    [observations, yes]."""

    def new(self) -> list[int]:
        return [0, 0]

    def add(self, aggregate: list[int], observation: bool) -> list[int]:
        aggregate[0] += 1
        aggregate[1] += int(observation)
        return aggregate


def stamp(end: int) -> str:
    """The signal timestamp of a window ending at `end`."""
    return iso(end)
