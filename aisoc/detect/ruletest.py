"""`aisoc test`: run every rule's test events and check each case matches (or not) as declared."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aisoc.detect.engine import run_rule
from aisoc.detect.store import EventStore, StoreError
from aisoc.rules.loader import RuleFile

MIN_CASES = 3


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
        if case.expect == "match":
            result.positives += 1
        else:
            result.negatives += 1
        events = case.expanded_events(rule.rule_id, index)
        store = EventStore(":memory:")
        try:
            store.insert(events)
            matches = run_rule(store, rule, sql)
        except StoreError as exc:
            result.cases.append(CaseResult(case.name, case.expect, False, [], f"bad test event: {exc}"))
            continue
        finally:
            store.close()
        matched = sorted({eid for m in matches for eid in m.event_ids})
        if case.expect == "match":
            ok = bool(matches)
            detail = "" if ok else "expected the rule to fire, it did not"
            offending = None if ok else events[0]
        else:
            ok = not matches
            detail = "" if ok else f"expected no alert, the rule fired on {len(matched)} event(s)"
            offending = None if ok else next((e for e in events if e["event.id"] in matched), events[0])
        result.cases.append(CaseResult(case.name, case.expect, ok, matched, detail, offending))
    return result
