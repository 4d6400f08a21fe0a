"""Evaluate rules over Elasticsearch with the embedded engine's meaning.

Single-event rules run as their compiled Lucene query (case-insensitive through the index
templates' lowercase normalizer). Correlations need only core Elasticsearch: each base rule's Lucene
query fetches its matching events, a composite aggregation first narrows `event_count` /
`value_count` correlations to the groups that have enough events to qualify at all, and the
sliding windows are then evaluated exactly as pySigma's SQLite backend does: for every matching
event, the window `[ts - timespan, ts]` of its group (string group values compared without case)
is measured, and the events of every qualifying window are the correlation's evidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch
from sigma.correlations import (
    SigmaCorrelationConditionOperator as Op,
)
from sigma.correlations import (
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from aisoc.compile.pipeline import index_pattern
from aisoc.compile.targets import BUILTIN_TARGETS, base_rule_file, compile_with
from aisoc.detect.engine import Match, single_event_match
from aisoc.rules.loader import RuleFile
from aisoc.rules.model import flatten_event

PAGE_SIZE = 1000
SUPPORTED_CORRELATIONS = {
    SigmaCorrelationType.TEMPORAL,
    SigmaCorrelationType.EVENT_COUNT,
    SigmaCorrelationType.VALUE_COUNT,
    SigmaCorrelationType.VALUE_SUM,
    SigmaCorrelationType.VALUE_AVG,
}
_COMPARE = {
    Op.GT: lambda a, b: a > b, Op.GTE: lambda a, b: a >= b, Op.LT: lambda a, b: a < b,
    Op.LTE: lambda a, b: a <= b, Op.EQ: lambda a, b: a == b, Op.NEQ: lambda a, b: a != b,
}


class UnsupportedOnElasticsearch(ValueError):
    pass


@dataclass(frozen=True)
class _Hit:
    event_id: str
    ms: int
    flat: dict[str, Any]

    @property
    def timestamp(self) -> str:
        return _ms_to_iso(self.ms)


def _ms_to_iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _to_ms(value: Any) -> int:
    return int(round(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000))


def _caseless(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class ElasticsearchEngine:
    def __init__(self, client: Elasticsearch, namespace: str = "*") -> None:
        self.client = client
        self.namespace = namespace
        self._queries: dict[tuple[str, str], str] = {}

    def _lucene(self, rule: RuleFile) -> str:
        key = (rule.rule_id, str(rule.primary.id))
        if key not in self._queries:
            compiled = compile_with(rule, BUILTIN_TARGETS["lucene"])
            if compiled.error:
                raise UnsupportedOnElasticsearch(compiled.error)
            self._queries[key] = str(compiled.query)
        return self._queries[key]

    def _search(self, rule: RuleFile, start: str | None, end: str | None,
                extra: list[dict[str, Any]] | None = None) -> Iterator[_Hit]:
        """Every event matching `rule`'s query in [start, end], oldest first (search_after paging)."""
        filters: list[dict[str, Any]] = [{"query_string": {"query": self._lucene(rule), "analyze_wildcard": True}}]
        if start or end:
            bounds = {k: v for k, v in (("gte", start), ("lte", end)) if v}
            filters.append({"range": {"@timestamp": bounds}})
        filters += extra or []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": {"bool": {"filter": filters}},
                "sort": [{"@timestamp": "asc"}, {"event.id": "asc"}],
                "size": PAGE_SIZE,
                "_source": True,
            }
            if after is not None:
                body["search_after"] = after
            response = self.client.search(index=index_pattern(rule.layer, self.namespace),
                                          ignore_unavailable=True, allow_no_indices=True, **body)
            hits = response["hits"]["hits"]
            for hit in hits:
                flat = flatten_event(hit["_source"])
                yield _Hit(str(flat.get("event.id") or hit["_id"]), _to_ms(flat["@timestamp"]), flat)
            if len(hits) < PAGE_SIZE:
                return
            after = hits[-1]["sort"]

    def run_rule(self, rule: RuleFile, start: str | None = None, end: str | None = None) -> list[Match]:
        if not rule.is_correlation:
            return [single_event_match(rule, hit.flat, hit.event_id, hit.timestamp)
                    for hit in self._search(rule, start, end)]
        return self._correlate(rule, rule.primary, start, end)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- correlations

    def _correlate(self, rule: RuleFile, corr: SigmaCorrelationRule, start: str | None, end: str | None
                   ) -> list[Match]:
        if corr.type not in SUPPORTED_CORRELATIONS:
            raise UnsupportedOnElasticsearch(f"{corr.type.name.lower()} correlations are not run on Elasticsearch")
        if corr.aliases and corr.aliases.aliases:
            raise UnsupportedOnElasticsearch("correlation field aliases are not run on Elasticsearch")
        condition = corr.condition
        group_by = list(corr.group_by or [])
        value_field = condition.fieldref if isinstance(condition.fieldref, str) else None
        span_ms = int(corr.timespan.seconds * 1000)
        window_start = _ms_to_iso(_to_ms(start) - span_ms) if start else None
        hits: dict[str, _Hit] = {}
        slots: dict[str, set[int]] = defaultdict(set)  # which base rules each event matched
        for slot, base in enumerate(corr.referenced_rules):
            base_file = base_rule_file(rule, base.rule)  # type: ignore[arg-type]
            extra = self._candidate_filter(base_file, corr, group_by, window_start, end)
            if extra is None:
                continue
            for hit in self._search(base_file, window_start, end, extra):
                hits.setdefault(hit.event_id, hit)
                slots[hit.event_id].add(slot)
        groups: dict[tuple[Any, ...], list[_Hit]] = defaultdict(list)
        for hit in hits.values():
            key = tuple(_caseless(hit.flat.get(f)) for f in group_by)
            if all(k is not None for k in key):
                groups[key].append(hit)
        matches = []
        for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
            members.sort(key=lambda h: (h.ms, h.event_id))
            evidence: set[str] = set()
            first, last, best = None, None, None
            for anchor in members:
                window = [h for h in members if anchor.ms - span_ms <= h.ms <= anchor.ms]
                if corr.type == SigmaCorrelationType.TEMPORAL:
                    metric: float | None = len({slot for h in window for slot in slots[h.event_id]})
                else:
                    metric = self._metric(corr.type, window, value_field)
                if metric is None or not _COMPARE[condition.op](metric, condition.count):
                    continue
                evidence.update(h.event_id for h in window)
                first = min(first or window[0].ms, window[0].ms)
                last = max(last or anchor.ms, anchor.ms)
                best = metric if best is None else max(best, metric)
            if evidence and first is not None and last is not None:
                entity = dict(zip(group_by, key, strict=True))
                matches.append(Match(rule, sorted(evidence), _ms_to_iso(first), _ms_to_iso(last), entity, best))
        return matches

    @staticmethod
    def _metric(kind: SigmaCorrelationType, window: list[_Hit], value_field: str | None) -> float | None:
        if kind == SigmaCorrelationType.EVENT_COUNT:
            return len(window)
        values = [h.flat.get(value_field) for h in window] if value_field else []
        values = [v for v in values if v is not None]
        if kind == SigmaCorrelationType.VALUE_COUNT:
            return len({_caseless(v) for v in values})
        numbers = [float(v) for v in values]
        if not numbers:
            return None
        return sum(numbers) if kind == SigmaCorrelationType.VALUE_SUM else sum(numbers) / len(numbers)

    def _candidate_filter(self, base: RuleFile, corr: SigmaCorrelationRule, group_by: list[str],
                          start: str | None, end: str | None) -> list[dict[str, Any]] | None:
        """Narrow a count correlation to groups with enough events to qualify (composite aggregation).

        Returns extra query filters, [] when no narrowing applies, or None when no group can qualify.
        """
        condition = corr.condition
        if (corr.type not in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT)
                or condition.op not in (Op.GT, Op.GTE) or not group_by or len(corr.referenced_rules) != 1):
            return []
        minimum = condition.count + (1 if condition.op == Op.GT else 0)
        filters: list[dict[str, Any]] = [{"query_string": {"query": self._lucene(base), "analyze_wildcard": True}}]
        if start or end:
            filters.append({"range": {"@timestamp": {k: v for k, v in (("gte", start), ("lte", end)) if v}}})
        sources = [{f"g{i}": {"terms": {"field": f}}} for i, f in enumerate(group_by)]
        keep: list[dict[str, Any]] = []
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": PAGE_SIZE, "sources": sources}
            if after:
                composite["after"] = after
            response = self.client.search(
                index=index_pattern(base.layer, self.namespace), ignore_unavailable=True, allow_no_indices=True,
                size=0, query={"bool": {"filter": filters}}, aggs={"groups": {"composite": composite}})
            agg = (response.get("aggregations") or {}).get("groups") or {"buckets": []}
            for bucket in agg["buckets"]:
                if bucket["doc_count"] >= minimum:
                    keep.append({"bool": {"filter": [
                        {"term": {f: bucket["key"][f"g{i}"]}} for i, f in enumerate(group_by)]}})
            after = agg.get("after_key")
            if not after or len(agg["buckets"]) < PAGE_SIZE:
                break
        if not keep:
            return None
        return [{"bool": {"should": keep, "minimum_should_match": 1}}]
