"""Render findings and test results for people (text) and machines (JSON, SARIF 2.1.0, JUnit XML)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree as ET

from aisoc import __version__
from aisoc.findings import Finding

FORMATS = ("text", "json", "sarif", "junit")


def findings_text(findings: Sequence[Finding], checked: int, noun: str = "rule file(s)") -> str:
    lines = []
    for f in findings:
        rule = f" [{f.rule_id}]" if f.rule_id else ""
        lines.append(f"{f.location()}: {f.severity}: {f.message}{rule} ({f.code})")
        if f.fix:
            lines.append(f"    -> {f.fix}")
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    lines.append(f"{checked} {noun} checked: {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)


def findings_json(findings: Sequence[Finding], checked: int) -> str:
    return json.dumps({"checked": checked, "findings": [f.to_dict() for f in findings]}, indent=2)


def findings_sarif(findings: Sequence[Finding]) -> str:
    """SARIF 2.1.0, as GitHub code scanning takes it (`github/codeql-action/upload-sarif`)."""
    codes = sorted({f.code for f in findings})
    results: list[dict[str, Any]] = []
    for f in findings:
        region = {"startLine": f.line} if f.line else {"startLine": 1}
        text = f.message + (f" — {f.fix}" if f.fix else "")
        results.append({
            "ruleId": f.code,
            "ruleIndex": codes.index(f.code),
            "level": "error" if f.severity == "error" else "warning",
            "message": {"text": text},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.path.lstrip("./"), "uriBaseId": "%SRCROOT%"},
                "region": region,
            }}],
            "properties": {"sigmaRuleId": f.rule_id} if f.rule_id else {},
        })
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "aisoc",
                "version": __version__,
                "informationUri": "https://github.com/aisoc/aisoc",
                "rules": [{"id": c, "shortDescription": {"text": c.replace("-", " ")}} for c in codes],
            }},
            "results": results,
        }],
    }
    return json.dumps(sarif, indent=2)


def findings_junit(findings: Sequence[Finding], paths: Sequence[str]) -> str:
    """One test case per rule file; its failures are the file's error findings."""
    by_path: dict[str, list[Finding]] = {p: [] for p in paths}
    for f in findings:
        by_path.setdefault(f.path, []).append(f)
    suite = ET.Element("testsuite", name="aisoc validate", tests=str(len(by_path)))
    failures = 0
    for path, items in sorted(by_path.items()):
        case = ET.SubElement(suite, "testcase", classname="aisoc.validate", name=path)
        errors = [f for f in items if f.severity == "error"]
        if errors:
            failures += 1
            failure = ET.SubElement(case, "failure", message=errors[0].message, type=errors[0].code)
            failure.text = "\n".join(f"{f.location()}: {f.message} -> {f.fix}" for f in errors)
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def results_junit(results: Sequence[dict[str, Any]]) -> str:
    """JUnit for `aisoc test`: one test case per rule and engine."""
    suite = ET.Element("testsuite", name="aisoc test", tests=str(len(results)))
    failed = 0
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"aisoc.test.{r['engine']}", name=r["path"])
        if not r["passed"]:
            failed += 1
            failure = ET.SubElement(case, "failure", message="; ".join(r["failures"])[:500])
            failure.text = "\n".join(r["failures"])
    suite.set("failures", str(failed))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
