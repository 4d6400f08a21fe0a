"""`aisoc test`: run every rule's test events and check each case matches (or not) as declared."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aisoc.detect.engine import run_rule
from aisoc.detect.store import EventStore, StoreError
from aisoc.rules.loader import RuleFile
from aisoc.rules.model import normalize_timestamp

MIN_CASES = 3
GAP = timedelta(days=2)  # longer than any rule's window, so scenarios on one timeline cannot see each other


def _when(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["@timestamp"]).replace("Z", "+00:00"))


def _shift(event: dict[str, Any], offset: timedelta) -> dict[str, Any]:
    return {**event, "@timestamp": normalize_timestamp(_when(event) + offset)}


def lay_out_scenarios(rules: list[RuleFile]) -> list[tuple[RuleFile, int, list[dict[str, Any]]]]:
    """Every test case of every rule on one timeline, each starting GAP after the previous one ended.

    Returns (rule, case index, shifted events). Used where one store holds all cases at once: the
    demo and the Elasticsearch test run.
    """
    laid_out: list[tuple[RuleFile, int, list[dict[str, Any]]]] = []
    cursor: datetime | None = None
    for rule in rules:
        for index, case in enumerate(rule.meta.tests):
            events = case.expanded_events(rule.rule_id, index)
            start = min(_when(e) for e in events)
            offset = (cursor - start) if cursor else timedelta(0)
            shifted = [_shift(e, offset) for e in events]
            laid_out.append((rule, index, shifted))
            cursor = max(_when(e) for e in shifted) + GAP
    return laid_out


@dataclass
class CaseResult:
    name: str
    expect: str
    passed: bool
    matched_event_ids: list[str]
    detail: str = ""
    offending_event: dict[str, Any] | None = None


@dataclass
class RuleTestResult:
    rule_id: str
    title: str
    path: str
    engine: str
    positives: int = 0
    negatives: int = 0
    cases: list[CaseResult] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.positives >= MIN_CASES
            and self.negatives >= MIN_CASES
            and all(c.passed for c in self.cases)
        )

    def failures(self) -> list[str]:
        out = [self.error] if self.error else []
        if self.error is None and self.positives < MIN_CASES:
            out.append(f"only {self.positives} 'match' test cases, need {MIN_CASES}")
        if self.error is None and self.negatives < MIN_CASES:
            out.append(f"only {self.negatives} 'no_match' test cases, need {MIN_CASES}")
        out += [f"case {c.name!r}: {c.detail}" for c in self.cases if not c.passed]
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["failures"] = self.failures()
        return data


def test_rule_sqlite(rule: RuleFile, sql: str | None = None) -> RuleTestResult:
    """Each case runs alone in a fresh in-memory store, so cases cannot influence each other."""
    result = RuleTestResult(rule.rule_id, rule.title, str(rule.path), "sqlite")
    if sql is None:
        from aisoc.compile.targets import sqlite_query

        try:
            sql = sqlite_query(rule)
        except ValueError as exc:
            result.error = str(exc)
            return result
    for index, case in enumerate(rule.meta.tests):
        try:
            events = case.expanded_events(rule.rule_id, index)
        except ValueError as exc:  # a native record the collector mapping refuses
            _count(result, case.expect)
            result.cases.append(CaseResult(case.name, case.expect, False, [], f"bad test record: {exc}"))
            continue
        store = EventStore(":memory:")
        try:
            store.insert(events)
            matched = sorted({eid for m in run_rule(store, rule, sql) for eid in m.event_ids})
        except StoreError as exc:
            _count(result, case.expect)
            result.cases.append(CaseResult(case.name, case.expect, False, [], f"bad test event: {exc}"))
            continue
        finally:
            store.close()
        record_case(result, case.name, case.expect, events, matched)
    return result


def _count(result: RuleTestResult, expect: str) -> None:
    if expect == "match":
        result.positives += 1
    else:
        result.negatives += 1


def record_case(result: RuleTestResult, name: str, expect: str, events: list[dict[str, Any]],
                matched: list[str]) -> None:
    """Judge one case by the event ids the engine matched, and add it to the rule's result."""
    _count(result, expect)
    if expect == "match":
        ok = bool(matched)
        detail = "" if ok else "expected the rule to fire, it did not"
        offending = None if ok else events[0]
    else:
        ok = not matched
        detail = "" if ok else f"expected no alert, the rule fired on {len(matched)} event(s)"
        offending = None if ok else next((e for e in events if e["event.id"] in matched), events[0])
    result.cases.append(CaseResult(name, expect, ok, matched, detail, offending))
