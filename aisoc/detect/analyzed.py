"""A rule test case run through the analyzers: events in time order, then every window closed.

The analyzers see the case's events as the service would receive them (sorted by time, ties in
the order written), built from the case's `analyzers:` settings with fresh state. After the last
event the watermark moves a day on, so every window the events opened is closed and scored. The
signals get ids namespaced by the case, so two cases whose analyzers report the same entity and
window do not collide when every case shares one store (`aisoc demo --scenarios`, the ES parity run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aisoc.analyzers.base import StateStore
from aisoc.analyzers.events import event_time, iso
from aisoc.analyzers.pipeline import AnalyzerChain
from aisoc.analyzers.settings import AnalyzerSettings
from aisoc.collectors.base import event_id
from aisoc.collectors.training_data import read_batch_rows

SETTLE = 86400  # seconds: longer than every analyzer window


def analyze_case(events: list[dict[str, Any]], settings: AnalyzerSettings, namespace: str) -> list[dict[str, Any]]:
    """The events (enriched) followed by the signals they caused; raises ValueError if an analyzer failed."""
    state = StateStore(":memory:")
    chain = AnalyzerChain(settings.build(state, lambda path: read_batch_rows(Path(path))), state)
    ordered = sorted(events, key=lambda e: str(e["@timestamp"]))
    given = {e["event.id"] for e in ordered}
    out = chain.process(ordered)
    last = event_time(ordered[-1]) if ordered else None
    if last is not None:
        out += chain.advance(iso(last + SETTLE))
    if chain.errors:
        error = chain.errors[0]
        raise ValueError(f"analyzer {error.analyzer} failed on event {error.event_id}: {error.reason}")
    for event in out:
        if event["event.id"] not in given:
            event["event.id"] = event_id(namespace, event["event.id"])
    return out
