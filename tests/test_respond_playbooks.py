"""Playbook files (the shipped ones and broken ones), the template language, selection and gating."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aisoc.respond import (
    ResponseContext,
    load_playbook,
    load_playbooks,
    respond,
    select_playbooks,
    validate_playbooks,
)
from aisoc.respond.model import SEVERITY_SCORE, PlaybookError
from aisoc.respond.templating import OMIT, TemplateError, render, render_params
from aisoc.safeyaml import load_file

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "respond"
ALERTS: dict[str, Any] = json.loads((FIXTURES / "alerts.json").read_text())
SHIPPED = REPO / "playbooks"
LEVEL_SCORE = {"informational": 21, "low": 21, "medium": 47, "high": 73, "critical": 99}


def rule_docs() -> list[tuple[Path, dict[str, Any]]]:
    """(path, primary rule document) for every shipped rule: the document carrying the aisoc block."""
    out = []
    for path in sorted((REPO / "rules").glob("*/*.yml")):
        docs = [d for d in load_file(path) if isinstance(d, dict)]
        out.append((path, next(d for d in docs if "aisoc" in d)))
    return out


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """\
id: good
title: A good playbook
approval: auto
steps:
  - action: snapshot_evidence
"""


# ------------------------------------------------------------------------------------ shipped playbooks

def test_shipped_playbooks_validate_clean() -> None:
    assert validate_playbooks([SHIPPED]) == []
    assert validate_playbooks([FIXTURES / "playbooks"]) == []


def test_every_playbook_a_rule_names_is_shipped() -> None:
    shipped = load_playbooks(SHIPPED)
    named = {name for _, doc in rule_docs() for name in doc["aisoc"].get("playbooks", [])}
    assert named, "rules name playbooks"
    assert named <= set(shipped), f"missing: {sorted(named - set(shipped))}"
    assert {"throttle-api-key", "rotate-api-key", "rollback-model-alias", "quarantine-data-source",
            "reattest-model-artifacts", "snapshot-evidence"} <= set(shipped)


def test_every_rule_passes_the_gates_of_the_playbooks_it_names() -> None:
    shipped = load_playbooks(SHIPPED)
    for path, doc in rule_docs():
        layer = path.parent.name  # rules/<layer>/ (a correlation rule has no logsource of its own)
        for name in doc["aisoc"].get("playbooks", []):
            alert = {"rule.id": doc["id"], "event.severity": LEVEL_SCORE[doc["level"]], "aisoc.layer": layer,
                     "aisoc.alert.playbooks": doc["aisoc"]["playbooks"]}
            ok, why = shipped[name].applies_to(alert)
            assert ok, f"{path.name} names {name} but: {why}"


def test_severity_scale_matches_the_alert_builder() -> None:
    from aisoc.detect.alerts import SEVERITY

    for level in ("low", "medium", "high", "critical"):
        assert SEVERITY_SCORE[level] == SEVERITY[level]


def test_real_alerts_select_the_playbooks_their_rules_name() -> None:
    shipped = load_playbooks(SHIPPED)
    for name, case in ALERTS.items():
        alert = case["alert"]
        selected = [p.id for p in select_playbooks(alert, shipped.values())]
        assert selected[: len(alert["aisoc.alert.playbooks"])] == alert["aisoc.alert.playbooks"], name
    extraction = ALERTS["llm_templated_extraction_with_token_spike"]["alert"]
    assert "block-api-key" in [p.id for p in select_playbooks(extraction, shipped.values())], "selected by tag"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_dry_run_of_every_named_playbook_on_real_alerts_changes_nothing(name: str, tmp_path: Path) -> None:
    shipped = load_playbooks(SHIPPED)
    alert = ALERTS[name]["alert"]
    context = ResponseContext(evidence_dir=tmp_path / "ev", quarantine_file=tmp_path / "q.json",
                              vars={"model_root": str(tmp_path / "models"), "signing_public_key": "k.pem"})
    for playbook_id in alert["aisoc.alert.playbooks"]:
        report = respond(alert, shipped[playbook_id], audit_log=tmp_path / "a.jsonl", context=context)
        # endpoints are not configured here, so plans that need them fail; either way nothing changes
        assert report.status in ("planned", "plan_failed"), report.summary()
        assert report.changed_nothing
    assert not (tmp_path / "ev").exists() and not (tmp_path / "q.json").exists()


# ---------------------------------------------------------------------------------- broken playbooks

def codes(findings: list[Any]) -> list[str]:
    return [f.code for f in findings]


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yml", "id: bad\ntitle: x\nsteps:\n  - action: [unclosed\n")
    (finding,) = validate_playbooks([path])
    assert finding.code == "playbook-yaml" and finding.line == 5 and finding.path == str(path)


def test_aliases_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "alias.yml", GOOD.replace("id: good", "id: &x good\ntitle2: *x"))
    (finding,) = validate_playbooks([path])
    assert finding.code == "playbook-yaml" and "aliases" in finding.message and finding.line == 2


def test_oversized_files_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "big.yml", GOOD + "description: " + "x" * 300_000 + "\n")
    (finding,) = validate_playbooks([path])
    assert "limit" in finding.message


def test_schema_errors_name_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "schema.yml", GOOD.replace("approval: auto", "approval: sometimes") + "colour: blue\n")
    findings = validate_playbooks([path])
    by_message = {f.message.split(":")[0]: f for f in findings}
    assert by_message["approval"].line == 3
    assert by_message["colour"].line == 6
    assert set(codes(findings)) == {"playbook-schema"}


def test_unknown_action_and_parameters(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yml", """\
id: params-test
title: Parameters
steps:
  - action: launch_missiles
  - action: throttle_api_key
    params: {key: "${aisoc.api_key.hash}", rpm_limit: -5, colour: red}
  - action: throttle_api_key
    params: {key: "${aisoc.api_key.hash}", rpm_limit: "${vars.rpm}"}
  - action: snapshot_evidence
    undo: true
