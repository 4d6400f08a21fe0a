"""The generated references in docs/ are current (regenerate with `aisoc docs`)."""

from __future__ import annotations

import pytest

from aisoc.atlas.catalog import load_catalog
from aisoc.reference import config_reference, rule_reference
from aisoc.rules.loader import load_rules
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["config.md", "rules.md"])
def test_generated_reference_is_current(name: str) -> None:
    if name == "config.md":
        expected = config_reference()
    else:
        rules, _ = load_rules([REPO / "rules"])
        expected = rule_reference(rules, load_catalog())
    assert (REPO / "docs" / name).read_text(encoding="utf-8").rstrip() == expected.rstrip(), (
        f"docs/{name} is stale: run 'aisoc docs'")


def test_rule_reference_names_every_rule_and_its_techniques() -> None:
    rules, _ = load_rules([REPO / "rules"])
    text = rule_reference(rules, load_catalog())
    for rule in rules:
        assert f"### {rule.title}" in text
    assert "https://atlas.mitre.org/techniques/AML.T0024.002/" in text
