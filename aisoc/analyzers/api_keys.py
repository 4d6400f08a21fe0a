"""Per-API-key signals over LLM gateway events (`event.action: llm-request`), and the first-seen enricher.

Every signal here carries the key hash in `aisoc.signal.entity` and `aisoc.api_key.hash`, is
stamped with the end of its window and lives in the `aisoc.inference` dataset. Events without a
usable `aisoc.api_key.hash` or `@timestamp` are ignored.
"""

from __future__ import annotations

import math
from typing import Any

from aisoc.analyzers.base import StateStore, signal_event
from aisoc.analyzers.events import action, event_time, flag, get_field, number, text
from aisoc.analyzers.state import Change, KeyState
from aisoc.analyzers.stats import KMV_K, Ewma, kmv_add, kmv_estimate, kmv_merge
from aisoc.analyzers.windows import BASELINE, ShareWindow, WindowedAnalyzer, stamp

LLM_REQUEST = "llm-request"
HOUR = 3600


def api_key_of(event: dict[str, Any]) -> str | None:
    """The key hash of an llm-request event, else None."""
    if action(event) != LLM_REQUEST:
        return None
    return text(get_field(event, "aisoc.api_key.hash"))


def _signal(name: str, key: str, end: int, window: int, value: float, sample_size: int,
            baseline: float | None = None) -> dict[str, Any]:
    return signal_event(
        name=name, layer="inference", timestamp=stamp(end), entity=key, value=value,
        sample_size=sample_size, window_seconds=window, baseline=baseline,
        fields={"aisoc.api_key.hash": key}, analyzer=name,
    )


