"""The AI asset inventory: loading (errors with file and line), the check, the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisoc.atlas.catalog import load_catalog
from aisoc.inventory import (
    AISystem,
    DataSource,
    Inventory,
    InventoryError,
    Model,
    Owner,
    applicable_techniques,
    check_inventory,
    load_inventory,
)
from aisoc.metrics.compute import asset_rows

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "inventory.yml"


def write(tmp_path: Path, text: str, name: str = "inventory.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_text(path: Path, line: int | None) -> str:
    assert line is not None
    return path.read_text(encoding="utf-8").splitlines()[line - 1]


# ------------------------------------------------------------------ the example


def test_example_inventory_loads_six_systems() -> None:
    inv = load_inventory(EXAMPLE)
    assert [s.id for s in inv.systems] == [
        "support-assistant", "fraud-classifier", "recommendations", "doc-ocr", "training-data", "rag-helpdesk",
    ]
    fraud = inv.system("fraud-classifier")
    assert fraud is not None and fraud.endpoints[0].kind == "kserve" and fraud.endpoints[0].canary
    assert inv.system("support-assistant").endpoints[0].kind == "gateway"
    assert inv.system("doc-ocr").models[0].registry == "huggingface"
    catalog = load_catalog()
    for system in inv.systems:  # every ATLAS id in the example is a real technique
        assert applicable_techniques(system, catalog) == [catalog.technique(t).id for t in system.atlas]


def test_example_check_flags_exactly_the_deliberate_gaps() -> None:
    findings = check_inventory(load_inventory(EXAMPLE))
    got = sorted((f.code, f.rule_id, f.message) for f in findings)
    assert got == sorted([
        ("inventory.no-owner", "doc-ocr", "system 'doc-ocr' has no owner"),
        ("inventory.no-owner", "rag-helpdesk", "system 'rag-helpdesk' owner has no person"),
        ("inventory.no-lineage", "recommendations",
         "model mlflow:product-recs of 'recommendations' has no documented lineage"),
        ("inventory.no-lineage", "rag-helpdesk",
         "model huggingface:BAAI/bge-small-en-v1.5 of 'rag-helpdesk' has no documented lineage"),
        ("inventory.no-provenance", "training-data",
         "data source 'web-reviews-scrape' of 'training-data' has no provenance"),
        ("inventory.unapproved-source", "training-data",
         "data source 'web-reviews-scrape' of 'training-data' is not approved"),
    ])
    assert all(f.severity == "error" and f.path == str(EXAMPLE) and f.fix for f in findings)
    by_code = {(f.code, f.rule_id): f for f in findings}
    assert "id: doc-ocr" in line_text(EXAMPLE, by_code["inventory.no-owner", "doc-ocr"].line)
    assert "owner:" in line_text(EXAMPLE, by_code["inventory.no-owner", "rag-helpdesk"].line)
    assert "lineage_documented: false" in line_text(EXAMPLE, by_code["inventory.no-lineage", "recommendations"].line)
    assert "web-reviews-scrape" in line_text(EXAMPLE, by_code["inventory.no-provenance", "training-data"].line)


# ------------------------------------------------------------------ load errors

GOOD = """\
version: 1
systems:
  - id: a
    name: A
    criticality: high
    owner: {team: ML Ops, person: p@example.com}
    models:
      - registry: mlflow
        name: m
        lineage_documented: true
    atlas: [AML.T0051]
"""


def test_good_inventory_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD))
    assert inv.systems[0].models[0].lineage_documented is True
    assert check_inventory(inv) == []
    assert inv.line("systems", 0, "models", 0) == 8


@pytest.mark.parametrize(
    ("old", "new", "line", "message", "fix"),
    [
        ("lineage_documented: true", "lineage_documented: maybe", 10,
         "systems[0].models[0].lineage_documented", "true or false"),
        ("        name: m\n", "        name: m\n        linage_documented: true\n", 10,
         "systems[0].models[0].linage_documented: Extra inputs are not permitted", "spelling"),
        ("criticality: high", "criticality: urgent", 5, "systems[0].criticality", "one of"),
        ("    name: A\n", "", 3, "systems[0].name: Field required", "add it"),
        ("  - id: a", "  - id: 'a b'", 3, "systems[0].id", "letters, digits"),
        ("atlas: [AML.T0051]", "atlas: AML.T0051", 11, "systems[0].atlas", "list"),
    ],
)
def test_shape_errors_name_file_line_and_fix(tmp_path: Path, old: str, new: str, line: int, message: str,
                                             fix: str) -> None:
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line, str(err)
    assert message in err.message
    assert fix in err.fix
    assert str(err).startswith(f"{path}:{line}: ")
    assert err.findings[0].line == line


def test_every_shape_error_is_reported(tmp_path: Path) -> None:
    text = GOOD.replace("criticality: high", "criticality: urgent").replace("lineage_documented: true",
                                                                           "lineage_documented: 3")
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, text))
    assert sorted(f.line for f in info.value.findings) == [5, 10]
    assert "1 more problem" in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("systems:\n  - id: a\n    name: [unclosed\n", 4, "invalid YAML"),
        ("base: &b {id: a}\nsystems:\n  - *b\n", 3, "aliases"),
        ("", 1, "no YAML document"),
        ("systems: []\n---\nsystems: []\n", 1, "2 YAML documents"),
        ("just text\n", 1, "top level must be a mapping"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.line == line
    assert message in info.value.message
    assert info.value.fix


def test_missing_file_and_oversized_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read file"):
        load_inventory(tmp_path / "nope.yml")
    big = write(tmp_path, "# " + "x" * (1024 * 1024 + 10) + "\nsystems: []\n")
    with pytest.raises(InventoryError, match="over the"):
        load_inventory(big)


def test_a_bare_list_of_systems_is_accepted_with_lines(tmp_path: Path) -> None:
    text = ("- id: a\n  name: A\n  criticality: low\n  models:\n    - {registry: mlflow, name: m}\n"
            "  atlas: [AML.T0051]\n")
    inv = load_inventory(write(tmp_path, text))
    (finding,) = [f for f in check_inventory(inv) if f.code == "inventory.no-lineage"]
    assert finding.line == 5


# --------------------------------------------------------------------- the check


CHECKED = """\
version: 1
systems:
  - id: dup
    name: First
    criticality: low
    owner: {person: someone@example.com}
    data_sources:
      - {id: s1, approved: true, provenance: contract 1}
      - {id: s1, approved: true, provenance: contract 1}
    models:
      - {registry: mlflow, name: m, lineage_documented: true}
      - {registry: MLflow, name: m, lineage_documented: true}
    atlas: [AML.T0051, AML.T9999, AML.TA0005, aml.t0024.002, not-an-id]
  - id: dup
    name: Second
    criticality: low
    owner: {team: SOC, person: x@example.com}
