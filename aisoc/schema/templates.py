"""Elasticsearch index templates generated from the field registry.

One component template holds every registered field's mapping; one index template per layer
(plus alerts) makes `logs-aisoc.<dataset>-*` a data stream using it.
"""

from __future__ import annotations

from typing import Any

from aisoc.rules.model import LAYERS
from aisoc.schema.registry import FieldRegistry, load_registry

COMPONENT_TEMPLATE = "aisoc-fields"
DATASETS = (*LAYERS, "alerts")
TEMPLATE_PRIORITY = 250  # above the built-in logs-*-* template (100)


def _leaf_mapping(field_type: str, name: str) -> dict[str, Any]:
    if field_type == "keyword":
        mapping: dict[str, Any] = {"type": "keyword", "ignore_above": 1024}
        if name == "event.original":
            mapping = {"type": "keyword", "index": False, "doc_values": False}
        return mapping
    if field_type == "constant_keyword":
        return {"type": "constant_keyword"}
    if field_type == "date":
        return {"type": "date"}
    if field_type == "object":
        return {"type": "object"}
    return {"type": field_type}


def field_mappings(registry: FieldRegistry | None = None) -> dict[str, Any]:
    """Nested `properties` for every registered field."""
    registry = registry or load_registry()
    root: dict[str, Any] = {}
    for fdef in registry.fields.values():
        parts = fdef.name.split(".")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}}).setdefault("properties", {})
        leaf = _leaf_mapping(fdef.type, fdef.name)
        existing = node.get(parts[-1])
        if existing and "properties" in existing:
            existing.update({k: v for k, v in leaf.items() if k != "type"})
        else:
            node[parts[-1]] = leaf
    return root


def component_template(registry: FieldRegistry | None = None) -> dict[str, Any]:
    registry = registry or load_registry()
    return {
        "template": {
            "mappings": {
                "dynamic": True,
                "date_detection": False,
                "properties": field_mappings(registry),
            },
        },
        "_meta": {"managed_by": "aisoc", "ecs_version": registry.ecs_version},
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
