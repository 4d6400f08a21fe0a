"""The rule pack as a whole (as elastic/detection-rules tests its collection): size, ATLAS reach, layers,
and test cases that expand the same way every time (so both engines see the very same events)."""

from __future__ import annotations

from typing import Any

from aisoc.atlas.catalog import Tactic, Technique, load_catalog
from aisoc.detect.ruletest import test_rule_sqlite as run_rule_tests
from aisoc.rules.loader import load_rules
from tests.conftest import REPO

RULES, FINDINGS = load_rules([REPO / "rules"])


def test_pack_size_and_atlas_reach() -> None:
    catalog = load_catalog()
    passing = [r for r in RULES if run_rule_tests(r).passed]
    assert len(RULES) >= 40 and len(passing) == len(RULES)
    techniques = {t.id for r in passing for t in map(catalog.resolve_tag, r.atlas_tags) if isinstance(t, Technique)}
    tactics = {t.id for r in passing for t in map(catalog.resolve_tag, r.atlas_tags) if isinstance(t, Tactic)}
    assert len(techniques) >= 30, sorted(techniques)
    assert len(tactics) >= 10, sorted(tactics)
    assert {r.layer for r in RULES} == {"data", "model", "inference", "supply_chain"}


def test_every_test_case_expands_deterministically() -> None:
    for rule in RULES:
        for index, case in enumerate(rule.meta.tests):
            first = case.expanded_events(rule.rule_id, index)
            again = case.expanded_events(rule.rule_id, index)
            assert [e["event.id"] for e in first] == [e["event.id"] for e in again], (rule.path, case.name)
            assert [e["@timestamp"] for e in first] == [e["@timestamp"] for e in again], (rule.path, case.name)


def test_hypotheses_of_the_article_are_all_covered() -> None:
    text = " ".join(f"{r.title} {r.primary.description}" for r in RULES).lower()
    for hypothesis in ("poison", "extract", "evasion", "supply"):
        assert hypothesis in text, hypothesis


def test_every_rule_is_tested_on_native_platform_records() -> None:
    """At least three attacks and three look-alikes per rule run through the real collector mappings (and the
    analyzers, where the rule is on their signals), so a mapping or analyzer change that breaks a rule fails here."""
    from aisoc.rules.fields import rule_fields
    from aisoc.rules.model import NativeRecord, RepeatedNative

    def native(case: Any) -> bool:
        return any(isinstance(item, NativeRecord | RepeatedNative) for item in case.events)

    short = {}
    for rule in RULES:
        attacks = sum(1 for c in rule.meta.tests if c.expect == "match" and native(c))
        benign = sum(1 for c in rule.meta.tests if c.expect == "no_match" and native(c))
        if attacks < 3 or benign < 3:
            short[str(rule.path.relative_to(REPO))] = (attacks, benign)
    assert short == {}
    signal_rules = [r for r in RULES if {"aisoc.signal.name", "aisoc.api_key.age_seconds"} & rule_fields(r)]
    assert len(signal_rules) >= 15
    for rule in signal_rules:  # rules on analyzer signals get their signals from the analyzers
        assert sum(1 for c in rule.meta.tests if c.analyzers is not None and native(c)) >= 6, rule.path
