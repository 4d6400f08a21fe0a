"""Playbook files: the YAML model, loading (safe, bounded) and validation into findings.

```yaml
id: throttle-api-key                 # = file name without .yml
title: Throttle a suspicious API key at the LLM gateway
description: Why and when; what the analyst checks afterwards.
owner: SOC                           # SOC | ML Ops | Data Science | Risk
trigger:                             # which alerts the playbook is for
  rules: []                          # rule ids that select it (besides alerts naming it)
  tags: [atlas.aml.t0024]            # ATLAS tags/IDs that select it
  min_severity: medium               # informational | low | medium | high | critical
  layers: [inference]                # data | model | inference | supply_chain
approval: auto                       # auto | require (a named person must approve `execute`)
steps:
  - id: throttle
    action: throttle_api_key         # one of aisoc.respond.actions.ACTIONS
    params: {key: "${aisoc.api_key.hash|aisoc.signal.entity}", rpm_limit: 10}
    undo: true                       # undo on rollback (default: whenever the action can be undone)
    on_failure: rollback             # rollback (default) | continue
```

A playbook applies to an alert that names it (`aisoc.alert.playbooks`, from the rule) or whose
rule id / ATLAS techniques its trigger lists — and, either way, only at or above `min_severity` and
in one of `layers` (when given).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from aisoc.findings import Finding
from aisoc.respond.actions import ACTIONS
from aisoc.respond.templating import check_template, flat_fields, is_templated
from aisoc.safeyaml import YamlLoadError, load_all, read_text_capped

PLAYBOOK_SUFFIXES = (".yml", ".yaml")
MAX_PLAYBOOK_BYTES = 256 * 1024
Severity = Literal["informational", "low", "medium", "high", "critical"]
Layer = Literal["data", "model", "inference", "supply_chain"]
# the same 0-100 scale as aisoc.detect.alerts.SEVERITY (event.severity of an alert)
SEVERITY_SCORE: dict[str, int] = {"informational": 0, "low": 21, "medium": 47, "high": 73, "critical": 99}
_ID = r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$"
_TECHNIQUE = re.compile(r"^(?:atlas\.)?aml\.(t\d{4}(?:\.\d{3})?|ta\d{4})$", re.IGNORECASE)


class PlaybookError(ValueError):
    """A playbook file that cannot be used; `findings` say where and why."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("; ".join(f"{f.location()}: {f.message}" for f in findings))


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[str] = Field(default_factory=list, description="rule ids that select this playbook")
    tags: list[str] = Field(default_factory=list, description="ATLAS tags or IDs that select this playbook")
    min_severity: Severity = "informational"
    layers: list[Layer] = Field(default_factory=list)

    def selects(self, alert: Mapping[str, Any]) -> bool:
        """Does the rule id or an ATLAS id/tactic of the alert match the trigger's rules/tags?"""
        flat = flat_fields(alert)
        if str(flat.get("rule.id")) in self.rules:
            return True
        if not self.tags:
            return False
        ids = {str(i).upper() for key in ("threat.technique.id", "threat.technique.subtechnique.id",
                                          "threat.tactic.id") for i in _as_list(flat.get(key))}
        tactics = {"-".join(str(n).lower().split()) for n in _as_list(flat.get("threat.tactic.name"))}
        for tag in self.tags:
            match = _TECHNIQUE.match(tag.strip())
            if match and f"AML.{match.group(1).upper()}" in ids:
                return True
            short = tag.strip().lower().removeprefix("atlas.")
            if not match and short in tactics:
                return True
        return False

    def admits(self, alert: Mapping[str, Any]) -> tuple[bool, str]:
        """The severity and layer gates."""
        flat = flat_fields(alert)
        try:
            severity = float(flat.get("event.severity", flat.get("event.risk_score", 0)) or 0)
        except (TypeError, ValueError):
            severity = 0.0
        if severity < SEVERITY_SCORE[self.min_severity]:
            return False, f"alert severity {severity:g} is below the playbook's min_severity {self.min_severity}"
        layer = flat.get("aisoc.layer") or flat.get("rule.category")
        if self.layers and layer not in self.layers:
            return False, f"alert layer {layer!r} is not one of {', '.join(self.layers)}"
        return True, ""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    action: str
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    undo: bool | None = Field(None, description="undo this step on rollback (default: if the action can)")
    on_failure: Literal["rollback", "continue"] = "rollback"

    @property
    def should_undo(self) -> bool:
        cls = ACTIONS.get(self.action)
        return bool(cls and cls.undoable and self.undo is not False)


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=3, max_length=200)
    description: str = ""
    owner: Literal["SOC", "ML Ops", "Data Science", "Risk"] = "SOC"
    trigger: Trigger = Field(default_factory=Trigger)
    approval: Literal["auto", "require"] = "require"
    steps: list[Step] = Field(min_length=1, max_length=50)
    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> Path | None:
        return self._path

    def step_ids(self) -> list[str]:
        return [s.id or f"{i + 1}-{s.action}" for i, s in enumerate(self.steps)]

    def applies_to(self, alert: Mapping[str, Any]) -> tuple[bool, str]:
        """(applies, why not): named by the alert or selected by the trigger, and past the gates."""
        flat = flat_fields(alert)
        named = self.id in [str(p) for p in _as_list(flat.get("aisoc.alert.playbooks"))]
        if not named and not self.trigger.selects(alert):
            return False, f"the alert does not name {self.id} and its trigger does not select the alert"
        return self.trigger.admits(alert)