""")
    findings = validate_playbooks([path])
    found = {(f.code, f.line) for f in findings}
    assert ("playbook-action-unknown", 4) in found
    assert ("playbook-params", 6) in found  # rpm_limit -5 and colour
    assert sum(1 for f in findings if f.code == "playbook-params") == 2, findings
    assert ("playbook-undo", 10) in found
    assert all(f.line for f in findings)


def test_template_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yml", """\
id: templates-test
title: Templates
steps:
  - action: quarantine_data_source
    params: {source: "prefix-${aisoc.data.source?}", reason: "${1+1}"}
""")
    findings = validate_playbooks([path])
    templates = [f for f in findings if f.code == "playbook-template"]
    assert len(templates) == 2 and all(f.line == 5 for f in templates)


def test_duplicate_ids_filename_and_order_warnings(tmp_path: Path) -> None:
    write(tmp_path, "one.yml", GOOD)
    write(tmp_path, "two.yml", GOOD)
    write(tmp_path, "order.yml", """\
id: order
title: Irreversible first
steps:
  - action: rotate_api_key
    params: {key: "${aisoc.api_key.hash}"}
  - action: throttle_api_key
    params: {key: "${aisoc.api_key.hash}", rpm_limit: 1}
""")
    findings = validate_playbooks([tmp_path])
    assert "playbook-duplicate-id" in codes(findings)
    assert [f.severity for f in findings if f.code == "playbook-id"] == ["warning", "warning"]
    (order,) = [f for f in findings if f.code == "playbook-order"]
    assert order.severity == "warning" and order.line == 6


def test_unknown_atlas_tag(tmp_path: Path) -> None:
    tags = "[atlas.aml.t0024, AML.T0051, atlas.exfiltration, atlas.aml.t9999]"
    path = write(tmp_path, "tags.yml", GOOD.replace("approval: auto", f"approval: auto\ntrigger:\n  tags: {tags}"))
    (finding,) = [f for f in validate_playbooks([path]) if f.severity == "error"]
    assert finding.code == "playbook-atlas-unknown" and "t9999" in finding.message and finding.line == 5


def test_load_raises_with_every_error(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yml", "id: Bad Id\ntitle: x\nsteps: []\n")
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    assert len(info.value.findings) >= 2 and str(path) in str(info.value)


# ----------------------------------------------------------------------------------------- templating

ALERT = {"aisoc.model.name": "fraud", "aisoc.model.version": "3", "event": {"severity": 73},
         "user.name": ["alice"], "threat.technique.id": ["AML.T0018", "AML.T0012"], "evil": "../../etc",
         "aisoc.signal.entity": "abc123"}


def test_template_substitution() -> None:
    assert render("${aisoc.model.name}", ALERT) == "fraud"
    assert render("${event.severity}", ALERT) == 73, "a whole-value template keeps the type"
    assert render("${threat.technique.id}", ALERT) == ["AML.T0018", "AML.T0012"]
    assert render("models:/${aisoc.model.name}@${aisoc.model.version}", ALERT) == "models:/fraud@3"
    assert render("${aisoc.api_key.hash|aisoc.signal.entity}", ALERT) == "abc123"
    assert render("${missing?}", ALERT) is OMIT
    assert render("$${not.a.template} ${user.name}", ALERT) == "${not.a.template} alice"
    assert render("${vars.root}/${aisoc.model.name}", ALERT, {"root": "/srv/models"}) == "/srv/models/fraud"
    assert render({"a": ["${aisoc.model.name}", "${missing?}"]}, ALERT) == {"a": ["fraud"]}
    assert render_params({"x": "${missing?}", "y": 1}, ALERT) == {"y": 1}


@pytest.mark.parametrize("template, error", [
    ("${missing.field}", "has no missing.field"),
    ("${__import__('os').system('id')}", "not a field reference"),
    ("${1+1}", "not a field reference"),
    ("x-${missing?}", "only allowed when the whole value"),
    ("/srv/${evil}", "path separator"),
    ("/srv/${threat.technique.id}", "2 values"),
])
def test_template_errors(template: str, error: str) -> None:
    with pytest.raises(TemplateError, match=error.replace("(", r"\(")):
        render(template, ALERT)


# ------------------------------------------------------------------------------------------- gating

def test_gates_refuse_low_severity_and_other_layers(tmp_path: Path) -> None:
    shipped = load_playbooks(SHIPPED)
    flood = ALERTS["api_key_request_flood"]["alert"]  # low, inference
    ok, why = shipped["rotate-api-key"].applies_to({**flood, "aisoc.alert.playbooks": ["rotate-api-key"]})
    assert not ok and "below" in why
    ok, why = shipped["quarantine-data-source"].applies_to({**flood, "aisoc.alert.playbooks":
                                                            ["quarantine-data-source"], "event.severity": 99})
    assert not ok and "layer" in why
    report = respond(flood, shipped["rotate-api-key"], execute=True, approved_by="x", audit_log=tmp_path / "a.jsonl",
                     context=ResponseContext())
    assert report.status == "not_applicable"


def test_force_runs_an_analyst_choice_and_records_it(tmp_path: Path) -> None:
    shipped = load_playbooks(SHIPPED)
    alert = ALERTS["api_key_request_flood"]["alert"]
    report = respond(alert, shipped["snapshot-evidence"], execute=True, force=True, audit_log=tmp_path / "a.jsonl",
                     context=ResponseContext(evidence_dir=tmp_path / "ev"))
    assert report.status == "completed"
    started = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert started["trigger_matched"] is False and started["forced"] is True


def test_missing_alert_field_fails_before_anything_runs(tmp_path: Path) -> None:
    shipped = load_playbooks(SHIPPED)
    alert = dict(ALERTS["unapproved_data_source_batch"]["alert"])
    del alert["aisoc.data.source"]
    report = respond(alert, shipped["quarantine-data-source"], execute=True, approved_by="x",
                     audit_log=tmp_path / "a.jsonl",
                     context=ResponseContext(evidence_dir=tmp_path / "ev", quarantine_file=tmp_path / "q.json"))
    assert report.status == "plan_failed" and "has no aisoc.data.source" in report.message
    assert not (tmp_path / "ev").exists() and not (tmp_path / "q.json").exists()
