"""Data-layer signals: training batches (label drift, rare values, duplicates, too-perfect rows),
the source mix of landed batches, and writes to ingestion paths.

How rows reach the analyzer: `TrainingBatchAnalyzer.observe_batch(dataset, rows, timestamp, ...)`
with the rows of one landed batch (any iterable of dicts, e.g. the training-data collector's
`read_batch_rows(path)`), or `observe(event)` on a `data-batch-landed` event when the analyzer was
given a `row_reader(path) -> rows` and a `DatasetProfile` for the event's dataset: it reads
`file.path` itself. Each batch is analyzed once (by dataset and batch id), so a redelivered
landing event cannot count the batch twice or report it as a duplicate of itself.

Per-batch signals are stamped with the batch's `@timestamp`, carry `aisoc.data.dataset`,
`aisoc.data.batch.id`, `aisoc.data.source` and `aisoc.signal.window_seconds: 0` (the window is the
batch). Baselines are the dataset's batches of the last 30 days (daily buckets: today's earlier
batches and the 29 days before), updated after the batch is scored.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aisoc.analyzers.base import StateStore, signal_event
from aisoc.analyzers.events import action, event_time, flag, get_field, iso, number, parse_time, text
from aisoc.analyzers.state import Change, KeyState, save_changes
from aisoc.analyzers.stats import js_distance, psi
from aisoc.analyzers.windows import BASELINE, WindowedAnalyzer, stamp

DAY = 86400
_STS_SESSION = re.compile(r"^(arn:aws[\w-]*:sts::\d*:assumed-role/[^/]+)/.+$")  # role ARN, then the session
HOUR = 3600
BASELINE_DAYS = 30
BATCH_LANDED = "data-batch-landed"
OBJECT_ACCESSED = "object-accessed"

RowScore = Callable[[dict[str, Any]], float | None]


@dataclass(frozen=True)
class DatasetProfile:
    """What the batch checks need to know about a dataset's rows.

    label_field: the label column (label_psi; too_perfect_share scores rows for this label).
    segment_fields: columns whose values define segments for label_psi (`region` -> `region=BR`).
    feature_fields: categorical columns watched for rare-value bursts.
    ignore_fields: columns left out of the duplicate-row hash (row ids, load timestamps).
    score_field / score_fn: the current model's probability of the row's *given* label, as a
        column or a function of the row (too_perfect_share); without either the check is skipped.
    """

    dataset: str
    label_field: str | None = None
    segment_fields: tuple[str, ...] = ()
    feature_fields: tuple[str, ...] = ()
    ignore_fields: tuple[str, ...] = ()
    score_field: str | None = None
    score_fn: RowScore | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Batch:
    """One landed batch being analyzed."""

    dataset: str
    epoch: float
    batch_id: str
    profile: DatasetProfile
    source: str | None = None

    @property
    def timestamp(self) -> str:
        return iso(self.epoch)

    def fields(self, **extra: Any) -> dict[str, Any]:
        return {"aisoc.data.dataset": self.dataset, "aisoc.data.batch.id": self.batch_id,
                "aisoc.data.source": self.source, **extra}

    def signal(self, name: str, entity: str, value: float, sample_size: int, **extra: Any) -> dict[str, Any]:
        return signal_event(name=name, layer="data", timestamp=self.timestamp, entity=entity, value=value,
                            sample_size=sample_size, window_seconds=0, fields=self.fields(**extra), analyzer=name)


def cell(value: Any) -> str | None:
    """A row value as a category: text for scalars; None for missing, empty or nested values."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    result = str(value)
    return result if result.strip() else None


# ---- 30-day baselines in daily buckets ----------------------------------------------------------

def day_of(epoch: float) -> int:
    return math.floor(epoch / DAY) * DAY


def baseline_days(buckets: Mapping[str, Any], epoch: float, days: int = BASELINE_DAYS) -> list[Any]:
    """Buckets of the `days` days ending with the batch's own day (today's earlier batches included)."""
    today = day_of(epoch)
    return [buckets[k] for k in sorted(buckets, key=int) if today - days * DAY < int(k) <= today]