class ApiKeyRequestRate(WindowedAnalyzer):
    """api_key_request_rate: count(requests of key k) over a 10-minute sliding window, emitted every minute.

    One signal per key per minute boundary while the key has requests in the last 10 minutes
    (value = sample_size = that count); `min_count` (default 1) can suppress the quiet keys'
    signals. Registry default threshold: >= 300.
    """

    name = "api_key_request_rate"
    layer = "inference"
    stream = frozenset({LLM_REQUEST})
    window = 600
    step = 60

    def __init__(self, state: StateStore, *, min_count: int = 1, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.min_count = min_count

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        key = api_key_of(event)
        return (key, 1) if key else None

    def new(self) -> int:
        return 0

    def add(self, aggregate: int, observation: int) -> int:
        return aggregate + observation

    def merge(self, aggregates: list[int]) -> int:
        return sum(aggregates)

    def close(self, entity: str, aggregate: int, end: int) -> list[dict[str, Any]]:
        if aggregate < self.min_count:
            return []
        return [_signal(self.name, entity, end, self.window, aggregate, aggregate)]


def request_tokens(event: dict[str, Any]) -> float:
    """Input + output tokens of a request (`aisoc.llm.total_tokens` when neither is given; else 0)."""
    parts = [number(get_field(event, f)) for f in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")]
    known = [max(p, 0.0) for p in parts if p is not None]
    if known:
        return sum(known)
    total = number(get_field(event, "aisoc.llm.total_tokens"))
    return max(total, 0.0) if total is not None else 0.0


class ApiKeyTokenZscore(WindowedAnalyzer):
    """api_key_token_zscore: (tokens_in_window - mean) / max(stddev, 0.25 * mean, 1) of the baseline, 1h tumbling.

    Baseline: the key's previous 1h windows as an exponentially weighted mean and standard deviation
    with span 168 windows (7 days of hourly windows; alpha = 2/169, bias-adjusted so a short
    history is a plain weighted mean). Only hours in which the key made requests are baseline
    windows: idle hours are not counted as zeros, because zero-filling makes every periodic job
    (one busy hour a day) look like a 4-5 sigma spike each day. The window is folded into the
    baseline after its z-score is computed. `aisoc.signal.baseline` = the baseline mean,
    `sample_size` = baseline windows behind it (capped at the span). No signal for a key's first
    window (no baseline yet). The spread is floored at a quarter of the mean: a low-volume key with
    a very regular pattern (a cron job sending the same prompt) has a near-zero stddev, and without
    the floor a change of a few hundred tokens scores as dozens of sigmas; with it, z >= 4 needs at
    least twice the usual volume. Registry default threshold: >= 4 with sample_size >= 24.
    """

    name = "api_key_token_zscore"
    relative_floor = 0.25
    layer = "inference"
    stream = frozenset({LLM_REQUEST})
    window = HOUR
    step = HOUR
    span = 168

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        key = api_key_of(event)
        return (key, request_tokens(event)) if key else None

    def new(self) -> float:
        return 0.0

    def add(self, aggregate: float, observation: float) -> float:
        return aggregate + observation

    def close(self, entity: str, aggregate: float, end: int) -> list[dict[str, Any]]:
        key = BASELINE + entity
        baseline = Ewma.from_json(self.state.get(key))
        signals = []
        if baseline.n:
            zscore = (aggregate - baseline.mean) / max(baseline.std, self.relative_floor * baseline.mean, 1.0)
            signals.append(_signal(self.name, entity, end, self.window, zscore, min(baseline.n, self.span),
                                   baseline=baseline.mean))
        baseline.update(aggregate, self.span)
        self.state.set(key, baseline.to_json())
        return signals


class ApiKeyLogprobsShare(ShareWindow):
    """api_key_logprobs_share: count(requests with aisoc.llm.logprobs_requested) / count(requests), 1h tumbling.

    A request without the field counts as not asking for logprobs. sample_size = requests.
    Registry default threshold: >= 0.8 with sample_size >= 50.
    """

    name = "api_key_logprobs_share"
    layer = "inference"
    stream = frozenset({LLM_REQUEST})
    window = HOUR
    step = HOUR

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        key = api_key_of(event)
        return (key, flag(get_field(event, "aisoc.llm.logprobs_requested"))) if key else None

    def close(self, entity: str, aggregate: list[int], end: int) -> list[dict[str, Any]]:
        total, with_logprobs = aggregate
        return [_signal(self.name, entity, end, self.window, with_logprobs / total, total)] if total else []


class ApiKeySkeletonDiversity(WindowedAnalyzer):
    """api_key_skeleton_diversity: distinct(aisoc.llm.prompt.skeleton_hash) / count(requests), 1h tumbling.

    Requests without a skeleton hash are left out of numerator and denominator (sample_size =
    requests with one). Distinct skeletons are counted with a k-minimum-values sketch (k = 4096):
    exact up to 4096 distinct skeletons per key-hour, about 1.6% relative error beyond, so the
    state per key stays bounded. Registry default threshold: <= 0.05 with sample_size >= 200.
    """

    name = "api_key_skeleton_diversity"
    layer = "inference"
    stream = frozenset({LLM_REQUEST})
    window = HOUR
    step = HOUR

    def __init__(self, state: StateStore, *, sketch_size: int = KMV_K, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.sketch_size = sketch_size

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        key = api_key_of(event)
        skeleton = text(get_field(event, "aisoc.llm.prompt.skeleton_hash"))
        return (key, skeleton) if key and skeleton else None

    def new(self) -> dict[str, Any]:
        return {"n": 0, "kmv": []}

    def add(self, aggregate: dict[str, Any], observation: str) -> dict[str, Any]:
        aggregate["n"] += 1
        kmv_add(aggregate["kmv"], observation, self.sketch_size)
        return aggregate

    def merge(self, aggregates: list[dict[str, Any]]) -> dict[str, Any]:
        return {"n": sum(a["n"] for a in aggregates),
                "kmv": kmv_merge((a["kmv"] for a in aggregates), self.sketch_size)}

    def close(self, entity: str, aggregate: dict[str, Any], end: int) -> list[dict[str, Any]]:
        total = aggregate["n"]
        if not total:
            return []
        distinct = min(kmv_estimate(aggregate["kmv"], self.sketch_size), float(total))
        return [_signal(self.name, entity, end, self.window, distinct / total, total)]


class ApiKeyFirstSeen:
    """Enricher: sets `aisoc.api_key.first_seen` and `aisoc.api_key.age_seconds` on every llm-request event.

    first_seen is true on the first event of a key aisoc has ever seen (by event time, persisted);
    age_seconds = floor(@timestamp - first seen), never negative. An event older than the recorded
    first sighting moves the sighting back (so later ages are right) and gets age 0, first_seen
    false. Other events pass through unchanged. Returns a new dict; the input is not modified.

    Learning period: aisoc has no history on the day it is installed, so every key would be "new".
    Keys first seen within `learning_seconds` of the first llm-request aisoc ever saw are established
    keys: first_seen false, and no age_seconds (their real age is unknown). 0 turns this off.
    """

    name = "api_key_first_seen"

    def __init__(self, state: StateStore, *, name: str | None = None, learning_seconds: float = 0) -> None:
        if name:
            self.name = name
        self.state = KeyState(state, self.name)
        self.learning_seconds = float(learning_seconds)

    def enrich(self, event: dict[str, Any]) -> dict[str, Any]:
        key = api_key_of(event)
        when = event_time(event)
        if key is None or when is None:
            return event
        started = self.state.started(when)
        first = self.state.get(key)
        if first is None or when < first:
            self.state.set(key, when)
        sighted = when if first is None else min(first, when)  # a late event can move the sighting back
        if self.learning_seconds and sighted < started + self.learning_seconds:
            return {**event, "aisoc.api_key.first_seen": False}  # an established key: age unknown
        if first is None:
            return {**event, "aisoc.api_key.first_seen": True, "aisoc.api_key.age_seconds": 0}
        age = max(0, math.floor(when - first))
        return {**event, "aisoc.api_key.first_seen": False, "aisoc.api_key.age_seconds": age}

    def state_changes(self) -> list[Change]:
        return self.state.changes()

    def state_saved(self) -> None:
        self.state.saved()

    def checkpoint(self) -> None:
        self.state.checkpoint()
