"""Load rule files: safe YAML -> pySigma collection -> one `RuleFile` per file.

A rule file holds one detection: either a single Sigma rule, or a Sigma correlation rule together
with the base rules it correlates (multi-document YAML). The file's *primary* rule is the
correlation rule if there is one, otherwise its only rule; the `aisoc:` block (owner, playbooks,
entity, test events) lives on the primary rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import ValidationError
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaConditionError, SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from aisoc.findings import Finding
from aisoc.rules.model import LAYERS, RuleMeta
from aisoc.safeyaml import YamlLoadError, line_of, load_all, read_text_capped

RULE_SUFFIXES = (".yml", ".yaml")
MAX_RULE_BYTES = 512 * 1024


@dataclass
class RuleFile:
    path: Path
    text: str
    collection: SigmaCollection
    primary: SigmaRule | SigmaCorrelationRule
    base_rules: list[SigmaRule]
    meta: RuleMeta
    findings: list[Finding] = field(default_factory=list)

    @property
    def rule_id(self) -> str:
        return str(self.primary.id)

    @property
    def title(self) -> str:
        return self.primary.title

    @property
    def is_correlation(self) -> bool:
        return isinstance(self.primary, SigmaCorrelationRule)

    @property
    def detection_rules(self) -> list[SigmaRule]:
        return self.base_rules if self.is_correlation else [self.primary]  # type: ignore[list-item]

    @property
    def layer(self) -> str | None:
        """The rule's layer, from its logsource category (all base rules of a correlation share it)."""
        categories = {r.logsource.category for r in self.detection_rules}
        return categories.pop() if len(categories) == 1 else None

    @property
    def atlas_tags(self) -> list[str]:
        return [f"{t.namespace}.{t.name}" for t in self.primary.tags if t.namespace == "atlas"]

    def line(self, needle: str) -> int | None:
        return line_of(self.text, needle)


def iter_rule_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Rule files under the given files and directories, sorted, skipping hidden entries."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path)
                if child.is_file() and child.suffix in RULE_SUFFIXES and not any(
                    part.startswith(".") for part in rel.parts
                ):
                    yield child
        else:
            yield path


def load_rule_file(path: Path) -> tuple[RuleFile | None, list[Finding]]:
    """Parse one rule file. Returns the rule (or None when it cannot be used) and load findings."""
    spath = str(path)
    try:
        text = read_text_capped(path, MAX_RULE_BYTES)
        docs = load_all(text, path)
    except YamlLoadError as exc:
        return None, [Finding(spath, "yaml", exc.message, exc.fix, exc.line)]
    docs = [d for d in docs if d is not None]
    if not docs:
        return None, [Finding(spath, "empty", "file holds no YAML document", "remove it or write a rule")]
    if not all(isinstance(d, dict) for d in docs):
        return None, [Finding(spath, "structure", "every YAML document must be a mapping (key: value)",
                              "a Sigma rule starts with 'title:'", 1)]
    findings: list[Finding] = []
    collection = SigmaCollection.from_dicts(docs, collect_errors=True, source=SigmaRuleLocation(path))
    for rule in collection.rules:
        for error in rule.errors:
            findings.append(_sigma_finding(spath, text, rule, error))
    for error in collection.errors:
        findings.append(_sigma_finding(spath, text, None, error))
    for rule in collection.rules:
        if isinstance(rule, SigmaRule) and not rule.errors:
            for condition in rule.detection.parsed_condition:
                try:
                    condition.parse()
                except SigmaError as exc:
                    findings.append(_sigma_finding(spath, text, rule, exc))
                    findings[-1] = replace(findings[-1], line=line_of(text, "condition:"))
    correlations = [r for r in collection.rules if isinstance(r, SigmaCorrelationRule)]
    detections = [r for r in collection.rules if isinstance(r, SigmaRule)]
    if len(correlations) > 1 or (not correlations and len(detections) != 1):
        findings.append(Finding(
            spath, "one-rule-per-file",
            f"file holds {len(correlations)} correlation and {len(detections)} detection rules",
            "keep one detection per file: a single rule, or one correlation rule with its base rules",
        ))
        return None, findings
    primary: SigmaRule | SigmaCorrelationRule = correlations[0] if correlations else detections[0]
    base_rules = detections if correlations else []
    raw_meta = (primary.custom_attributes or {}).get("aisoc")
    rule_id = str(primary.id) if primary.id else None
    if raw_meta is None:
        findings.append(Finding(
            spath, "test-events-missing", "rule has no 'aisoc:' block with test events",
            "add 'aisoc: {owner: SOC, tests: [...]}' with at least 3 'match' and 3 'no_match' cases",
            rule_id=rule_id,
        ))
        meta = RuleMeta()
    else:
        try:
            meta = RuleMeta.model_validate(raw_meta)
        except ValidationError as exc:
            meta = RuleMeta()
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                findings.append(Finding(
                    spath, "aisoc-block", f"aisoc.{loc}: {err['msg']}",
                    "see CONTRIBUTING.md, 'Test events', for the shape of the aisoc: block",
                    line_of(text, "aisoc:"), rule_id,
                ))
    rule_file = RuleFile(path, text, collection, primary, base_rules, meta)
    if any(f.severity == "error" and f.code.startswith("sigma") for f in findings):
        return None, findings
    return rule_file, findings


def _sigma_finding(path: str, text: str, rule: object, error: Exception) -> Finding:
    rule_id = str(getattr(rule, "id", "") or "") or None
    line = None
    source = getattr(error, "source", None)
    if isinstance(source, SigmaRuleLocation) and source.line:
        line = source.line
    message = str(error).split(" in ", 1)[0] if isinstance(error, SigmaError) else str(error)
    if line is None:
        for word in message.replace("'", " ").split():
            if "." in word and len(word) > 3 and (found := line_of(text, word)):
                line = found
                break
    fix = "fix the rule so it follows the Sigma specification v2"
    if isinstance(error, SigmaConditionError):
        message = f"condition cannot be parsed: {message}"
        fix = "combine detection names with and / or / not, '1 of name*' or 'all of them'"
    return Finding(path, f"sigma-{type(error).__name__}", message, fix, line, rule_id)


def load_rules(paths: Iterable[Path]) -> tuple[list[RuleFile], list[Finding]]:
    rules: list[RuleFile] = []
    findings: list[Finding] = []
    for path in iter_rule_paths(paths):
        rule, file_findings = load_rule_file(path)
        findings.extend(file_findings)
        if rule is not None:
            rules.append(rule)
    return rules, findings


__all__ = ["LAYERS", "RuleFile", "iter_rule_paths", "load_rule_file", "load_rules"]
