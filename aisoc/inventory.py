"""The AI asset inventory: every AI system, who owns it, what it is made of, which ATLAS techniques apply.

The 30-60-90 plan starts here ("Day 0-30: inventory all AI systems, owners, data sources, models,
endpoints and pipelines; map them to ATLAS techniques"). ``inventory.yml`` looks like::

    version: 1
    systems:
      - id: fraud-classifier              # unique slug, used by metrics and alert enrichment
        name: Card fraud classifier
        criticality: critical             # low | medium | high | critical
        owner: {team: Data Science, person: ana.lima@example.com}
        data_sources:
          - {id: card-transactions, approved: true, provenance: "core banking ledger export, DPA-2023-114"}
        models:
          - {registry: mlflow, name: fraud-detector, production_alias: champion,
             lineage_documented: true, signing_required: true}
        endpoints:
          - {kind: kserve, name: fraud-detector, namespace: fraud, canary: true}
        pipelines:
          - {name: fraud-train, identities: [svc-fraud-train]}
        atlas: [AML.T0015, AML.T0024.002]

:func:`load_inventory` parses it safely (:mod:`aisoc.safeyaml`) and reports shape errors with file,
line and what to do; :func:`check_inventory` says what is missing (owner, lineage, provenance,
approval, unknown ATLAS ids, duplicate ids). Flags left out (``approved``, ``lineage_documented``)
count as ``false``: nothing is documented until someone says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from aisoc.atlas.catalog import AtlasCatalog, Tactic, load_catalog
from aisoc.findings import Finding
from aisoc.safeyaml import YamlLoadError, line_of, load_all, read_text_capped

__all__ = [
    "AISystem",
    "DataSource",
    "Endpoint",
    "Inventory",
    "InventoryError",
    "Model",
    "Owner",
    "Pipeline",
    "check_inventory",
    "load_inventory",
]

MAX_INVENTORY_BYTES = 1024 * 1024
Criticality = Literal["low", "medium", "high", "critical"]
_SLUG = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Owner(_Strict):
    """Who answers for the system: a team (for routing) and a named person (for decisions)."""

    team: str | None = None
    person: str | None = None

    _blank = field_validator("team", "person", mode="before")(_blank_to_none)

    @property
    def documented(self) -> bool:
        """Both a team and a person are named."""
        return bool(self.team and self.person)


class DataSource(_Strict):
    """A source of training, fine-tuning or retrieval data."""

    id: str = Field(pattern=_SLUG)
    name: str | None = None
    approved: bool = False
    provenance: str | None = Field(None, description="where the data comes from and under what terms")
    description: str | None = None

    _blank = field_validator("provenance", mode="before")(_blank_to_none)


class Model(_Strict):
    """A model the system serves or depends on."""

    registry: str = Field(description="mlflow, huggingface, litellm, openai, ... (where the model is kept)")
    name: str
    production_alias: str | None = Field(None, description="alias or stage serving production (MLflow alias)")
    revision: str | None = Field(None, description="pinned revision (Hugging Face commit, provider version)")
    lineage_documented: bool = False
    signing_required: bool = False
    description: str | None = None


class Endpoint(_Strict):
    """Where the system answers requests: an LLM gateway model group, a KServe service, an HTTP API."""

    kind: Literal["gateway", "kserve", "seldon", "http"]
    name: str
    namespace: str | None = None
    canary: bool = False
    description: str | None = None


class Pipeline(_Strict):
    """A training, ingestion or deployment pipeline and the identities allowed to act as it."""

    name: str
    identities: list[str] = Field(default_factory=list)
    description: str | None = None


class AISystem(_Strict):
    """One AI system in the inventory."""

    id: str = Field(pattern=_SLUG)
    name: str
    description: str | None = None
    criticality: Criticality
    owner: Owner | None = None
    data_sources: list[DataSource] = Field(default_factory=list)
    models: list[Model] = Field(default_factory=list)
    endpoints: list[Endpoint] = Field(default_factory=list)
    pipelines: list[Pipeline] = Field(default_factory=list)
    atlas: list[str] = Field(default_factory=list, description="ATLAS technique ids that apply (AML.T0051)")

    @field_validator("criticality", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def owner_documented(self) -> bool:
        """Owner team and person are both named."""
        return self.owner is not None and self.owner.documented

    @property
    def lineage_documented(self) -> bool | None:
        """Every model has documented lineage; None when the system lists no model."""
        return all(m.lineage_documented for m in self.models) if self.models else None

    @property
    def provenance_documented(self) -> bool | None:
        """Every data source has a provenance; None when the system lists no data source."""
        return all(d.provenance for d in self.data_sources) if self.data_sources else None

    @property
    def fully_documented(self) -> bool:
        """Owner, lineage and provenance all documented (lineage/provenance count when not applicable)."""
        return self.owner_documented and self.lineage_documented is not False and (
            self.provenance_documented is not False
        )


class Inventory(_Strict):
    """The whole inventory. Built by :func:`load_inventory` (which remembers file and lines) or in code."""

    version: Literal[1] = 1
    systems: list[AISystem] = Field(default_factory=list)
    _path: str = PrivateAttr(default="inventory")
    _text: str = PrivateAttr(default="")
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @property
    def path(self) -> str:
        """File the inventory was read from (``inventory`` when built in code)."""
        return self._path

    def line(self, *loc: str | int) -> int | None:
        """Line of a key or list item (``line("systems", 2, "models", 0)``); nearest known ancestor otherwise."""
        for end in range(len(loc), 0, -1):
            found = self._lines.get(tuple(loc[:end]))
            if found is not None:
                return found
        return None

    def system(self, system_id: str) -> AISystem | None:
        """The system with this id (first one if duplicated)."""
        return next((s for s in self.systems if s.id == system_id), None)


class InventoryError(YamlLoadError):
    """The inventory cannot be read; ``findings`` lists every problem (the message names the first)."""

    def __init__(self, path: Path | str, findings: list[Finding]) -> None:
        self.findings = findings
        first = findings[0]
        extra = f" (and {len(findings) - 1} more problem(s))" if len(findings) > 1 else ""
        super().__init__(path, first.message + extra, first.line, first.fix)


# ------------------------------------------------------------------ loading


def _node_lines(node: yaml.Node, loc: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]) -> None:
    """Record the 1-based line of every mapping key and sequence item under `node`."""
    out.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                sub = (*loc, key.value)
                out[sub] = key.start_mark.line + 1
                _node_lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = (*loc, index)
            out[sub] = item.start_mark.line + 1
            _node_lines(item, sub, out)


def _line_map(text: str) -> dict[tuple[str | int, ...], int]:
    # Only called after aisoc.safeyaml has parsed the same text (no aliases, size-capped), so composing
    # it again with the plain SafeLoader is safe; composing keeps the marks the data has lost.
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    out: dict[tuple[str | int, ...], int] = {}
    if root is not None:
        _node_lines(root, (), out)
    return out


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or fix its spelling",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "literal_error": "use one of the values listed",
    "string_pattern_mismatch": "use letters, digits, '.', '_' and '-' only, starting with a letter or digit",
    "list_type": "write a YAML list (one '- item' per line)",
    "model_type": "write a mapping (key: value)",
    "string_type": "write a text value",
}


def _loc_text(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_findings(exc: ValidationError, path: str, lines: dict[tuple[str | int, ...], int],
                         text: str) -> list[Finding]:
    findings: list[Finding] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        line = None
        for end in range(len(loc), -1, -1):
            line = lines.get(loc[:end])
            if line is not None:
                break
        if line is None and loc and isinstance(loc[-1], str):
            line = line_of(text, f"{loc[-1]}:")
        what = _loc_text(loc) or "inventory"
        findings.append(
            Finding(path, f"inventory.{err['type']}", f"{what}: {err['msg']}",
                    _FIXES.get(err["type"], "see the example in examples/inventory.yml"), line)
        )
    return findings


def load_inventory(path: Path | str) -> Inventory:
    """Read and validate ``inventory.yml``; raises :class:`InventoryError` naming file, line and fix."""
    path = Path(path)
    spath = str(path)
    try:
        text = read_text_capped(path, MAX_INVENTORY_BYTES)
        docs = [d for d in load_all(text, path) if d is not None]
    except YamlLoadError as exc:
        raise InventoryError(spath, [Finding(spath, "inventory.yaml", exc.message, exc.fix, exc.line)]) from None
    if len(docs) != 1:
        message = "file holds no YAML document" if not docs else f"file holds {len(docs)} YAML documents"
        raise InventoryError(spath, [Finding(spath, "inventory.structure", message,
                                             "write one document: 'version: 1' and 'systems: [...]'", 1)])
    data = docs[0]
    if isinstance(data, list):
        data = {"systems": data}
    if not isinstance(data, dict):
        raise InventoryError(spath, [Finding(spath, "inventory.structure", "the top level must be a mapping",
                                             "start the file with 'version: 1' and 'systems:'", 1)])
    lines = _line_map(text)
    if isinstance(docs[0], list):
        lines = {("systems", *k): v for k, v in lines.items()}
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(spath, _validation_findings(exc, spath, lines, text)) from None
    inventory._path = spath
    inventory._text = text
    inventory._lines = lines
    return inventory


# ----------------------------------------------------------------- checking


def check_inventory(inv: Inventory, catalog: AtlasCatalog | None = None) -> list[Finding]:
    """What the inventory fails to document, one :class:`Finding` each, in file order.

    Codes: ``inventory.duplicate-id`` (system ids; data-source ids and models within a system),
    ``inventory.no-owner`` (no owner, or no team or person), ``inventory.no-lineage`` (model),
    ``inventory.no-provenance`` and ``inventory.unapproved-source`` (data source),
    ``inventory.unknown-atlas`` (id not a technique in the catalog), and warnings
    ``inventory.no-atlas`` (system mapped to no technique) and ``inventory.empty-system``
    (no model and no data source listed).
    """
    catalog = catalog or load_catalog()
    path = inv.path
    out: list[Finding] = []

    def add(code: str, message: str, fix: str, loc: tuple[str | int, ...], rule_id: str | None = None,
            severity: Literal["error", "warning"] = "error") -> None:
        out.append(Finding(path, code, message, fix, inv.line(*loc), rule_id, severity))

    seen: dict[str, int] = {}
    for i, system in enumerate(inv.systems):
        sid = system.id
        where = ("systems", i)
        if sid in seen:
            add("inventory.duplicate-id", f"system id {sid!r} is used again (first at systems[{seen[sid]}])",
                "give every system its own id, or merge the two entries", (*where, "id"), sid)
        else:
            seen[sid] = i

        if system.owner is None:
            add("inventory.no-owner", f"system {sid!r} has no owner",
                "add 'owner: {team: ..., person: ...}' naming who answers for it", where, sid)
        elif not system.owner.documented:
            missing = " and ".join(k for k in ("team", "person") if not getattr(system.owner, k))
            add("inventory.no-owner", f"system {sid!r} owner has no {missing}",
                f"add the owner's {missing}", (*where, "owner"), sid)

        sources: dict[str, int] = {}
        for j, source in enumerate(system.data_sources):
            sloc = (*where, "data_sources", j)
            if source.id in sources:
                add("inventory.duplicate-id", f"system {sid!r} lists data source {source.id!r} twice",
                    "keep one entry per data source", (*sloc, "id"), sid)
                continue
            sources[source.id] = j
            if not source.provenance:
                add("inventory.no-provenance", f"data source {source.id!r} of {sid!r} has no provenance",
                    "add 'provenance:' saying where the data comes from and under what agreement", sloc, sid)
            if not source.approved:
                add("inventory.unapproved-source", f"data source {source.id!r} of {sid!r} is not approved",
                    "get it approved and set 'approved: true', or stop ingesting from it",
                    (*sloc, "approved"), sid)

        models: dict[tuple[str, str], int] = {}
        for j, model in enumerate(system.models):
            mloc = (*where, "models", j)
            key = (model.registry.lower(), model.name)
            label = f"{model.registry}:{model.name}"
            if key in models:
                add("inventory.duplicate-id", f"system {sid!r} lists model {label} twice",
                    "keep one entry per model", mloc, sid)
                continue
            models[key] = j
            if not model.lineage_documented:
                add("inventory.no-lineage", f"model {label} of {sid!r} has no documented lineage",
                    "record the training run, data and code it came from (or the pinned upstream "
                    "revision), then set 'lineage_documented: true'", (*mloc, "lineage_documented"), sid)

        if not system.atlas:
            add("inventory.no-atlas", f"system {sid!r} is mapped to no ATLAS technique",
                "list the ATLAS techniques that apply under 'atlas:' (e.g. AML.T0051)", where, sid, "warning")
        for j, tid in enumerate(system.atlas):
            aloc = (*where, "atlas", j)
            tech = catalog.technique(tid)
            if tech is not None:
                continue
            tactic = catalog.tactic(tid) if isinstance(tid, str) and tid.upper().startswith("AML.TA") else None
            hint = (f"{tid} is the tactic {tactic.name}; list its techniques instead" if isinstance(tactic, Tactic)
                    else f"use a technique id from ATLAS {catalog.version} (AML.T0000 or AML.T0000.000)")
            add("inventory.unknown-atlas", f"system {sid!r}: {tid!r} is not an ATLAS technique", hint, aloc, sid)

        if not system.models and not system.data_sources:
            add("inventory.empty-system", f"system {sid!r} lists no model and no data source",
                "inventory what it is made of: its models and data sources", where, sid, "warning")
    return out


def applicable_techniques(system: AISystem, catalog: AtlasCatalog) -> list[str]:
    """The system's ATLAS ids the catalog knows, canonical spelling, each once, in listed order."""
    out: list[str] = []
    for tid in system.atlas:
        tech = catalog.technique(tid)
        if tech is not None and tech.id not in out:
            out.append(tech.id)
    return out
