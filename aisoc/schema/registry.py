"""Load and query the field registry (`fields.yml`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGISTRY_PATH = Path(__file__).with_name("fields.yml")

NUMERIC_TYPES = frozenset({"long", "integer", "short", "byte", "float", "double", "half_float", "scaled_float"})
STRING_TYPES = frozenset({"keyword", "wildcard", "constant_keyword", "match_only_text", "text", "ip"})
KNOWN_TYPES = NUMERIC_TYPES | STRING_TYPES | {"date", "boolean", "object", "flattened"}
SOURCES = frozenset({"ecs", "gen_ai", "aisoc"})


class RegistryError(ValueError):
    """The registry file itself is inconsistent."""


@dataclass(frozen=True)
class AllowedValue:
    name: str
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    source: str
    description: str
    array: bool = False
    example: str | None = None
    allowed_values: tuple[AllowedValue, ...] = ()
    ecs_deviation: str | None = None

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    @property
    def allowed_names(self) -> frozenset[str]:
        return frozenset(v.name for v in self.allowed_values)


@dataclass(frozen=True)
class FieldRegistry:
    ecs_version: str
    fields: dict[str, FieldDef]

    def get(self, name: str) -> FieldDef | None:
        return self.fields.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def is_known(self, name: str) -> bool:
        """A field a rule may name: a registered leaf, or a key below an `object` field (`labels.env`)."""
        if name in self.fields:
            return True
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = self.fields.get(".".join(parts[:i]))
            if parent is not None and parent.type in ("object", "flattened"):
                return True
        return False

    def by_source(self, source: str) -> list[FieldDef]:
        return [f for f in self.fields.values() if f.source == source]


def _allowed(raw: Any, where: str) -> tuple[AllowedValue, ...]:
    values = []
    for item in raw or ():
        if isinstance(item, str):
            values.append(AllowedValue(item))
        elif isinstance(item, dict) and "name" in item:
            extra = {k: str(v) for k, v in item.items() if k not in ("name", "description")}
            values.append(AllowedValue(str(item["name"]), str(item.get("description", "")), extra))
        else:
            raise RegistryError(f"{where}: allowed_values entries must be strings or mappings with 'name'")
    return tuple(values)


def parse_registry(data: Any, origin: str = "fields.yml") -> FieldRegistry:
    if not isinstance(data, dict) or not isinstance(data.get("fields"), list):
        raise RegistryError(f"{origin}: expected a mapping with a 'fields' list")
    fields: dict[str, FieldDef] = {}
    for i, raw in enumerate(data["fields"]):
        where = f"{origin}: fields[{i}]"
        if not isinstance(raw, dict) or not raw.get("name") or not raw.get("type"):
            raise RegistryError(f"{where}: every field needs 'name' and 'type'")
        name = str(raw["name"])
        if name in fields:
            raise RegistryError(f"{where}: field {name!r} is declared twice")
        if raw["type"] not in KNOWN_TYPES:
            raise RegistryError(f"{where}: field {name!r} has unknown type {raw['type']!r}")
        source = raw.get("source")
        if source not in SOURCES:
            raise RegistryError(f"{where}: field {name!r} needs source ecs, gen_ai or aisoc")
        if source == "aisoc" and not name.startswith("aisoc."):
            raise RegistryError(f"{where}: custom field {name!r} must live under the 'aisoc.' namespace")
        if not raw.get("description"):
            raise RegistryError(f"{where}: field {name!r} needs a description")
        fields[name] = FieldDef(
            name=name,
            type=str(raw["type"]),
            source=str(source),
            description=str(raw["description"]),
            array=bool(raw.get("array", False)),
            example=None if raw.get("example") is None else str(raw["example"]),
            allowed_values=_allowed(raw.get("allowed_values"), where),
            ecs_deviation=raw.get("ecs_deviation"),
        )
    return FieldRegistry(ecs_version=str(data.get("ecs_version", "")), fields=fields)


@functools.lru_cache(maxsize=4)
def load_registry(path: Path = REGISTRY_PATH) -> FieldRegistry:
    with open(path, encoding="utf-8") as fh:
        return parse_registry(yaml.safe_load(fh), origin=str(path))
