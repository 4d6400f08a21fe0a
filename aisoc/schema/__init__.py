"""The field registry: one YAML file that every field list in aisoc is generated from."""

from aisoc.schema.registry import FieldDef, FieldRegistry, load_registry

__all__ = ["FieldDef", "FieldRegistry", "load_registry"]
