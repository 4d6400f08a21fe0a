"""`aisoc validate`: every check a rule must pass before it may reach a SIEM.

Checks, each a small function over the loaded pack:
- pySigma: syntax, condition parsing (at load), and pySigma's own validators (network-free ones);
- ATLAS: every `atlas.*` tag names a real tactic or technique of the shipped catalog;
- fields: every field a rule (or its test events) names exists in the field registry, and literal
  values of fields with allowed values are allowed;
- metadata: id, title, description, level, status, author, date, falsepositives; unique ids/titles;
- logsource: `product: aisoc`, a known layer, and the file sits under `rules/<layer>/`;
- test events: at least 3 that must fire and 3 that must not;
- version lock: a changed rule needs `aisoc lock` (so Kibana sees a new version).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from sigma.rule import SigmaDetection, SigmaDetectionItem
from sigma.types import SigmaString
from sigma.validation import SigmaValidator
from sigma.validators.base import SigmaValidationIssueSeverity
from sigma.validators.core import validators as core_validators
from sigma.validators.core.tags import NamespaceTagValidator

from aisoc.atlas.catalog import AtlasCatalog, Tactic, Technique, load_catalog
from aisoc.detect.ruletest import MIN_CASES
from aisoc.findings import Finding
from aisoc.rules.fields import rule_fields
from aisoc.rules.loader import RuleFile, load_rules
from aisoc.rules.lock import VersionLock
from aisoc.rules.model import LAYERS
from aisoc.schema import FieldRegistry, load_registry

REQUIRED_METADATA = ("id", "title", "description", "level", "status", "author", "date", "falsepositives")
# pySigma validators we do not run: ATT&CK/D3FEND tag checks download data (and we tag ATLAS), the
# namespace check is replaced by one that knows `atlas`, and logsource-specific ones assume SigmaHQ.
EXCLUDED_SIGMA_VALIDATORS = {
    "attacktag", "d3_fendtag", "namespace_tag", "fieldname_logsource", "specific_instead_of_generic_logsource",
}


class AisocNamespaceTagValidator(NamespaceTagValidator):
    """pySigma's namespace check, with ATLAS's proposed `atlas` namespace (SigmaHQ SEP #219)."""

    allowed_namespace = NamespaceTagValidator.allowed_namespace | {"atlas"}


def sigma_validator() -> SigmaValidator:
    chosen = [v for name, v in core_validators.items() if name not in EXCLUDED_SIGMA_VALIDATORS]
    return SigmaValidator([*chosen, AisocNamespaceTagValidator])


def check_sigma(rules: list[RuleFile]) -> Iterable[Finding]:
    validator = sigma_validator()
    by_rule = {id(r): rf for rf in rules for r in rf.collection.rules}
    issues = validator.validate_rules(iter([r for rf in rules for r in rf.collection.rules]))
    for issue in issues:
        rule = issue.rules[0] if issue.rules else None
        rf = by_rule.get(id(rule))
        extra = {k: v for k, v in vars(issue).items() if k != "rules"}
        detail = ", ".join(f"{k}={v}" for k, v in extra.items())
        severity = "warning" if issue.severity == SigmaValidationIssueSeverity.LOW else "error"
        yield Finding(
            str(rf.path) if rf else "<rules>", f"sigma-{type(issue).__name__}",
            issue.description + (f" ({detail})" if detail else ""),
            "see the Sigma specification; rewrite the rule as the message says",
            rf.line(str(next(iter(extra.values()), ""))) if rf and extra else None,
            str(rule.id) if rule is not None and rule.id else None, severity,
        )


def check_metadata(rule: RuleFile) -> Iterable[Finding]:
    for name in REQUIRED_METADATA:
        value = getattr(rule.primary, name, None)
        if value is None or value == [] or value == "":
            yield Finding(str(rule.path), "metadata-missing", f"rule has no '{name}'",
                          f"add '{name}:' to the rule (required for every aisoc rule)", None, rule.rule_id)
    for base in rule.base_rules:
        if not base.name:
            yield Finding(str(rule.path), "metadata-missing", f"base rule {base.title!r} has no 'name'",
                          "give the base rule a 'name:' and refer to it from the correlation's 'rules:'",
                          rule.line(base.title), rule.rule_id)


def check_logsource(rule: RuleFile) -> Iterable[Finding]:
    for detection in rule.detection_rules:
        source = detection.logsource
        if source.product != "aisoc" or source.category not in LAYERS:
            yield Finding(
                str(rule.path), "logsource",
                f"logsource is product={source.product!r} category={source.category!r}",
                f"use 'logsource: {{product: aisoc, category: <layer>}}' with layer one of {', '.join(LAYERS)}",
                rule.line("logsource"), rule.rule_id)
    layer = rule.layer
    if layer in LAYERS and rule.path.parent.name in LAYERS and rule.path.parent.name != layer:
        yield Finding(str(rule.path), "layer-directory",
                      f"rule of layer {layer!r} lives under {rule.path.parent.name!r}/",
                      f"move it to rules/{layer}/", None, rule.rule_id)


def check_atlas(rule: RuleFile, catalog: AtlasCatalog) -> Iterable[Finding]:
    techniques: list[Technique] = []
    tactics: list[Tactic] = []
    for tag in rule.atlas_tags:
        item = catalog.resolve_tag(tag)
        if item is None:
            yield Finding(str(rule.path), "atlas-unknown",
                          f"tag {tag!r} names no ATLAS {catalog.version} tactic or technique",
                          "use 'atlas.aml.tNNNN[.NNN]' for techniques and 'atlas.<tactic-short-name>' for "
                          "tactics; `aisoc atlas list` shows them", rule.line(tag), rule.rule_id)
        elif isinstance(item, Technique):
            techniques.append(item)
        else:
            tactics.append(item)
    if not techniques:
        yield Finding(str(rule.path), "atlas-missing", "rule maps to no ATLAS technique",
                      "add at least one technique tag such as 'atlas.aml.t0024.002'",
                      rule.line("tags"), rule.rule_id)
    technique_tactics = {t for tech in techniques for t in _tactics_of(tech, catalog)}
    for tactic in tactics:
        if techniques and tactic.id not in technique_tactics:
            yield Finding(str(rule.path), "atlas-tactic-mismatch",
                          f"tactic {tactic.short_name!r} is not a tactic of any technique the rule tags",
                          "tag only tactics the tagged techniques belong to", rule.line(tactic.short_name),
                          rule.rule_id, "warning")


def _tactics_of(technique: Technique, catalog: AtlasCatalog) -> tuple[str, ...]:
    if technique.tactics:
        return technique.tactics
    parent = catalog.technique(technique.parent) if technique.parent else None
    return parent.tactics if parent else ()


def _literal_values(detection: SigmaDetection | SigmaDetectionItem) -> Iterable[tuple[str, str]]:
    if isinstance(detection, SigmaDetectionItem):
        if detection.field and not detection.modifiers:
            for value in detection.value:
                if isinstance(value, SigmaString) and not value.contains_special():
                    yield detection.field, str(value)
        return
    for item in detection.detection_items:
        yield from _literal_values(item)


def check_fields(rule: RuleFile, registry: FieldRegistry) -> Iterable[Finding]:
    for name in sorted(rule_fields(rule)):
        if not registry.is_known(name):
            yield Finding(str(rule.path), "field-unknown", f"field {name!r} is not in the field registry",
                          "fix the name, or register the field in aisoc/schema/fields.yml (custom fields "
                          "go under 'aisoc.')", rule.line(name), rule.rule_id)
    for detection_rule in rule.detection_rules:
        for detection in detection_rule.detection.detections.values():
            for field, value in _literal_values(detection):
                fdef = registry.get(field)
                if fdef and fdef.allowed_values and value.lower() not in {v.lower() for v in fdef.allowed_names}:
                    yield Finding(str(rule.path), "value-not-allowed",
                                  f"{field} never takes the value {value!r}",
                                  f"use one of: {', '.join(sorted(fdef.allowed_names))}",
                                  rule.line(value), rule.rule_id)


def check_tests(rule: RuleFile, registry: FieldRegistry) -> Iterable[Finding]:
    positives = sum(1 for c in rule.meta.tests if c.expect == "match")
    negatives = sum(1 for c in rule.meta.tests if c.expect == "no_match")
    if rule.meta.tests and (positives < MIN_CASES or negatives < MIN_CASES):
        yield Finding(str(rule.path), "test-events-missing",
                      f"rule has {positives} 'match' and {negatives} 'no_match' test cases",
                      f"add cases until there are at least {MIN_CASES} of each: real attack shapes that "
                      "must fire, and the benign look-alikes most likely to fool the rule",
                      rule.line("tests:"), rule.rule_id)
    unknown: set[str] = set()
    for index, case in enumerate(rule.meta.tests):
        try:
            events = case.expanded_events(rule.rule_id, index)
        except ValueError as exc:
            yield Finding(str(rule.path), "test-record-invalid", f"test case {case.name!r}: {exc}",
                          "fix the native record so the collector maps it (see the collector's fixtures)",
                          rule.line(case.name), rule.rule_id)
            continue
        for event in events:
            unknown |= {k for k in event if not registry.is_known(k)}
    for name in sorted(unknown):
        yield Finding(str(rule.path), "test-field-unknown",
                      f"a test event uses field {name!r}, which is not in the field registry",
                      "a misspelt field makes a 'no_match' case pass for the wrong reason: fix the name",
                      rule.line(name), rule.rule_id)


def check_unique(rules: list[RuleFile]) -> Iterable[Finding]:
    for label, key in (("id", lambda r: str(r.id)), ("title", lambda r: r.title)):
        seen: dict[str, list[RuleFile]] = defaultdict(list)
        for rf in rules:
            for rule in rf.collection.rules:
                seen[key(rule)].append(rf)
        for value, owners in seen.items():
            if len(owners) > 1:
                paths = ", ".join(sorted({str(o.path) for o in owners}))
                for owner in owners:
                    yield Finding(str(owner.path), f"duplicate-{label}",
                                  f"{label} {value!r} is used by more than one rule ({paths})",
                                  f"give each rule its own {label}" +
                                  (" (a fresh UUID4)" if label == "id" else ""),
                                  owner.line(value), owner.rule_id)


def check_lock(rules: list[RuleFile], lock: VersionLock) -> Iterable[Finding]:
    for rule in rules:
        status = lock.status(rule)
        if status == "new":
            yield Finding(str(rule.path), "lock-missing", f"rule is not in {lock.path.name}",
                          "run 'aisoc lock' and commit the lock file", None, rule.rule_id)
        elif status == "changed":
            yield Finding(str(rule.path), "lock-outdated",
                          f"rule changed since version {lock.version(rule.rule_id)} was locked",
                          "run 'aisoc lock' to bump its version (Kibana only updates rules whose version "
                          "grows) and commit the lock file", None, rule.rule_id)


PerRuleCheck = Callable[[RuleFile], Iterable[Finding]]


def validate(
    paths: list[Path],
    lock: VersionLock | None = None,
    catalog: AtlasCatalog | None = None,
    registry: FieldRegistry | None = None,
) -> tuple[list[RuleFile], list[Finding]]:
    catalog = catalog or load_catalog()
    registry = registry or load_registry()
    rules, findings = load_rules(paths)
    if not rules and not findings:
        findings.append(Finding(", ".join(str(p) for p in paths), "no-rules", "no rule files (*.yml) found",
                                "point aisoc at a rule file or a directory of rules"))
    per_rule: list[PerRuleCheck] = [
        check_metadata,
        check_logsource,
        lambda r: check_atlas(r, catalog),
        lambda r: check_fields(r, registry),
        lambda r: check_tests(r, registry),
    ]
    for rule in rules:
        for check in per_rule:
            findings.extend(check(rule))
    findings.extend(check_unique(rules))
    findings.extend(check_sigma(rules))
    if lock is not None:
        findings.extend(check_lock(rules, lock))
    findings.sort(key=lambda f: (f.path, f.line or 0, f.code))
    return rules, findings


__all__ = ["validate"]