def select_playbooks(alert: Mapping[str, Any], playbooks: Iterable[Playbook]) -> list[Playbook]:
    """The playbooks that apply to an alert, in the order the alert names them, then the others."""
    flat = flat_fields(alert)
    order = {name: i for i, name in enumerate(str(p) for p in _as_list(flat.get("aisoc.alert.playbooks")))}
    chosen = [p for p in playbooks if p.applies_to(alert)[0]]
    return sorted(chosen, key=lambda p: (order.get(p.id, len(order)), p.id))


# ------------------------------------------------------------------------------------------ loading

def _node_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location, as deep as it resolves."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _finding(path: Path, code: str, message: str, fix: str, line: int | None,
             severity: Literal["error", "warning"] = "error", rule_id: str | None = None) -> Finding:
    return Finding(str(path), code, message, fix, line, rule_id, severity)


def _parse(path: Path) -> tuple[Playbook | None, list[Finding]]:
    try:
        text = read_text_capped(path, MAX_PLAYBOOK_BYTES)
        docs = load_all(text, path)
    except YamlLoadError as exc:
        return None, [_finding(path, "playbook-yaml", exc.message, exc.fix or "fix the YAML", exc.line)]
    docs = [d for d in docs if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return None, [_finding(path, "playbook-yaml", "a playbook file holds exactly one YAML mapping",
                               "write one playbook per file, as a mapping (id:, title:, steps: ...)", 1)]
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # aliases were already refused by load_all
    try:
        playbook = Playbook.model_validate(docs[0])
    except ValidationError as exc:
        findings = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            where = ".".join(str(p) for p in loc) or "playbook"
            findings.append(_finding(path, "playbook-schema", f"{where}: {error['msg']}",
                                     "see playbooks/README.md for the playbook format", _node_line(root, loc)))
        return None, findings
    playbook._path = path
    return playbook, _check(playbook, path, root)


def _check(playbook: Playbook, path: Path, root: yaml.Node | None) -> list[Finding]:
    """Semantic checks the schema cannot express: actions, parameters, templates, undo, ids."""
    findings: list[Finding] = []
    seen: set[str] = set()
    irreversible_at: int | None = None
    for index, step in enumerate(playbook.steps):
        line = _node_line(root, ("steps", index))
        cls = ACTIONS.get(step.action)
        if cls is None:
            findings.append(_finding(path, "playbook-action-unknown", f"step {index + 1}: no action {step.action!r}",
                                     f"use one of: {', '.join(sorted(ACTIONS))}", _node_line(root, ("steps", index,
                                                                                                  "action"))))
            continue
        step_id = playbook.step_ids()[index]
        if step_id in seen:
            findings.append(_finding(path, "playbook-step-id", f"step id {step_id!r} is used twice",
                                     "give every step its own id", line))
        seen.add(step_id)
        if step.undo is True and not cls.undoable:
            findings.append(_finding(path, "playbook-undo", f"step {step_id}: {step.action} cannot be undone",
                                     "remove 'undo: true' (the action has no undo)", _node_line(
                                         root, ("steps", index, "undo"))))
        for name, value in step.params.items():
            for problem in check_template(value):
                findings.append(_finding(path, "playbook-template", f"step {step_id}, param {name}: {problem}",
                                         "write ${field.name}, ${a|b} or a whole-value ${field?}",
                                         _node_line(root, ("steps", index, "params", name))))
        static = {k: v for k, v in step.params.items() if not is_templated(v)}
        templated = {k for k, v in step.params.items() if is_templated(v)}
        unknown = set(step.params) - set(cls.Params.model_fields)
        for name in sorted(unknown):
            findings.append(_finding(path, "playbook-params", f"step {step_id}: {step.action} has no parameter "
                                     f"{name!r}", f"parameters: {', '.join(cls.Params.model_fields)}",
                                     _node_line(root, ("steps", index, "params", name))))
        try:
            cls.Params.model_validate(static)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error["loc"])
                if (loc and loc[0] in templated) or (loc and loc[0] in unknown):
                    continue  # a templated value is checked once the alert fills it in
                if error["type"] == "missing" and loc and loc[0] in templated:
                    continue
                if not loc and templated:
                    continue  # model-level rule (e.g. "give one of") may be met by a templated value
                where = ".".join(str(p) for p in loc) or "params"
                findings.append(_finding(path, "playbook-params", f"step {step_id}, {where}: {error['msg']}",
                                         "fix the parameter", _node_line(root, ("steps", index, "params", *loc))))
        if cls.mutating and not cls.undoable and irreversible_at is None:
            irreversible_at = index
        elif irreversible_at is not None and step.on_failure == "rollback":
            findings.append(_finding(
                path, "playbook-order", f"step {step_id} runs after {playbook.steps[irreversible_at].action}, "
                "which cannot be undone: if it fails, the rollback is incomplete",
                "put irreversible steps last, or give the later step 'on_failure: continue'", line, "warning"))
    if path.stem != playbook.id:
        findings.append(_finding(path, "playbook-id", f"id {playbook.id!r} differs from the file name {path.name!r}",
                                 f"rename the file to {playbook.id}.yml or change the id",
                                 _node_line(root, ("id",)), "warning"))
    findings.extend(_check_tags(playbook, path, root))
    return findings


