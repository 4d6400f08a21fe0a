"""The analyzer chain: enrich each event, let every analyzer observe it, checkpoint state per batch.

    chain = AnalyzerChain(default_analyzers(state), state)   # or AnalyzerChain(None, state)
    out = chain.process(events)      # enriched events, each followed by the signals it closed

Order: enrichers run first, in the order given, each on the previous one's output (the first-seen
enricher adds `aisoc.api_key.age_seconds`, so later enrichers and every analyzer see it); then
every analyzer observes the enriched event. Signals are not fed back into the analyzers.

State: analyzers keep their state in memory; `process` and `advance` end with one SQLite
transaction that writes every analyzer's changes (see `aisoc.analyzers.state`; each change goes to
the store its analyzer was built on, normally the chain's `state`). Hand the chain
the events of one spool batch and acknowledge the batch after `process` returns: a crash before
that redelivers the batch against the previous checkpoint and yields the same signals.

Where the events are stored after the chain has seen them (the receiver spools them), use
`run` (no checkpoint), store them, then `commit`; if storing fails, `discard` rebuilds the
analyzers from the last checkpoint, so a batch the client must resend is not counted twice.

An analyzer or enricher that raises on an event does not stop the chain: the event passes on
(un-enriched, if an enricher failed), the failure is recorded in `errors` for the caller to
dead-letter or log, and the other analyzers still see the event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from aisoc.analyzers.api_keys import (
    ApiKeyFirstSeen,
    ApiKeyLogprobsShare,
    ApiKeyRequestRate,
    ApiKeySkeletonDiversity,
    ApiKeyTokenZscore,
)
from aisoc.analyzers.base import Analyzer, StateStore
from aisoc.analyzers.data import DatasetProfile, IngestionAccessRate, SourceMixShift, TrainingBatchAnalyzer
from aisoc.analyzers.inference import CanaryDisagreementRate, ClientConfidenceStddev, ClientNearBoundaryShare
from aisoc.analyzers.state import Persistent, checkpoint

MAX_ERRORS = 1000


@runtime_checkable
class Enricher(Protocol):
    """Adds fields to an event; returns the (new) enriched event."""

    name: str

    def enrich(self, event: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AnalyzerError:
    """An analyzer that failed on an event."""

    analyzer: str
    event_id: str | None
    reason: str


class AnalyzerChain:
    """Enrichers, then analyzers, over a stream of events; returns the events plus the signals."""

    def __init__(self, analyzers: Iterable[Analyzer | Enricher] | None, state: StateStore,
                 factory: Callable[[], Iterable[Analyzer | Enricher]] | None = None) -> None:
        """`factory` builds the analyzers afresh from `state` (needed by `discard`)."""
        self.state = state
        self.factory = factory
        self._use(list(analyzers) if analyzers is not None else
                  list(factory()) if factory is not None else default_analyzers(state))
        self.errors: list[AnalyzerError] = []
        self.error_count = 0

    def _use(self, parts: list[Analyzer | Enricher]) -> None:
        self.enrichers: list[Enricher] = [p for p in parts if callable(getattr(p, "enrich", None))]
        self.analyzers: list[Analyzer] = [p for p in parts if not callable(getattr(p, "enrich", None))]
        self._persistent: list[Persistent] = [p for p in parts if callable(getattr(p, "state_changes", None))]

    def process(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each event (enriched) followed by the signals it triggered; state is checkpointed at the end."""
        out = self.run(events)
        self.checkpoint()
        return out

    def run(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Like `process`, without the checkpoint: follow with `commit` or `discard`."""
        out: list[dict[str, Any]] = []
        for event in events:
            enriched = self.enrich(event)
            out.append(enriched)
            out.extend(self.observe(enriched))
        return out

    def commit(self) -> None:
        self.checkpoint()

    def discard(self) -> None:
        """Forget everything since the last checkpoint: the analyzers are rebuilt from the stored state."""
        if self.factory is None:
            raise RuntimeError("discard needs the chain to be built with a factory")
        self._use(list(self.factory()))

    def enrich(self, event: dict[str, Any]) -> dict[str, Any]:
        for enricher in self.enrichers:
            try:
                event = enricher.enrich(event)
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the stream
                self._failed(enricher.name, event, exc)
        return event

    def observe(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        signals: list[dict[str, Any]] = []
        if not isinstance(event, dict):
            return signals
        for analyzer in self.analyzers:
            try:
                signals.extend(analyzer.observe(event))
            except Exception as exc:  # noqa: BLE001
                self._failed(analyzer.name, event, exc)
        return signals

    def advance(self, timestamp: Any) -> list[dict[str, Any]]:
        """Close the windows that end by `timestamp` in every windowed analyzer (a tick when sources go quiet)."""
        signals: list[dict[str, Any]] = []
        for analyzer in self.analyzers:
            advance: Callable[[Any], list[dict[str, Any]]] | None = getattr(analyzer, "advance", None)
            if advance is not None:
                signals.extend(advance(timestamp))
        self.checkpoint()
        return signals

    def checkpoint(self) -> None:
        checkpoint(self._persistent)

    def _failed(self, name: str, event: Any, exc: Exception) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            event_id = event.get("event.id") if isinstance(event, dict) else None
            self.errors.append(AnalyzerError(name, event_id if isinstance(event_id, str) else None,
                                             f"{type(exc).__name__}: {exc}"))


def default_analyzers(
    state: StateStore,
    profiles: Iterable[DatasetProfile] = (),
    *,
    row_reader: Callable[[str], Iterable[dict[str, Any]]] | None = None,
    allowed_lateness: float = 0,
    learning_seconds: float = 0,
    request_rate_min_count: int = 1,
) -> list[Analyzer | Enricher]:
    """Every analyzer aisoc ships, the first-seen enricher first."""
    windowed: dict[str, Any] = {"allowed_lateness": allowed_lateness}
    return [
        ApiKeyFirstSeen(state, learning_seconds=learning_seconds),
        ApiKeyRequestRate(state, min_count=request_rate_min_count, **windowed),
        ApiKeyTokenZscore(state, **windowed),
        ApiKeyLogprobsShare(state, **windowed),
        ApiKeySkeletonDiversity(state, **windowed),
        ClientNearBoundaryShare(state, **windowed),
        ClientConfidenceStddev(state, **windowed),
        CanaryDisagreementRate(state, **windowed),
        SourceMixShift(state, **windowed),
        IngestionAccessRate(state, learning_seconds=learning_seconds, **windowed),
        TrainingBatchAnalyzer(state, profiles, row_reader=row_reader),
    ]
