"""Which event fields a rule names (detections, correlation group-by and value fields)."""

from __future__ import annotations

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule

from aisoc.rules.loader import RuleFile


def _detection_fields(detection: SigmaDetection | SigmaDetectionItem, out: set[str]) -> None:
    if isinstance(detection, SigmaDetectionItem):
        if detection.field:
            out.add(detection.field)
        return
    for item in detection.detection_items:
        _detection_fields(item, out)


def sigma_rule_fields(rule: SigmaRule) -> set[str]:
    fields: set[str] = set()
    for detection in rule.detection.detections.values():
        _detection_fields(detection, fields)
    return fields


def correlation_fields(rule: SigmaCorrelationRule) -> set[str]:
    fields = set(rule.group_by or [])
    if rule.condition is not None and rule.condition.fieldref:
        refs = rule.condition.fieldref
        fields.update([refs] if isinstance(refs, str) else refs)
    aliases = {alias.alias for alias in (rule.aliases.aliases.values() if rule.aliases else [])}
    return fields - aliases


def rule_fields(rule: RuleFile) -> set[str]:
    """Every event field the rule file's detection logic names."""
    fields: set[str] = set()
    for detection in rule.detection_rules:
        fields |= sigma_rule_fields(detection)
    if isinstance(rule.primary, SigmaCorrelationRule):
        fields |= correlation_fields(rule.primary)
        if rule.primary.aliases:
            for alias in rule.primary.aliases.aliases.values():
                fields.update(alias.mapping.values())
    fields |= set(rule.meta.entity)
    return fields