def _check_tags(playbook: Playbook, path: Path, root: yaml.Node | None) -> list[Finding]:
    if not playbook.trigger.tags:
        return []
    try:
        from aisoc.atlas.catalog import load_catalog

        catalog = load_catalog()
    except Exception:  # noqa: BLE001 - the catalog check is best effort
        return []
    findings = []
    for index, tag in enumerate(playbook.trigger.tags):
        text = tag.strip()
        known = catalog.resolve_tag(text if text.lower().startswith("atlas.") else f"atlas.{text.lower()}")
        if known is None:
            findings.append(_finding(path, "playbook-atlas-unknown", f"trigger tag {tag!r} names no ATLAS "
                                     f"{catalog.version} tactic or technique",
                                     "use atlas.aml.tNNNN[.NNN], AML.TNNNN or atlas.<tactic-short-name>",
                                     _node_line(root, ("trigger", "tags", index))))
    return findings


def playbook_files(paths: Iterable[str | Path]) -> list[Path]:
    """Playbook files named or under the directories named (README and hidden files skipped)."""
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in PLAYBOOK_SUFFIXES
                              and p.is_file() and not p.name.startswith(".")))
        else:
            out.append(path)
    return out


def _load_all(paths: Iterable[str | Path]) -> tuple[list[Playbook], list[Finding]]:
    playbooks: list[Playbook] = []
    findings: list[Finding] = []
    ids: dict[str, Path] = {}
    for path in playbook_files(paths):
        playbook, problems = _parse(path)
        findings.extend(problems)
        if playbook is None:
            continue
        if playbook.id in ids:
            findings.append(_finding(path, "playbook-duplicate-id", f"id {playbook.id!r} is also used by "
                                     f"{ids[playbook.id]}", "give every playbook its own id", 1))
            continue
        ids[playbook.id] = path
        if not any(f.severity == "error" for f in problems):
            playbooks.append(playbook)
    return playbooks, findings


def validate_playbooks(paths: Iterable[str | Path]) -> list[Finding]:
    """Every problem in the playbook files (or directories) given, as findings; [] means all good."""
    return _load_all(paths)[1]


def load_playbook(path: str | Path) -> Playbook:
    """One playbook; raises PlaybookError (with file and line) if it has errors (warnings pass)."""
    playbook, findings = _parse(Path(path))
    errors = [f for f in findings if f.severity == "error"]
    if playbook is None or errors:
        raise PlaybookError(errors or findings)
    return playbook


def load_playbooks(paths: Iterable[str | Path] | str | Path) -> dict[str, Playbook]:
    """All playbooks under the paths, by id; raises PlaybookError listing every error."""
    playbooks, findings = _load_all([paths] if isinstance(paths, str | Path) else paths)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise PlaybookError(errors)
    return {p.id: p for p in playbooks}