def prune_days(buckets: dict[str, Any], epoch: float, days: int = BASELINE_DAYS) -> None:
    for key in [k for k in buckets if int(k) <= day_of(epoch) - days * DAY]:
        del buckets[key]


def summed(counters: Iterable[Mapping[str, float]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for counts in counters:
        total.update(counts)
    return total


# ---- batch checks -----------------------------------------------------------------------------

class BatchCheck(Protocol):
    """One signal computed over a batch in a single pass: begin, add each row, finish."""

    name: str

    def begin(self, batch: Batch) -> None: ...

    def add(self, row: dict[str, Any]) -> None: ...

    def finish(self) -> list[dict[str, Any]]: ...

    def state_changes(self) -> list[Change]: ...

    def state_saved(self) -> None: ...


class _Check:
    name: str

    def __init__(self, state: StateStore) -> None:
        self.state = KeyState(state, self.name)
        self.batch: Batch | None = None
        self.rows = 0

    def begin(self, batch: Batch) -> None:
        self.batch, self.rows = batch, 0

    def state_changes(self) -> list[Change]:
        return self.state.changes()

    def state_saved(self) -> None:
        self.state.saved()


class LabelPsi(_Check):
    """label_psi: sum over labels of (p_new - p_base) * ln(p_new / p_base), each share computed from counts
    plus 0.5 (p = (count + 0.5) / (rows + 0.5 * labels), over the labels either side has).

    Per segment of the batch (`<field>=<value>` for each segment field, plus `all` for the whole
    batch) against the same segment's 30-day baseline. Entity `<dataset>/<segment>`. A segment
    needs >= `min_batch_rows` labelled rows in the batch and >= `min_baseline_rows` in the
    baseline: PSI over a handful of rows is noise, and the rule has no sample-size guard.
    The half-count (Jeffreys) smoothing replaces a fixed floor for labels missing on one side: with a
    1e-4 floor a 50-row segment that merely lacks a label the baseline has at 5% scores 0.3 by
    itself (ln(0.05 / 1e-4) is large), so small segments fired by chance. With the half count, a
    missing label weighs what half a row of the batch would: little in a small segment, and still
    a lot in a large batch where its absence is significant. Registry default threshold: >= 0.25.
    """

    name = "label_psi"

    def __init__(self, state: StateStore, *, min_batch_rows: int = 50, min_baseline_rows: int = 100,
                 pseudo_count: float = 0.5) -> None:
        super().__init__(state)
        self.min_batch_rows, self.min_baseline_rows = min_batch_rows, min_baseline_rows
        self.pseudo_count = pseudo_count
        self.counts: dict[str, Counter[str]] = {}

    def begin(self, batch: Batch) -> None:
        super().begin(batch)
        self.counts = {}

    def add(self, row: dict[str, Any]) -> None:
        assert self.batch is not None
        profile = self.batch.profile
        label = cell(row.get(profile.label_field)) if profile.label_field else None
        if label is None:
            return
        segments = ["all"]
        for name in profile.segment_fields:
            value = cell(row.get(name))
            if value is not None:
                segments.append(f"{name}={value}")
        for segment in segments:
            self.counts.setdefault(segment, Counter())[label] += 1

    def finish(self) -> list[dict[str, Any]]:
        assert self.batch is not None
        batch, signals = self.batch, []
        for segment in sorted(self.counts):
            counts = self.counts[segment]
            key = f"{batch.dataset}|{segment}"
            buckets = self.state.get(key) or {}
            base = summed(baseline_days(buckets, batch.epoch))
            rows = sum(counts.values())
            base_rows = sum(base.values())
            if rows >= self.min_batch_rows and base_rows >= self.min_baseline_rows:
                labels = set(counts) | set(base)
                smoothed_new = {label: counts.get(label, 0) + self.pseudo_count for label in labels}
                smoothed_base = {label: base.get(label, 0) + self.pseudo_count for label in labels}
                signals.append(batch.signal(self.name, f"{batch.dataset}/{segment}", psi(smoothed_new, smoothed_base),
                                            rows, **{"aisoc.data.segment": segment}))
            today = buckets.setdefault(str(day_of(batch.epoch)), {})
            for label, count in counts.items():
                today[label] = today.get(label, 0) + count
            prune_days(buckets, batch.epoch)
            self.state.set(key, buckets)
        return signals


class RareValueBurst(_Check):
    """rare_value_burst: count(rows whose value of a feature is rare) / batch rows, per feature, per batch.

    Rare: the value's share of the feature's 30-day baseline rows is under `rare_share` (0.1%),
    never-seen values included. Entity `<dataset>/<feature>`, `aisoc.data.feature` set. Needs
    >= `min_baseline_rows` baseline rows with the feature (below 1000 rows, 0.1% is less than one
    row). A feature whose baseline holds more than `max_distinct` values per day is an identifier
    or free text, not a category: it is not scored (and its daily bucket stops growing).
    Registry default threshold: >= 0.05.
    """

    name = "rare_value_burst"

    def __init__(self, state: StateStore, *, rare_share: float = 0.001, min_baseline_rows: int = 1000,
                 max_distinct: int = 10_000) -> None:
        super().__init__(state)
        self.rare_share, self.min_baseline_rows, self.max_distinct = rare_share, min_baseline_rows, max_distinct
        self.values: dict[str, Counter[str]] = {}

    def begin(self, batch: Batch) -> None:
        super().begin(batch)
        self.values = {name: Counter() for name in batch.profile.feature_fields}

    def add(self, row: dict[str, Any]) -> None:
        self.rows += 1
        for name, counts in self.values.items():
            value = cell(row.get(name))
            if value is not None:
                counts[value] += 1

    def finish(self) -> list[dict[str, Any]]:
        assert self.batch is not None
        batch, signals = self.batch, []
        for feature in sorted(self.values):
            counts = self.values[feature]
            key = f"{batch.dataset}|{feature}"
            buckets = self.state.get(key) or {}
            days = baseline_days(buckets, batch.epoch)
            base = summed(d["values"] for d in days)
            base_rows = sum(d["rows"] for d in days)
            saturated = any(d.get("saturated") for d in days)
            if self.rows and base_rows >= self.min_baseline_rows and not saturated:
                rare = sum(n for value, n in counts.items() if base.get(value, 0) / base_rows < self.rare_share)
                signals.append(batch.signal(self.name, f"{batch.dataset}/{feature}", rare / self.rows, self.rows,
                                            **{"aisoc.data.feature": feature}))
            today = buckets.setdefault(str(day_of(batch.epoch)), {"rows": 0, "values": {}})
            today["rows"] += sum(counts.values())
            for value, n in counts.items():
                if value in today["values"] or len(today["values"]) < self.max_distinct:
                    today["values"][value] = today["values"].get(value, 0) + n
                else:
                    today["saturated"] = True
            prune_days(buckets, batch.epoch)
            self.state.set(key, buckets)
        return signals


def row_hash(row: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """64-bit hex digest of a row's canonical JSON, without the ignored columns."""
    skip = set(ignore)
    canonical = json.dumps({k: v for k, v in row.items() if k not in skip}, sort_keys=True, default=str,
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class DuplicateSamples(_Check):
    """duplicate_sample_share: count(duplicate row hashes) / batch rows, per batch.

    A row is a duplicate when its hash (all columns but the profile's ignore_fields) occurred
    earlier in the same batch or in a batch of the same dataset within the last 30 days; so k
    copies of one new row count k - 1. Entity `<dataset>`. The hashes of each batch are kept
    (one state key per batch, 64-bit hashes) for 30 days and at most `max_hashes` per dataset,
    oldest batches dropped first. Registry default threshold: >= 0.2.
    """

    name = "duplicate_sample_share"

    def __init__(self, state: StateStore, *, max_hashes: int = 1_000_000) -> None:
        super().__init__(state)
        self.max_hashes = max_hashes
        self.hashes: list[str] = []
        self._index: dict[str, dict[str, float]] = {}

    def begin(self, batch: Batch) -> None:
        super().begin(batch)
        self.hashes = []

    def add(self, row: dict[str, Any]) -> None:
        assert self.batch is not None
        self.hashes.append(row_hash(row, self.batch.profile.ignore_fields))

    def _keys(self, dataset: str) -> list[tuple[str, float]]:
        """(state key, batch epoch) of the dataset's stored batches, oldest first."""
        prefix = f"h:{json.dumps(dataset)}|"
        found = [(k, v["epoch"]) for k, v in self.state.items(prefix)]
        return sorted(found, key=lambda item: (item[1], item[0]))

    def _baseline(self, dataset: str) -> dict[str, float]:
        if dataset not in self._index:
            index: dict[str, float] = {}
            for key, epoch in self._keys(dataset):
                for h in self.state.get(key)["hashes"]:
                    index[h] = max(index.get(h, epoch), epoch)
            self._index[dataset] = index
        return self._index[dataset]

    def finish(self) -> list[dict[str, Any]]:
        assert self.batch is not None
        batch = self.batch
        if not self.hashes:
            return []
        baseline, since = self._baseline(batch.dataset), batch.epoch - BASELINE_DAYS * DAY
        seen: set[str] = set()
        duplicates = 0
        for h in self.hashes:
            if h in seen or baseline.get(h, -math.inf) > since:
                duplicates += 1
            seen.add(h)
        signal = batch.signal(self.name, batch.dataset, duplicates / len(self.hashes), len(self.hashes))
        self.state.set(f"h:{json.dumps(batch.dataset)}|{batch.epoch:020.3f}|{batch.batch_id}",
                       {"epoch": batch.epoch, "hashes": sorted(seen)})
        for h in seen:
            baseline[h] = max(baseline.get(h, batch.epoch), batch.epoch)
        self._expire(batch.dataset, since)
        return [signal]

    def _expire(self, dataset: str, since: float) -> None:
        keys = self._keys(dataset)
        sizes = {key: len(self.state.get(key)["hashes"]) for key, _ in keys}
        total, dropped = sum(sizes.values()), False
        for key, epoch in keys:
            if epoch > since and total <= self.max_hashes:
                break
            total -= sizes[key]
            self.state.delete(key)
            dropped = True
        if dropped:
            self._index.pop(dataset, None)


class TooPerfectSamples(_Check):
    """too_perfect_share: count(rows the current model gives >= 0.999 for their given label) / batch rows.

    The score comes from the profile's `score_fn(row)` or `score_field` column: the model's
    probability of the label the row carries. Rows without a score count as not too perfect; a
    batch in which no row could be scored gets no signal. Entity `<dataset>`, per batch.
    Registry default threshold: >= 0.3.
    """

    name = "too_perfect_share"

    def __init__(self, state: StateStore, *, min_confidence: float = 0.999) -> None:
        super().__init__(state)
        self.min_confidence = min_confidence
        self.scored = self.perfect = 0

    def begin(self, batch: Batch) -> None:
        super().begin(batch)
        self.scored = self.perfect = 0

    def _score(self, row: dict[str, Any]) -> float | None:
        assert self.batch is not None
        profile = self.batch.profile
        if profile.score_fn is not None:
            return number(profile.score_fn(row))
        if profile.score_field is not None:
            raw = row.get(profile.score_field)
            if isinstance(raw, str):
                try:
                    return number(float(raw))
                except ValueError:
                    return None
            return number(raw)
        return None

    def add(self, row: dict[str, Any]) -> None:
        self.rows += 1
        score = self._score(row)
        if score is not None:
            self.scored += 1
            self.perfect += score >= self.min_confidence

    def finish(self) -> list[dict[str, Any]]:
        assert self.batch is not None
        if not self.scored:
            return []
        return [self.batch.signal(self.name, self.batch.dataset, self.perfect / self.rows, self.rows)]


class TrainingBatchAnalyzer:
    """Runs the batch checks (label_psi, rare_value_burst, duplicate_sample_share, too_perfect_share)
    over each landed batch's rows in one pass; see each check for its formula. Window: per batch."""

    name = "training_batch"

    def __init__(
        self,
        state: StateStore,
        profiles: Iterable[DatasetProfile] = (),
        *,
        row_reader: Callable[[str], Iterable[dict[str, Any]]] | None = None,
        checks: Iterable[BatchCheck] | None = None,
        name: str | None = None,
    ) -> None:
        if name:
            self.name = name
        self.profiles = {p.dataset: p for p in profiles}
        self.row_reader = row_reader
        self.checks: list[BatchCheck] = list(checks) if checks is not None else [
            LabelPsi(state), RareValueBurst(state), DuplicateSamples(state), TooPerfectSamples(state)]
        self.state = KeyState(state, self.name)

    def observe(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """A `data-batch-landed` event of a profiled dataset: read its rows (`file.path`) and analyze them."""
        if action(event) != BATCH_LANDED or self.row_reader is None:
            return []
        dataset = text(get_field(event, "aisoc.data.dataset"))
        path = text(get_field(event, "file.path"))
        when = event_time(event)
        if dataset not in self.profiles or path is None or when is None:
            return []
        batch_id = text(get_field(event, "aisoc.data.batch.id")) or text(get_field(event, "event.id")) or path
        source = text(get_field(event, "aisoc.data.source"))
        if self._seen(dataset, batch_id):
            return []
        return self.observe_batch(dataset, self.row_reader(path), when, batch_id=batch_id, source=source)

    def observe_batch(
        self,
        dataset: str,
        rows: Iterable[dict[str, Any]],
        timestamp: Any,
        *,
        batch_id: str | None = None,
        source: str | None = None,
        profile: DatasetProfile | None = None,
    ) -> list[dict[str, Any]]:
        """Signals for one batch of rows landed at `timestamp` (ISO text, datetime or epoch seconds).

        The batch id defaults to the dataset and timestamp; a batch id already analyzed (within 30
        days) yields no signals and leaves the baselines alone.
        """
        epoch = float(timestamp) if isinstance(timestamp, int | float) else parse_time(timestamp)
        if epoch is None:
            raise ValueError(f"batch of {dataset!r}: unusable timestamp {timestamp!r}")
        batch_id = batch_id or f"{dataset}@{iso(epoch)}"
        if self._seen(dataset, batch_id):
            return []
        batch = Batch(dataset, epoch, batch_id, profile or self.profiles.get(dataset) or DatasetProfile(dataset),
                      source)
        for check in self.checks:
            check.begin(batch)
        for row in rows:
            if isinstance(row, dict):
                for check in self.checks:
                    check.add(row)
        signals = [s for check in self.checks for s in check.finish()]
        self._remember(dataset, batch_id, epoch)
        return signals

    def _seen(self, dataset: str, batch_id: str) -> bool:
        return batch_id in (self.state.get("seen:" + dataset) or {})

    def _remember(self, dataset: str, batch_id: str, epoch: float) -> None:
        key = "seen:" + dataset
        seen = {b: e for b, e in (self.state.get(key) or {}).items() if e > epoch - BASELINE_DAYS * DAY}
        seen[batch_id] = epoch
        self.state.set(key, seen)

    def state_changes(self) -> list[Change]:
        return [*self.state.changes(), *(c for check in self.checks for c in check.state_changes())]

    def state_saved(self) -> None:
        self.state.saved()
        for check in self.checks:
            check.state_saved()

    def checkpoint(self) -> None:
        save_changes(self.state_changes())
        self.state_saved()


# ---- event-driven data signals ----------------------------------------------------------------

class SourceMixShift(WindowedAnalyzer):
    """source_mix_shift: sqrt(JS divergence, base 2) of a dataset's rows-per-source mix, day vs. 30-day baseline.

    1d tumbling windows (UTC days) over `data-batch-landed` events: rows per `aisoc.data.source`
    (`aisoc.data.batch.rows`, else `aisoc.data.manifest.rows`). When a day closes its mix is
    compared with the summed mix of the 30 days before it, then joins the baseline. No signal
    without a baseline. Entity `<dataset>`, sample_size = the day's rows. Registry default
    threshold: >= 0.3.
    """

    name = "source_mix_shift"
    layer = "data"
    stream = frozenset({BATCH_LANDED})
    window = DAY
    step = DAY

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        if action(event) != BATCH_LANDED:
            return None
        dataset = text(get_field(event, "aisoc.data.dataset"))
        source = text(get_field(event, "aisoc.data.source"))
        rows = number(get_field(event, "aisoc.data.batch.rows"))
        if rows is None:
            rows = number(get_field(event, "aisoc.data.manifest.rows"))
        if not dataset or not source or rows is None or rows <= 0:
            return None
        return dataset, [source, rows]

    def new(self) -> dict[str, float]:
        return {}

    def add(self, aggregate: dict[str, float], observation: list[Any]) -> dict[str, float]:
        source, rows = observation
        aggregate[source] = aggregate.get(source, 0) + rows
        return aggregate

    def close(self, entity: str, aggregate: dict[str, float], end: int) -> list[dict[str, Any]]:
        key = BASELINE + entity
        days: dict[str, dict[str, float]] = self.state.get(key) or {}
        day = end - DAY
        base = summed(days[d] for d in days if day - BASELINE_DAYS * DAY <= int(d) < day)
        signals = []
        if sum(base.values()) > 0:
            signals.append(signal_event(
                name=self.name, layer=self.layer, timestamp=stamp(end), entity=entity,
                value=js_distance(aggregate, base), sample_size=int(sum(aggregate.values())),
                window_seconds=self.window, fields={"aisoc.data.dataset": entity}, analyzer=self.name))
        days[str(day)] = dict(aggregate)
        for d in [d for d in days if int(d) < day + DAY - BASELINE_DAYS * DAY]:
            del days[d]
        self.state.set(key, days)
        return signals


class IngestionAccessRate(WindowedAnalyzer):
    """ingestion_access_rate: count(write operations by user.name on ingestion paths), 1h tumbling.

    Counts `object-accessed` events with `aisoc.data.storage.operation: write` and
    `aisoc.data.storage.ingestion_path: true`, per `user.name` (the entity). `aisoc.signal.baseline`
    = the identity's mean writes per hour over its active hours of the previous 30 days (absent
    when it has none: the rule's "no baseline" band); like the token z-score, idle hours are not
    zeros, so a pipeline that writes in one nightly burst is compared with its own bursts.
    sample_size = writes in the window. Registry default threshold: >= 50 and >= 10x the baseline.

    The identity is `user.name` with an AWS STS session removed (`arn:aws:sts::1:assumed-role/etl/run-42`
    counts as `arn:aws:sts::1:assumed-role/etl`): every pipeline run assumes its role under a new
    session name, and per session no run would ever have a baseline. During the learning period
    (`learning_seconds` after the first window aisoc closes) an identity without a baseline gets no
    signal: on the day aisoc is installed every writer has no history.
    """

    name = "ingestion_access_rate"
    layer = "data"
    stream = frozenset({OBJECT_ACCESSED})
    window = HOUR
    step = HOUR
    baseline_seconds = BASELINE_DAYS * DAY

    def __init__(self, state: StateStore, *, learning_seconds: float = 0, **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.learning_seconds = float(learning_seconds)

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        if action(event) != OBJECT_ACCESSED:
            return None
        operation = text(get_field(event, "aisoc.data.storage.operation"))
        if operation is None or operation.lower() != "write":
            return None
        if not flag(get_field(event, "aisoc.data.storage.ingestion_path")):
            return None
        user = text(get_field(event, "user.name"))
        return (_STS_SESSION.sub(r"\1", user), 1) if user else None

    def new(self) -> int:
        return 0

    def add(self, aggregate: int, observation: int) -> int:
        return aggregate + observation

    def close(self, entity: str, aggregate: int, end: int) -> list[dict[str, Any]]:
        key = BASELINE + entity
        start = end - self.window
        started = self.state.started(start)
        history = [h for h in (self.state.get(key) or []) if start - self.baseline_seconds <= h[0] < start]
        baseline = sum(count for _, count in history) / len(history) if history else None
        self.state.set(key, [*history, [start, aggregate]])
        if baseline is None and start < started + self.learning_seconds:
            return []  # learning: no history yet is aisoc's doing, not the identity's
        return [signal_event(name=self.name, layer=self.layer, timestamp=stamp(end), entity=entity,
                             value=aggregate, sample_size=aggregate, window_seconds=self.window,
                             baseline=baseline, fields={"user.name": entity}, analyzer=self.name)]
