"""The field reference (docs/fields.md), generated from the registry."""

from __future__ import annotations

from aisoc.schema.registry import FieldRegistry, load_registry

_TITLES = {"ecs": "ECS fields", "gen_ai": "ECS gen_ai fields (LLM calls)", "aisoc": "aisoc custom fields"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def field_reference(registry: FieldRegistry | None = None) -> str:
    registry = registry or load_registry()
    out = [
        "# Field reference",
        "",
        "Generated from `aisoc/schema/fields.yml` by `aisoc schema docs`; do not edit by hand.",
        f"ECS fields follow ECS {registry.ecs_version}. Custom fields live under `aisoc.*`.",
        "",
    ]
    for source, title in _TITLES.items():
        out += [f"## {title}", "", "| field | type | description |", "|---|---|---|"]
        for f in registry.by_source(source):
            desc = f.description
            if f.array:
                desc += " (array)"
            if f.allowed_values and not any(v.extra for v in f.allowed_values):
                desc += " Allowed: " + ", ".join(f"`{v.name}`" for v in f.allowed_values) + "."
            if f.ecs_deviation:
                desc += f" Deviation from ECS: {f.ecs_deviation}"
            out.append(f"| `{f.name}` | {f.type} | {_cell(desc)} |")
        out.append("")
    signal = registry.get("aisoc.signal.name")
    if signal is not None:
        out += ["## Analyzer signals (`aisoc.signal.name`)", "",
                "| signal | what | formula | window | default threshold |", "|---|---|---|---|---|"]
        for v in signal.allowed_values:
            out.append(f"| `{v.name}` | {_cell(v.description)} | {_cell(v.extra.get('formula', ''))} | "
                       f"{_cell(v.extra.get('window', ''))} | {_cell(v.extra.get('default_threshold', ''))} |")
        out.append("")
    return "\n".join(out)
