"""Reference docs generated from the code and the pack: configuration (from the pydantic model) and
rules (from the rule files with their ATLAS mapping). `aisoc docs` writes them to docs/."""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel

from aisoc.atlas.catalog import AtlasCatalog, Technique
from aisoc.config import AisocConfig
from aisoc.rules.loader import RuleFile


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is None:
        return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "null")
    args = ", ".join(_type_name(a) for a in get_args(annotation))
    return f"{getattr(origin, '__name__', str(origin))}[{args}]".replace("UnionType", "one of")


def _model_rows(model: type[BaseModel], prefix: str, rows: list[str]) -> None:
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        nested = next((a for a in (annotation, *get_args(annotation))
                       if isinstance(a, type) and issubclass(a, BaseModel)), None)
        default = "" if field.is_required() else repr(field.get_default(call_default_factory=True))
        if nested is not None and get_origin(annotation) is not dict:
            rows.append(f"| `{path}` | section | {field.description or nested.__doc__ or ''} | |".replace("\n", " "))
            _model_rows(nested, f"{path}.", rows)
        else:
            desc = (field.description or "").replace("|", "\\|")
            rows.append(f"| `{path}` | {_type_name(annotation)} | {desc} | `{default}` |".replace("\n", " "))
        value_model = next((a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)),
                           None)
        if get_origin(annotation) is dict and value_model is not None:
            _model_rows(value_model, f"{path}.<name>.", rows)


def _collector_sections() -> list[str]:
    """One table per collector type: the `options` a `collectors.<name>` entry of that type takes."""
    from aisoc.collectors.registry import REPLAYERS, option_models

    models = option_models()
    out = ["", "## Collector options", "",
           "`collectors.<name>.options` by `type`. Types without a table take no options or only those named",
           "in their description. A push source (`receiver.sources.<name>`) of kind `kserve` or `mlflow_webhook`",
           "takes the options of the `kserve` or `mlflow` type.", ""]
    for kind in sorted(REPLAYERS):
        out.append(f"### `{kind}`")
        out.append("")
        model = models.get(kind)
        doc = (REPLAYERS[kind].__doc__ or "").strip().split("\n")[0]
        if doc:
            out += [doc, ""]
        if model is None:
            continue
        rows: list[str] = []
        _model_rows(model, "", rows)
        out += ["| option | type | meaning | default |", "|---|---|---|---|", *rows, ""]
    return out


def config_reference() -> str:
    rows: list[str] = []
    _model_rows(AisocConfig, "", rows)
    return "\n".join([
        "# Configuration reference (`aisoc.yml`)",
        "",
        "Generated from `aisoc/config.py` by `aisoc docs`; do not edit by hand. `${VAR}` in any string",
        "is replaced by the environment variable VAR (`${VAR:-default}` for a default). Check a file with",
        "`aisoc config check aisoc.yml`.",
        "",
        "| key | type | meaning | default |",
        "|---|---|---|---|",
        *rows,
        *_collector_sections(),
        "",
    ])


def _technique_label(tech: Technique) -> str:
    return f"[{tech.id}](https://atlas.mitre.org/techniques/{tech.id}/) {tech.name}"


def rule_reference(rules: list[RuleFile], catalog: AtlasCatalog) -> str:
    out = ["# Rule reference", "", "Generated from `rules/` by `aisoc docs`; do not edit by hand.", ""]
    for layer in ("data", "model", "inference", "supply_chain"):
        layer_rules = sorted((r for r in rules if r.layer == layer), key=lambda r: r.title)
        out += [f"## {layer.replace('_', ' ').title()} layer ({len(layer_rules)} rules)", ""]
        for rule in layer_rules:
            techniques = [t for t in (catalog.resolve_tag(tag) for tag in rule.atlas_tags) if isinstance(t, Technique)]
            kind = f"correlation ({rule.primary.type.name.lower()})" if rule.is_correlation else "single event"  # type: ignore[union-attr]
            positives = sum(1 for c in rule.meta.tests if c.expect == "match")
            out += [
                f"### {rule.title}",
                "",
                f"`{rule.path.parent.name}/{rule.path.name}` · id `{rule.rule_id}` · level {rule.primary.level.name.lower() if rule.primary.level else '-'}"  # noqa: E501
                f" · {kind} · owner {rule.meta.owner}",
                "",
                " ".join((rule.primary.description or "").split()),
                "",
                "ATLAS: " + ("; ".join(_technique_label(t) for t in techniques) or "-"),
                "",
                f"Playbooks: {', '.join(rule.meta.playbooks) or '-'} · test cases: {positives} attack, "
                f"{len(rule.meta.tests) - positives} look-alike",
                "",
            ]
    return "\n".join(out)