"""


def test_check_finds_duplicates_unknown_atlas_and_missing_parts(tmp_path: Path) -> None:
    path = write(tmp_path, CHECKED)
    inv = load_inventory(path)
    findings = check_inventory(inv)
    got = [(f.code, f.line, f.severity) for f in findings]
    assert got == [
        ("inventory.no-owner", 6, "error"),
        ("inventory.duplicate-id", 9, "error"),
        ("inventory.duplicate-id", 12, "error"),
        ("inventory.unknown-atlas", 13, "error"),
        ("inventory.unknown-atlas", 13, "error"),
        ("inventory.unknown-atlas", 13, "error"),
        ("inventory.duplicate-id", 14, "error"),
        ("inventory.no-atlas", 14, "warning"),
        ("inventory.empty-system", 14, "warning"),
    ]
    messages = " | ".join(f.message for f in findings)
    assert "owner has no team" in messages
    assert "'AML.T9999' is not an ATLAS technique" in messages
    assert "'not-an-id'" in messages
    tactic = next(f for f in findings if "AML.TA0005" in f.message)
    assert "tactic Execution" in tactic.fix
    dup = next(f for f in findings if f.code == "inventory.duplicate-id" and f.rule_id == "dup" and f.line == 14)
    assert "first at systems[0]" in dup.message
    # the valid lower-case id counts, canonically spelled
    assert applicable_techniques(inv.systems[0], load_catalog()) == ["AML.T0051", "AML.T0024.002"]


def test_check_works_on_an_inventory_built_in_code() -> None:
    inv = Inventory(systems=[
        AISystem(id="x", name="X", criticality="high", owner=Owner(team="SOC", person="p"),
                 data_sources=[DataSource(id="d", approved=False, provenance="vendor")],
                 models=[Model(registry="mlflow", name="m")], atlas=["AML.T0051"]),
    ])
    findings = check_inventory(inv)
    assert [(f.code, f.path, f.line) for f in findings] == [
        ("inventory.unapproved-source", "inventory", None),
        ("inventory.no-lineage", "inventory", None),
    ]


# ------------------------------------------------------------------ properties

owners = st.one_of(st.none(), st.builds(Owner, team=st.sampled_from([None, "SOC"]),
                                        person=st.sampled_from([None, "p@example.com"])))
sources = st.builds(DataSource, id=st.sampled_from(["a", "b", "c"]), approved=st.booleans(),
                    provenance=st.sampled_from([None, "", "contract"]))
models = st.builds(Model, registry=st.just("mlflow"), name=st.sampled_from(["m", "n"]),
                   lineage_documented=st.booleans())
systems = st.builds(
    AISystem, id=st.sampled_from(["s1", "s2", "s3"]), name=st.just("S"),
    criticality=st.sampled_from(["low", "medium", "high", "critical"]), owner=owners,
    data_sources=st.lists(sources, max_size=3), models=st.lists(models, max_size=3),
    atlas=st.lists(st.sampled_from(["AML.T0051", "AML.T0024.002", "AML.T0020", "AML.T9999", "bogus"]), max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(systems, max_size=8))
def test_visibility_percentages_stay_in_range_and_match_the_check(items: list[AISystem]) -> None:
    inv = Inventory(systems=items)
    catalog = load_catalog()
    rows, visibility, coverage = asset_rows(inv, [], catalog)
    for value in (visibility.percent, visibility.owner_percent, visibility.lineage_percent,
                  visibility.provenance_percent, coverage.percent):
        assert value is None or 0.0 <= value <= 100.0
    assert (visibility.percent is None) == (not items)
    findings = check_inventory(inv, catalog)
    no_owner = {f.rule_id for f in findings if f.code == "inventory.no-owner"}
    assert no_owner == {s.id for s in items if not s.owner_documented}
