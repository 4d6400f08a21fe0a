"""The rule pack as a whole (as elastic/detection-rules tests its collection): size, ATLAS reach, layers,
and test cases that expand the same way every time (so both engines see the very same events)."""

from __future__ import annotations

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
