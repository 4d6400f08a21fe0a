"""The shipped ATLAS catalog against the official data, tag resolution, and the v5/v6 parsers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import aisoc.atlas as atlas_pkg
import aisoc.atlas.catalog as catalog_module
from aisoc.atlas.catalog import (
    AtlasCatalog,
    AtlasFormatError,
    Tactic,
    Technique,
    load_catalog,
    main,
    parse_official,
    short_name_for,
    update_catalog,
)
from aisoc.paths import data_path

SHARED_ATLAS = Path(__file__).resolve().parents[1].parent / "shared" / "atlas"
OFFICIAL_YAML = SHARED_ATLAS / "ATLAS.yaml"
OFFICIAL_STIX = SHARED_ATLAS / "stix-atlas.json"

def needs_official(test):  # noqa: ANN001, ANN201 - marks tests that read the official data
    """The official ATLAS files must be there (CI lays ../shared beside the checkout): no silent skip."""
    return test


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    if not OFFICIAL_YAML.exists():
        pytest.fail(f"official ATLAS data not found at {OFFICIAL_YAML}: the checkout needs ../shared beside it")
    return yaml.safe_load(OFFICIAL_YAML.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def catalog() -> AtlasCatalog:
    return load_catalog()


# ------------------------------------------------------------ shipped catalog vs official


def test_shipped_catalog_counts(catalog: AtlasCatalog) -> None:
    subs = [t for t in catalog.techniques.values() if t.is_subtechnique]
    assert catalog.version == "5.6.0"
    assert len(catalog.tactics) == 16
    assert len(catalog.techniques) - len(subs) == 101
    assert len(subs) == 69


@needs_official
def test_shipped_catalog_matches_official_yaml(catalog: AtlasCatalog, official: dict[str, Any]) -> None:
    matrix = official["matrices"][0]
    assert catalog.version == str(official["version"])
    # tactics: same IDs, names and matrix order
    assert [(t.id, t.name) for t in catalog.tactics] == [(t["id"], t["name"]) for t in matrix["tactics"]]
    # techniques: same IDs and names, in the official order
    assert [(t.id, t.name) for t in catalog.techniques.values()] == [
        (t["id"], t["name"]) for t in matrix["techniques"]
    ]
    by_id = {t["id"]: t for t in matrix["techniques"]}
    for tech in catalog.techniques.values():
        raw = by_id[tech.id]
        assert tech.parent == raw.get("subtechnique-of")
        if tech.parent is None:
            assert list(tech.tactics) == raw["tactics"], tech.id
        else:
            assert tech.tactics == catalog.techniques[tech.parent].tactics, tech.id
            assert tech.id.startswith(tech.parent + ".")


@needs_official
def test_shipped_file_is_what_the_builder_produces(official: dict[str, Any]) -> None:
    shipped = json.loads(data_path("atlas/catalog.json").read_text(encoding="utf-8"))
    rebuilt = parse_official(OFFICIAL_YAML.read_text(encoding="utf-8")).to_json()
    shipped.pop("source")
    rebuilt.pop("source")
    assert shipped == rebuilt


@needs_official
def test_tactic_short_names_match_stix(catalog: AtlasCatalog) -> None:
    stix = json.loads(OFFICIAL_STIX.read_text(encoding="utf-8"))
    shortnames = {
        o["external_references"][0]["external_id"]: o["x_mitre_shortname"]
        for o in stix["objects"]
        if o["type"] == "x-mitre-tactic"
    }
    assert len(shortnames) == 16
    assert {t.id: t.short_name for t in catalog.tactics} == shortnames
    for tac in catalog.tactics:
        assert short_name_for(tac.name) == shortnames[tac.id]


@needs_official
def test_technique_tactics_match_stix_kill_chain(catalog: AtlasCatalog) -> None:
    """A second official source agrees on membership, sub-technique inheritance included."""
    stix = json.loads(OFFICIAL_STIX.read_text(encoding="utf-8"))
    patterns = [o for o in stix["objects"] if o["type"] == "attack-pattern"]
    assert len(patterns) == len(catalog.techniques)
    for obj in patterns:
        tid = next(r["external_id"] for r in obj["external_references"] if r["source_name"] == "mitre-atlas")
        tech = catalog.technique(tid)
        assert tech is not None, tid
        assert tech.is_subtechnique == bool(obj.get("x_mitre_is_subtechnique")), tid
        phases = {p["phase_name"] for p in obj["kill_chain_phases"] if p["kill_chain_name"] == "mitre-atlas"}
        assert phases == {catalog.tactic(t).short_name for t in tech.tactics}, tid


# ------------------------------------------------------------------------- lookups


def test_technique_lookup_is_case_insensitive(catalog: AtlasCatalog) -> None:
    tech = catalog.technique("aml.t0051")
    assert tech is not None and tech.id == "AML.T0051" and not tech.is_subtechnique
    sub = catalog.technique("Aml.T0024.002")
    assert sub is not None and sub.parent == "AML.T0024" and sub.is_subtechnique
    assert catalog.technique("AML.T9999") is None
    assert catalog.technique("") is None


def test_tactic_lookup_by_id_and_short_name(catalog: AtlasCatalog) -> None:
    exfil = catalog.tactic("exfiltration")
    assert exfil == Tactic("AML.TA0010", "Exfiltration", "exfiltration")
    assert catalog.tactic("aml.ta0010") is exfil
    assert catalog.tactic("AI-Model-Access") == catalog.tactic("AML.TA0000")
    assert catalog.tactic("ml-model-access") is None  # the pre-5.x name is not accepted silently
    assert catalog.tactic("AML.TA9999") is None


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("atlas.aml.t0051", "AML.T0051"),
        ("atlas.aml.t0024.002", "AML.T0024.002"),
        ("ATLAS.AML.T0024.002", "AML.T0024.002"),
        ("atlas.exfiltration", "AML.TA0010"),
        ("atlas.ai-model-access", "AML.TA0000"),
        ("Atlas.Command-And-Control", "AML.TA0014"),
        ("atlas.aml.ta0005", "AML.TA0005"),
    ],
)
def test_resolve_tag_known(catalog: AtlasCatalog, tag: str, expected: str) -> None:
    found = catalog.resolve_tag(tag)
    assert found is not None and found.id == expected


@pytest.mark.parametrize(
    "tag",
    [
        "atlas.aml.t9999",
        "atlas.aml.t0024.999",
        "atlas.no-such-tactic",
        "atlas.",
        "atlas",
        "",
        "attack.t1059",
        "attack.exfiltration",
        "atlas.aml.t51",
        "atlas.aml.t0051.",
        "atlas.aml.t0051.2",
        "atlas.aml.t0051 ",
        " atlas.aml.t0051",
        "atlas.exfiltration.extra",
        "atlas..exfiltration",
        "atlas.AML.T0051.002.001",
        "atlas.exfil tration",
        "atlas.Exfiltration-",
    ],
)
def test_resolve_tag_unknown_or_malformed(catalog: AtlasCatalog, tag: str) -> None:
    assert catalog.resolve_tag(tag) is None


def test_resolve_tag_rejects_non_strings(catalog: AtlasCatalog) -> None:
    assert catalog.resolve_tag(None) is None  # type: ignore[arg-type]
    assert catalog.resolve_tag(51) is None  # type: ignore[arg-type]


def test_urls_use_dotted_ids(catalog: AtlasCatalog) -> None:
    assert catalog.tactic_url(catalog.tactic("execution")) == "https://atlas.mitre.org/tactics/AML.TA0005/"
    assert (
        catalog.technique_url(catalog.technique("aml.t0024.002"))
        == "https://atlas.mitre.org/techniques/AML.T0024.002/"
    )
    assert catalog.technique_url("aml.t0051") == "https://atlas.mitre.org/techniques/AML.T0051/"


def test_structure_helpers(catalog: AtlasCatalog) -> None:
    subs = catalog.subtechniques("AML.T0024")
    assert [s.id for s in subs] == ["AML.T0024.000", "AML.T0024.001", "AML.T0024.002"]
    exfil = catalog.techniques_for_tactic("exfiltration")
    assert all(not t.is_subtechnique and "AML.TA0010" in t.tactics for t in exfil)
    assert "AML.T0024" in [t.id for t in exfil]
    with_subs = catalog.techniques_for_tactic("exfiltration", subtechniques=True)
    assert "AML.T0024.002" in [t.id for t in with_subs]


def test_default_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_package_reexports() -> None:
    for name in atlas_pkg.__all__:
        assert getattr(atlas_pkg, name) is not None
    assert atlas_pkg.AtlasFormatError is AtlasFormatError
    assert issubclass(AtlasFormatError, ValueError)


# ------------------------------------------------------------------- JSON round trip


def test_json_round_trip(catalog: AtlasCatalog) -> None:
    data = json.loads(json.dumps(catalog.to_json()))
    again = AtlasCatalog.from_json(data)
    assert again == catalog
    assert list(again.techniques) == list(catalog.techniques)
    assert again.tactics == catalog.tactics


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="something-else"),
        lambda d: d.update(format_version=99),
        lambda d: d.pop("tactics"),
        lambda d: d["techniques"][0].update(id="T0000"),
        lambda d: d["techniques"][0].update(tactics=["AML.TA9999"]),
        lambda d: d["techniques"][1].update(parent="AML.T9999"),
        lambda d: d["techniques"].append(dict(d["techniques"][0])),
    ],
)
def test_from_json_rejects_malformed(catalog: AtlasCatalog, mutate: Any) -> None:
    data = copy.deepcopy(catalog.to_json())
    mutate(data)
    with pytest.raises(AtlasFormatError):
        AtlasCatalog.from_json(data)


# ------------------------------------------------------------------------- v6 format


def _v6_doc() -> dict[str, Any]:
    """A small release in the date-versioned v6 shape (see the catalog module docstring)."""
    return {
        "format-version": "6.0.0",
        "collection": {"id": "ATLAS", "version": "2026.05", "modified-date": "2026-05-27"},
        "matrix": {"id": "ATLAS", "name": "ATLAS Matrix"},
        # mapping order deliberately differs from the matrix order given by `sequences`
        "tactics": {
            "AML.TA0010": {"id": "AML.TA0010", "name": "Exfiltration", "uuid": "u1"},
            "AML.TA0005": {"id": "AML.TA0005", "name": "Execution"},
            "AML.TA0001": {"id": "AML.TA0001", "name": "AI Attack Adaptation"},
        },
        "techniques": {
            "AML.T0051": {"id": "AML.T0051", "name": "LLM Prompt Injection", "maturity": "realized"},
            "AML.T0051.000": {"id": "AML.T0051.000", "name": "Direct"},
            "AML.T0024": {"id": "AML.T0024", "name": "Exfiltration via AI Inference API"},
            "AML.T0024.002": {"id": "AML.T0024.002", "name": "Extract AI Model"},
            "AML.T0043": {"id": "AML.T0043", "name": "Craft Adversarial Data"},
        },
        "mitigations": {"AML.M0000": {"id": "AML.M0000", "name": "Limit Public Release"}},
        "case-studies": {},
        "relationships": {
            "ATLAS": {
                "sequences": [
                    {"source": "ATLAS", "target": "AML.TA0010", "position": 2},
                    {"source": "ATLAS", "target": "AML.TA0005", "position": 0},
                    {"source": "ATLAS", "target": "AML.TA0001", "position": 1},
                ]
            },
            "AML.T0051": {"achieves": [{"source": "AML.T0051", "target": "AML.TA0005"}]},
            "AML.T0051.000": {"specializes": [{"source": "AML.T0051.000", "target": "AML.T0051"}]},
            "AML.T0024": {"achieves": [{"source": "AML.T0024", "target": "AML.TA0010"}]},
            "AML.T0024.002": {"specializes": [{"source": "AML.T0024.002", "target": "AML.T0024"}]},
            "AML.T0043": {
                "achieves": [
                    {"source": "AML.T0043", "target": "AML.TA0001"},
                    {"source": "AML.T0043", "target": "AML.TA0010"},
                ]
            },
            "AML.M0000": {"mitigates": [{"source": "AML.M0000", "target": "AML.T0024"}]},
        },
    }


def test_v6_document_parses() -> None:
    cat = parse_official(yaml.safe_dump(_v6_doc(), sort_keys=False))
    assert cat.version == "2026.05"
    assert cat.source == "dist/v6/ATLAS-2026.05.yaml"
    assert [t.id for t in cat.tactics] == ["AML.TA0005", "AML.TA0001", "AML.TA0010"]
    assert cat.tactic("ai-attack-adaptation").id == "AML.TA0001"
    assert cat.technique("AML.T0051.000") == Technique(
        "AML.T0051.000", "Direct", ("AML.TA0005",), "AML.T0051"
    )
    assert cat.technique("AML.T0024.002").tactics == ("AML.TA0010",)
    assert cat.technique("AML.T0043").tactics == ("AML.TA0001", "AML.TA0010")
    assert cat.resolve_tag("atlas.aml.t0024.002").parent == "AML.T0024"
    assert "AML.M0000" not in cat.techniques
    assert AtlasCatalog.from_json(cat.to_json()) == cat


def test_v6_variants_list_relationships_and_objects_under_matrix() -> None:
    doc = _v6_doc()
    rels: list[dict[str, Any]] = []
    for src, groups in doc.pop("relationships").items():
        for rtype, items in groups.items():
            rels += [{**r, "source": src, "relationship-type": rtype} for r in items]
    doc["relationships"] = rels
    doc["format_version"] = doc.pop("format-version")
    doc["matrix"]["tactics"] = [dict(v, **{"object-type": "tactic"}) for v in doc.pop("tactics").values()]
    doc["matrix"]["techniques"] = list(doc.pop("techniques").values())
    cat = parse_official(doc)
    assert [t.id for t in cat.tactics] == ["AML.TA0005", "AML.TA0001", "AML.TA0010"]
    assert cat.technique("AML.T0051.000").parent == "AML.T0051"
    assert cat.technique("AML.T0043").tactics == ("AML.TA0001", "AML.TA0010")


def test_v6_without_sequences_uses_matrix_tactic_list_then_file_order() -> None:
    doc = _v6_doc()
    del doc["relationships"]["ATLAS"]
    doc["matrix"]["tactics"] = ["AML.TA0001", "AML.TA0010", "AML.TA0005"]
    assert [t.id for t in parse_official(doc).tactics] == ["AML.TA0001", "AML.TA0010", "AML.TA0005"]
    del doc["matrix"]["tactics"]
    assert [t.id for t in parse_official(doc).tactics] == ["AML.TA0010", "AML.TA0005", "AML.TA0001"]


@needs_official
def test_official_data_in_v6_shape_gives_the_same_catalog(official: dict[str, Any]) -> None:
    """The whole 5.6.0 matrix re-expressed in the v6 shape parses to the same facts."""
    matrix = official["matrices"][0]
    rels: dict[str, dict[str, list[dict[str, Any]]]] = {
        "ATLAS": {
            "sequences": [
                {"source": "ATLAS", "target": t["id"], "position": i} for i, t in enumerate(matrix["tactics"])
            ]
        }
    }
    for t in matrix["techniques"]:
        if "subtechnique-of" in t:
            rels[t["id"]] = {"specializes": [{"source": t["id"], "target": t["subtechnique-of"]}]}
        else:
            rels[t["id"]] = {"achieves": [{"source": t["id"], "target": x} for x in t["tactics"]]}
    # the v6 mappings are keyed by ID; list them in reverse order to prove the sequences decide
    doc = {
        "format-version": "6.0.0",
        "collection": {"version": "2026.05"},
        "matrix": {"id": "ATLAS"},
        "tactics": {t["id"]: {"id": t["id"], "name": t["name"]} for t in reversed(matrix["tactics"])},
        "techniques": {t["id"]: {"id": t["id"], "name": t["name"]} for t in matrix["techniques"]},
        "relationships": rels,
    }
    v6 = parse_official(doc).to_json()
    v5 = parse_official(official).to_json()
    for d in (v5, v6):
        d.pop("version")
        d.pop("source")
    assert v6 == v5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("- just\n- a list\n", "mapping at the top level"),
        ("foo: bar\n", "not an ATLAS release"),
        ("key: [unclosed\n", "not valid YAML"),
        ("", "mapping at the top level"),
        ({"format-version": "7.0.0", "tactics": {}, "techniques": {}}, "unsupported ATLAS format-version"),
        ({"version": "5.6.0", "matrices": [{"tactics": [], "techniques": []}]}, "no tactics"),
        ({"format-version": "6.0.0", "collection": {"version": "2026.05"}}, "no tactics"),
        ({"format-version": "6.0.0", "tactics": {"AML.TA0005": {"name": "Execution"}}}, "no release version"),
    ],
)
def test_garbage_raises_clear_error(data: Any, message: str) -> None:
    with pytest.raises(AtlasFormatError, match=message):
        parse_official(data)


def test_v6_inconsistencies_are_rejected() -> None:
    doc = _v6_doc()
    doc["relationships"]["AML.T0024.002"]["specializes"][0]["target"] = "AML.T0099"
    with pytest.raises(AtlasFormatError, match="unknown parent technique AML.T0099"):
        parse_official(doc)
    doc = _v6_doc()
    doc["relationships"]["AML.T0051"]["achieves"][0]["target"] = "AML.TA0099"
    with pytest.raises(AtlasFormatError, match="unknown tactics"):
        parse_official(doc)
    doc = _v6_doc()
    del doc["relationships"]["AML.T0043"]
    with pytest.raises(AtlasFormatError, match="AML.T0043 .* belongs to no tactic"):
        parse_official(doc)
    doc = _v6_doc()
    doc["techniques"]["AML.T0051"]["name"] = ""
    with pytest.raises(AtlasFormatError, match="technique AML.T0051: missing `name`"):
        parse_official(doc)


@needs_official
def test_v5_inconsistencies_are_rejected(official: dict[str, Any]) -> None:
    doc = copy.deepcopy(official)
    doc["matrices"][0]["techniques"][0]["tactics"] = ["AML.TA0099"]
    with pytest.raises(AtlasFormatError, match="AML.T0000 names unknown tactics"):
        parse_official(doc)
    doc = copy.deepcopy(official)
    doc["matrices"][0]["techniques"][0]["id"] = "T0000"
    with pytest.raises(AtlasFormatError, match="not a well-formed ATLAS id"):
        parse_official(doc)


# --------------------------------------------------------------------- refresh


@needs_official
def test_update_catalog_from_file_round_trips(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "catalog.json"
    written = update_catalog(str(OFFICIAL_YAML), dest)
    assert dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == ["catalog.json"]  # no temp file left
    loaded = load_catalog(dest)
    assert loaded == written
    assert loaded.source == str(OFFICIAL_YAML)
    assert loaded.version == "5.6.0"
    assert loaded.to_json() == AtlasCatalog.from_json(json.loads(dest.read_text("utf-8"))).to_json()
    assert loaded.to_json() | {"source": ""} == load_catalog().to_json() | {"source": ""}


def test_update_catalog_leaves_existing_file_on_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("foo: bar\n", encoding="utf-8")
    dest = tmp_path / "catalog.json"
    dest.write_text("previous", encoding="utf-8")
    with pytest.raises(AtlasFormatError):
        update_catalog(str(bad), dest)
    assert dest.read_text(encoding="utf-8") == "previous"


def test_update_catalog_v6_file(tmp_path: Path) -> None:
    src = tmp_path / "ATLAS-2026.05.yaml"
    src.write_text(yaml.safe_dump(_v6_doc()), encoding="utf-8")
    dest = tmp_path / "catalog.json"
    cat = update_catalog(str(src), dest, source_label="dist/v6/ATLAS-2026.05.yaml")
    assert load_catalog(dest) == cat
    assert load_catalog(dest).source == "dist/v6/ATLAS-2026.05.yaml"


def test_load_catalog_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(AtlasFormatError, match="nope.json"):
        load_catalog(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(AtlasFormatError, match="broken.json: not valid JSON"):
        load_catalog(broken)


def test_cli_build_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "v6.yaml"
    src.write_text(yaml.safe_dump(_v6_doc()), encoding="utf-8")
    dest = tmp_path / "catalog.json"
    assert main(["build", str(src), "--dest", str(dest)]) == 0
    assert "2026.05" in capsys.readouterr().out
    assert main(["info", str(dest)]) == 0
    assert "tactics=3" in capsys.readouterr().out
    assert main(["build", str(tmp_path / "missing.yaml"), "--dest", str(dest)]) == 1
    assert "error:" in capsys.readouterr().err


# ------------------------------------------------- download logic (in-memory transport)


def _mock_client(routes: dict[str, bytes]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        body = routes.get(str(request.url))
        return httpx.Response(404) if body is None else httpx.Response(200, content=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_fetch_follows_atlas_latest_pointers() -> None:
    base = "https://raw.githubusercontent.com/mitre-atlas/atlas-data/main/dist/"
    release = yaml.safe_dump(_v6_doc()).encode()
    client = _mock_client(
        {
            base + "ATLAS-latest.yaml": b"v6/ATLAS-latest.yaml",
            base + "v6/ATLAS-latest.yaml": b"ATLAS-2026.05.yaml\n",
            base + "v6/ATLAS-2026.05.yaml": release,
        }
    )
    body, final = catalog_module._fetch_release(base + "ATLAS-latest.yaml", client)
    assert final == base + "v6/ATLAS-2026.05.yaml"
    assert parse_official(body, source=final).version == "2026.05"


def test_fetch_errors_and_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _mock_client({"https://example.test/big.yaml": b"x: " + b"y" * 200})
    with pytest.raises(AtlasFormatError, match="could not download"):
        catalog_module._fetch_release("https://example.test/missing.yaml", client)
    monkeypatch.setattr(catalog_module, "MAX_SOURCE_BYTES", 100)
    with pytest.raises(AtlasFormatError, match="cap"):
        catalog_module._fetch_release("https://example.test/big.yaml", client)
