"""The field registry is the single source of truth, and its ECS part agrees with ECS itself."""

from __future__ import annotations

import functools

import pytest
import yaml

from aisoc.schema import load_registry
from aisoc.schema.docs import field_reference
from aisoc.schema.registry import RegistryError, parse_registry
from aisoc.schema.templates import component_template, index_templates
from tests.conftest import SHARED


@functools.cache
def ecs_flat() -> dict:
    with open(SHARED / "elastic" / "ecs_flat.yml", encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def test_every_ecs_and_gen_ai_field_exists_in_ecs_with_its_type() -> None:
    registry = load_registry()
    ecs = ecs_flat()
    checked = 0
    for field in [*registry.by_source("ecs"), *registry.by_source("gen_ai")]:
        assert field.name in ecs, f"{field.name} is not an ECS {registry.ecs_version} field"
        if field.ecs_deviation:
            assert ecs[field.name]["type"] != field.type, f"{field.name}: deviation declared but types agree"
        else:
            assert ecs[field.name]["type"] == field.type, f"{field.name}: ECS says {ecs[field.name]['type']}"
        checked += 1
    assert checked > 80


def test_gen_ai_fields_are_ecs_gen_ai_and_custom_fields_stay_under_aisoc() -> None:
    registry = load_registry()
    assert all(f.name.startswith("gen_ai.") for f in registry.by_source("gen_ai"))
    assert {f.name for f in registry.by_source("gen_ai")} >= {"gen_ai.request.model", "gen_ai.usage.input_tokens"}
    assert all(f.name.startswith("aisoc.") for f in registry.by_source("aisoc"))
    ecs = ecs_flat()
    assert not [f.name for f in registry.by_source("aisoc") if f.name in ecs]


def test_allowed_values_we_declare_for_ecs_fields_are_ecs_allowed_values() -> None:
    ecs = ecs_flat()
    for field in load_registry().by_source("ecs"):
        if field.allowed_values:
            official = {v["name"] for v in ecs[field.name].get("allowed_values") or []}
            assert field.allowed_names <= official, field.name


def test_ecs_version_matches_the_reference_copy() -> None:
    assert load_registry().ecs_version == "9.4.0"


def test_every_signal_documents_formula_window_and_threshold() -> None:
    signal = load_registry().get("aisoc.signal.name")
    assert signal is not None and len(signal.allowed_values) >= 10
    for value in signal.allowed_values:
        assert value.description and {"formula", "window", "default_threshold"} <= set(value.extra), value.name


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"fields": [{"name": "x.y", "type": "keyword", "source": "aisoc", "description": "d"}]}, "'aisoc.'"),
        ({"fields": [{"name": "aisoc.a", "type": "strng", "source": "aisoc", "description": "d"}]}, "unknown type"),
        ({"fields": [{"name": "aisoc.a", "type": "keyword", "source": "aisoc", "description": "d"}] * 2}, "twice"),
        ({"fields": [{"name": "aisoc.a", "type": "keyword", "source": "aisoc"}]}, "description"),
        ({"nope": []}, "'fields' list"),
    ],
)
def test_registry_errors_are_explained(doc: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_registry(doc)


def test_index_templates_cover_every_field_and_layer() -> None:
    registry = load_registry()
    properties = component_template()["template"]["mappings"]["properties"]
    for field in registry.fields.values():
        node = {"properties": properties}
        for part in field.name.split("."):
            node = node["properties"][part]
        expected = "keyword" if field.type == "wildcard" else field.type
        assert node["type"] == expected, field.name
        if expected == "keyword" and field.name != "event.original":
            assert node["normalizer"] == "lowercase", field.name
    templates = index_templates()
    assert set(templates) == {f"logs-aisoc.{d}" for d in ("data", "model", "inference", "supply_chain", "alerts")}
    assert templates["logs-aisoc.inference"]["index_patterns"] == ["logs-aisoc.inference-*"]
    assert all("data_stream" in t for t in templates.values())


def test_field_reference_lists_every_field() -> None:
    text = field_reference()
    for name in load_registry().fields:
        assert f"`{name}`" in text
    assert "api_key_logprobs_share" in text


def test_generated_field_reference_in_docs_is_current() -> None:
    from tests.conftest import REPO

    assert (REPO / "docs" / "fields.md").read_text(encoding="utf-8").rstrip() == field_reference().rstrip(), (
        "docs/fields.md is stale: run 'aisoc schema docs -o docs/fields.md'"
    )
