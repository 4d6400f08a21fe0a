"""Elasticsearch index templates generated from the field registry.

One component template holds every registered field's mapping; one index template per layer
(plus alerts) makes `logs-aisoc.<dataset>-*` a data stream using it.

Sigma compares strings case-insensitively, Elasticsearch keyword fields do not. So that a rule
means the same on Elasticsearch as on the embedded engine, every keyword-family field (ECS
`wildcard` fields included, mapped as keyword: both are in ECS's keyword family) gets the built-in
`lowercase` normalizer: term, wildcard and prefix queries and aggregations see lowercase values,
while `_source` keeps the original. Unregistered string fields get the same treatment.
"""

from __future__ import annotations

from typing import Any

from aisoc.rules.model import LAYERS
from aisoc.schema.registry import FieldRegistry, load_registry

COMPONENT_TEMPLATE = "aisoc-fields"
DATASETS = (*LAYERS, "alerts")
TEMPLATE_PRIORITY = 250  # above the built-in logs-*-* template (100)


CASELESS_KEYWORD: dict[str, Any] = {"type": "keyword", "ignore_above": 1024, "normalizer": "lowercase"}


def _leaf_mapping(field_type: str, name: str) -> dict[str, Any]:
    if name == "event.original":
        return {"type": "keyword", "index": False, "doc_values": False}
    if field_type in ("keyword", "wildcard"):
        return dict(CASELESS_KEYWORD)
    if field_type == "constant_keyword":
        return {"type": "constant_keyword"}
    if field_type == "date":
        return {"type": "date"}
    if field_type == "object":
        return {"type": "object"}
    return {"type": field_type}


# Field types that live in optional Elasticsearch modules, and the core type that stands in for each
# on a cluster without the module (e.g. a minimal distribution): same queries, less efficient storage.
SUBSTITUTES = {"match_only_text": "text", "constant_keyword": "keyword", "flattened": "object"}


def field_mappings(registry: FieldRegistry | None = None, substitute: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Nested `properties` for every registered field; types in `substitute` use their SUBSTITUTES type."""
    registry = registry or load_registry()
    root: dict[str, Any] = {}
    for fdef in registry.fields.values():
        parts = fdef.name.split(".")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}}).setdefault("properties", {})
        field_type = SUBSTITUTES[fdef.type] if fdef.type in substitute else fdef.type
        leaf = _leaf_mapping(field_type, fdef.name)
        existing = node.get(parts[-1])
        if existing and "properties" in existing:
            existing.update({k: v for k, v in leaf.items() if k != "type"})
        else:
            node[parts[-1]] = leaf
    return root


def component_template(
    registry: FieldRegistry | None = None, substitute: frozenset[str] = frozenset()
) -> dict[str, Any]:
    registry = registry or load_registry()
    return {
        "template": {
            "mappings": {
                "dynamic": True,
                "date_detection": False,
                "dynamic_templates": [
                    {"strings_as_caseless_keywords": {
                        "match_mapping_type": "string", "mapping": dict(CASELESS_KEYWORD)}},
                ],
                "properties": field_mappings(registry, substitute),
            },
        },
        "_meta": {"managed_by": "aisoc", "ecs_version": registry.ecs_version,
                  "substituted_types": sorted(substitute)},
    }


def index_templates() -> dict[str, dict[str, Any]]:
    """Name -> index template body, one per dataset."""
    return {
        f"logs-aisoc.{dataset}": {
            "index_patterns": [f"logs-aisoc.{dataset}-*"],
            "data_stream": {},
            "priority": TEMPLATE_PRIORITY,
            "composed_of": [COMPONENT_TEMPLATE],
            "_meta": {"managed_by": "aisoc"},
        }
        for dataset in DATASETS
    }
